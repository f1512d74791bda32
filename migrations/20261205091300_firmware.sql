-- Firmware images (issue 24): uploaded by operators, signed by a vendor's Ed25519 key (checked at
-- upload), kept whole with their SHA-256. Owned by src/firmware.
CREATE TABLE firmware_images (
    id           UUID PRIMARY KEY,
    version      TEXT NOT NULL UNIQUE CHECK (length(version) BETWEEN 1 AND 32),
    -- Space-separated models it fits.
    models       TEXT NOT NULL CHECK (length(models) BETWEEN 1 AND 1000),
    size         BIGINT NOT NULL CHECK (size > 0),
    sha256       BYTEA NOT NULL CHECK (length(sha256) = 32),
    signature    BYTEA NOT NULL CHECK (length(signature) = 64),
    key_name     TEXT NOT NULL,
    image        BYTEA NOT NULL CHECK (length(image) = size),
    uploaded_by  UUID,
    uploaded_at  TIMESTAMPTZ NOT NULL
);

-- Each firmware a locker announced in its hello, when first and last (owned by src/device).
CREATE TABLE device_firmware (
    device_id      TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    firmware       TEXT NOT NULL,
    first_seen_at  TIMESTAMPTZ NOT NULL,
    last_seen_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (device_id, firmware)
);
