-- Price plans, by door size class (see ../20261124091200_price_plans.sql); a rental copies its
-- plan's terms when it starts. One active plan per size class.
CREATE TABLE price_plans (
    id                      BLOB PRIMARY KEY,
    name                    TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    currency                TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    size_class              TEXT NOT NULL CHECK (length(size_class) BETWEEN 1 AND 16),
    deposit                 INTEGER NOT NULL CHECK (deposit >= 0),
    free_minutes            INTEGER NOT NULL CHECK (free_minutes >= 0),
    unit_minutes            INTEGER NOT NULL CHECK (unit_minutes >= 1),
    price_per_unit          INTEGER NOT NULL CHECK (price_per_unit >= 0),
    cap_per_24h             INTEGER NOT NULL CHECK (cap_per_24h >= 0),
    max_minutes             INTEGER NOT NULL CHECK (max_minutes >= 1),
    overdue_price_per_unit  INTEGER NOT NULL CHECK (overdue_price_per_unit >= 0),
    active                  INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at              TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE UNIQUE INDEX price_plans_active_size ON price_plans (size_class) WHERE active;
