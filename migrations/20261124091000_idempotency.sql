-- Answers to mutating requests sent with an Idempotency-Key, per user, kept 24 hours: a retry
-- gets the first answer instead of doing the work again.
CREATE TABLE idempotency_keys (
    user_id        UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key            TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_sha256 BYTEA NOT NULL CHECK (length(request_sha256) = 32),
    -- NULL while the first request is still running.
    status         INTEGER,
    content_type   TEXT,
    body           BYTEA,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at   TIMESTAMPTZ,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
