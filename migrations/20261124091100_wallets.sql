-- Wallets, in integer minor units of the configured currency (see src/money.rs for the rounding
-- rule). available + held = the sum of the wallet's ledger, always; neither is ever negative.
CREATE TABLE wallets (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL UNIQUE REFERENCES users (id) ON DELETE RESTRICT,
    currency    TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    available   BIGINT NOT NULL DEFAULT 0 CHECK (available >= 0),
    held        BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0),
    -- Owed after a rental cost more than the hold and the balance; blocks new rentals.
    debt        BIGINT NOT NULL DEFAULT 0 CHECK (debt >= 0),
    version     BIGINT NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every movement of money, written in the transaction that changes the balance.
CREATE TABLE ledger (
    id               BIGSERIAL PRIMARY KEY,
    wallet_id        UUID NOT NULL REFERENCES wallets (id) ON DELETE RESTRICT,
    kind             TEXT NOT NULL CHECK (kind IN
                     ('top_up', 'hold', 'capture', 'release', 'charge', 'refund', 'adjustment')),
    available_delta  BIGINT NOT NULL,
    held_delta       BIGINT NOT NULL,
    -- The balance after it, for statements and audits.
    available_after  BIGINT NOT NULL CHECK (available_after >= 0),
    held_after       BIGINT NOT NULL CHECK (held_after >= 0),
    reference        TEXT CHECK (length(reference) <= 200),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (available_delta <> 0 OR held_delta <> 0)
);
CREATE INDEX ledger_wallet ON ledger (wallet_id, id);

-- Payment-provider events already applied (a webhook delivered twice tops up once).
CREATE TABLE payment_events (
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL CHECK (length(event_id) BETWEEN 1 AND 200),
    wallet_id    UUID NOT NULL REFERENCES wallets (id),
    amount       BIGINT NOT NULL CHECK (amount > 0),
    ledger_id    BIGINT NOT NULL REFERENCES ledger (id),
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);
