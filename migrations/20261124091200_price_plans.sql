-- Price plans, by door size class; a rental copies its plan's terms when it starts.
CREATE TABLE price_plans (
    id                      UUID PRIMARY KEY,
    name                    TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    currency                TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    size_class              TEXT NOT NULL CHECK (length(size_class) BETWEEN 1 AND 16),
    deposit                 BIGINT NOT NULL CHECK (deposit >= 0),
    free_minutes            INTEGER NOT NULL CHECK (free_minutes >= 0),
    unit_minutes            INTEGER NOT NULL CHECK (unit_minutes >= 1),
    price_per_unit          BIGINT NOT NULL CHECK (price_per_unit >= 0),
    cap_per_24h             BIGINT NOT NULL CHECK (cap_per_24h >= 0),
    max_minutes             INTEGER NOT NULL CHECK (max_minutes >= 1),
    overdue_price_per_unit  BIGINT NOT NULL CHECK (overdue_price_per_unit >= 0),
    active                  BOOLEAN NOT NULL DEFAULT true,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One active plan per size class.
CREATE UNIQUE INDEX price_plans_active_size ON price_plans (size_class) WHERE active;
