-- Device identity: who may connect, with which secret, and the key their messages are tagged with.
CREATE TABLE devices (
    id                      TEXT PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,32}$'),
    model                   TEXT NOT NULL DEFAULT 'generic' CHECK (length(model) BETWEEN 1 AND 64),
    door_count              INTEGER NOT NULL CHECK (door_count BETWEEN 1 AND 512),
    firmware                TEXT,
    serial_no               TEXT,
    -- SHA-256 of the 32-byte provisioning secret (the MQTT password is its hex form).
    secret_sha256           BYTEA NOT NULL CHECK (length(secret_sha256) = 32),
    -- The envelope tag key, HMAC-SHA256(secret, "locker-gateway/tag-key/v1").
    tag_key                 BYTEA NOT NULL CHECK (length(tag_key) = 32),
    -- After a rotation the previous secret and key stay valid until this time.
    previous_secret_sha256  BYTEA CHECK (length(previous_secret_sha256) = 32),
    previous_tag_key        BYTEA CHECK (length(previous_tag_key) = 32),
    previous_valid_until    TIMESTAMPTZ,
    revoked_at              TIMESTAMPTZ,
    online                  BOOLEAN NOT NULL DEFAULT false,
    -- The locker's current session (from its Hello), as a u32.
    session                 BIGINT CHECK (session BETWEEN 1 AND 4294967295),
    presence_changed_at     TIMESTAMPTZ,
    last_seen_at            TIMESTAMPTZ,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((previous_secret_sha256 IS NULL) = (previous_tag_key IS NULL)),
    CHECK ((previous_secret_sha256 IS NULL) = (previous_valid_until IS NULL))
);

CREATE TABLE doors (
    device_id   TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    door        INTEGER NOT NULL CHECK (door BETWEEN 1 AND 512),
    size_class  TEXT NOT NULL DEFAULT 'm' CHECK (length(size_class) BETWEEN 1 AND 16),
    PRIMARY KEY (device_id, door)
);
