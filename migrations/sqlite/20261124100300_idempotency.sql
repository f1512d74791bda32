-- Answers to mutating requests sent with an Idempotency-Key, per user, kept 24 hours (see
-- ../20261124091000_idempotency.sql). Times are written by the gateway (compared as text, so
-- always in one format).
CREATE TABLE idempotency_keys (
    user_id        BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key            TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_sha256 BLOB NOT NULL CHECK (length(request_sha256) = 32),
    status         INTEGER,
    content_type   TEXT,
    body           BLOB,
    created_at     TEXT NOT NULL,
    completed_at   TEXT,
    PRIMARY KEY (user_id, key)
) STRICT;
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
