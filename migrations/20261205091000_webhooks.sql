-- Webhooks (issue 23): operators subscribe an HTTPS endpoint to event types; every event the
-- outbox publishes is written here once per matching endpoint, in the transaction that marks it
-- published, then delivered (signed), retried with backoff, and logged. This module
-- (src/webhook) owns both tables.
CREATE TABLE webhooks (
    id           UUID PRIMARY KEY,
    url          TEXT NOT NULL CHECK (length(url) BETWEEN 8 AND 500),
    -- Space-separated patterns: an event type (`rental.ended`), a family (`alarm.*`) or `*`.
    event_types  TEXT NOT NULL CHECK (length(event_types) BETWEEN 1 AND 1000),
    -- The HMAC key the deliveries are signed with (the gateway must have it to sign).
    secret       TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    created_by   UUID,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    webhook_id       UUID NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         UUID NOT NULL,
    event_type       TEXT NOT NULL,
    -- The body sent, byte for byte (the signature covers it).
    payload          TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    last_status      INTEGER,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    delivered_at     TIMESTAMPTZ,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, id);
