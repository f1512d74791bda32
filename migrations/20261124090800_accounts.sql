-- People who use the API: customers (role `user`) and operators (role `admin`).
CREATE TABLE users (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Bearer tokens: only their SHA-256 is kept; each expires.
CREATE TABLE api_tokens (
    token_sha256 BYTEA PRIMARY KEY CHECK (length(token_sha256) = 32),
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX api_tokens_expiry ON api_tokens (expires_at);
