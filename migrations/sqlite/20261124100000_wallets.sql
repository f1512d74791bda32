-- Edge mode (one gateway, one SQLite file): the same tables and guarantees as the PostgreSQL
-- schema in ../, in SQLite's dialect. Money in integer minor units; CHECKs keep balances
-- non-negative; available + held = the sum of the wallet's ledger, always. Times are UTC text in
-- RFC 3339.

-- The transactional outbox (see ../20261124090100_outbox.sql).
CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              BLOB NOT NULL UNIQUE,
    aggregate_type  TEXT NOT NULL,
    aggregate_id    TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL CHECK (json_valid(payload)),
    occurred_at     TEXT NOT NULL,
    published_at    TEXT
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

-- Wallets (see ../20261124091100_wallets.sql).
CREATE TABLE wallets (
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL UNIQUE REFERENCES users (id) ON DELETE RESTRICT,
    currency    TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    available   INTEGER NOT NULL DEFAULT 0 CHECK (available >= 0),
    held        INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    debt        INTEGER NOT NULL DEFAULT 0 CHECK (debt >= 0),
    version     INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE TABLE ledger (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    wallet_id        BLOB NOT NULL REFERENCES wallets (id) ON DELETE RESTRICT,
    kind             TEXT NOT NULL CHECK (kind IN
                     ('top_up', 'hold', 'capture', 'release', 'charge', 'refund', 'adjustment')),
    available_delta  INTEGER NOT NULL,
    held_delta       INTEGER NOT NULL,
    available_after  INTEGER NOT NULL CHECK (available_after >= 0),
    held_after       INTEGER NOT NULL CHECK (held_after >= 0),
    reference        TEXT CHECK (length(reference) <= 200),
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK (available_delta <> 0 OR held_delta <> 0)
) STRICT;
CREATE INDEX ledger_wallet ON ledger (wallet_id, id);

-- Payment-provider events already applied (a webhook delivered twice tops up once).
CREATE TABLE payment_events (
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL CHECK (length(event_id) BETWEEN 1 AND 200),
    wallet_id    BLOB NOT NULL REFERENCES wallets (id),
    amount       INTEGER NOT NULL CHECK (amount > 0),
    ledger_id    INTEGER NOT NULL REFERENCES ledger (id),
    received_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (provider, event_id)
) STRICT;
