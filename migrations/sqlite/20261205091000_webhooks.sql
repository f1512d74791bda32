-- Webhooks (see ../20261205091000_webhooks.sql).
CREATE TABLE webhooks (
    id           BLOB PRIMARY KEY,
    url          TEXT NOT NULL CHECK (length(url) BETWEEN 8 AND 500),
    event_types  TEXT NOT NULL CHECK (length(event_types) BETWEEN 1 AND 1000),
    secret       TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    created_by   BLOB,
    created_at   TEXT NOT NULL
) STRICT;

CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id       BLOB NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         BLOB NOT NULL,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  TEXT NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    delivered_at     TEXT,
    UNIQUE (webhook_id, event_id)
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, id);
