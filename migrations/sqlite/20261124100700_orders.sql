-- Products, door stock and orders (see ../20261124091500_orders.sql). `flags` is a JSON array.
CREATE TABLE products (
    id          BLOB PRIMARY KEY,
    sku         TEXT NOT NULL UNIQUE CHECK (length(sku) BETWEEN 1 AND 64
                    AND sku NOT GLOB '*[^A-Za-z0-9._-]*'),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    price       INTEGER NOT NULL CHECK (price >= 0),
    active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE TABLE door_stock (
    device_id   TEXT NOT NULL,
    door        INTEGER NOT NULL,
    product_id  BLOB NOT NULL REFERENCES products (id),
    qty         INTEGER NOT NULL CHECK (qty >= 0),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (device_id, door, product_id),
    FOREIGN KEY (device_id, door) REFERENCES doors (device_id, door) ON DELETE CASCADE
) STRICT;
CREATE INDEX door_stock_product ON door_stock (product_id);

CREATE TABLE orders (
    id             BLOB PRIMARY KEY,
    user_id        BLOB NOT NULL REFERENCES users (id),
    device_id      TEXT NOT NULL,
    door           INTEGER NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('paid', 'completed', 'cancelled')),
    total          INTEGER NOT NULL CHECK (total >= 0),
    unlock_command INTEGER REFERENCES commands (id),
    cancel_reason  TEXT,
    flags          TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(flags) AND json_type(flags) = 'array'),
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    settled_at     TEXT,
    FOREIGN KEY (device_id, door) REFERENCES doors (device_id, door),
    CHECK ((state = 'paid') = (settled_at IS NULL))
) STRICT;
CREATE UNIQUE INDEX orders_one_per_door ON orders (device_id, door) WHERE state = 'paid';
CREATE INDEX orders_user ON orders (user_id, created_at DESC);

CREATE TABLE order_items (
    order_id    BLOB NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id  BLOB NOT NULL REFERENCES products (id),
    name        TEXT NOT NULL,
    qty         INTEGER NOT NULL CHECK (qty > 0),
    unit_price  INTEGER NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (order_id, product_id)
) STRICT;
