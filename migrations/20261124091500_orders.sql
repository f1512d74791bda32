-- Vending: products with a price, what each door holds, and orders paid from the wallet and
-- served from one door. Money in integer minor units of the configured currency.
CREATE TABLE products (
    id          UUID PRIMARY KEY,
    sku         TEXT NOT NULL UNIQUE CHECK (sku ~ '^[A-Za-z0-9._-]{1,64}$'),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    price       BIGINT NOT NULL CHECK (price >= 0),
    -- Withdrawn products are not sold; orders keep their snapshot.
    active      BOOLEAN NOT NULL DEFAULT true,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- What a door holds. Stock never goes below zero: an order deducts with a `qty >= wanted` guard.
CREATE TABLE door_stock (
    device_id   TEXT NOT NULL,
    door        INTEGER NOT NULL,
    product_id  UUID NOT NULL REFERENCES products (id),
    qty         INTEGER NOT NULL CHECK (qty >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, door, product_id),
    FOREIGN KEY (device_id, door) REFERENCES doors (device_id, door) ON DELETE CASCADE
);
CREATE INDEX door_stock_product ON door_stock (product_id);

CREATE TABLE orders (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES users (id),
    device_id      TEXT NOT NULL,
    door           INTEGER NOT NULL,
    -- paid: charged and stock taken, the door not yet open; completed: it opened;
    -- cancelled: it did not, and the money and the stock went back in one transaction.
    state          TEXT NOT NULL CHECK (state IN ('paid', 'completed', 'cancelled')),
    total          BIGINT NOT NULL CHECK (total >= 0),
    unlock_command BIGINT REFERENCES commands (id),
    cancel_reason  TEXT,
    flags          TEXT[] NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    settled_at     TIMESTAMPTZ,
    FOREIGN KEY (device_id, door) REFERENCES doors (device_id, door),
    CHECK ((state = 'paid') = (settled_at IS NULL))
);
-- The database's fence: one order at a time waits for a door.
CREATE UNIQUE INDEX orders_one_per_door ON orders (device_id, door) WHERE state = 'paid';
CREATE INDEX orders_user ON orders (user_id, created_at DESC);

-- The items, with the name and price as they were when paid for.
CREATE TABLE order_items (
    order_id    UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id  UUID NOT NULL REFERENCES products (id),
    name        TEXT NOT NULL,
    qty         INTEGER NOT NULL CHECK (qty > 0),
    unit_price  BIGINT NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (order_id, product_id)
);

-- The ledger's kinds stay as they are: an order is a `charge`, its cancellation a `refund`.
