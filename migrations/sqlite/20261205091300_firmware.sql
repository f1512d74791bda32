-- Firmware images and each locker's firmware history (see ../20261205091300_firmware.sql).
CREATE TABLE firmware_images (
    id           BLOB PRIMARY KEY,
    version      TEXT NOT NULL UNIQUE CHECK (length(version) BETWEEN 1 AND 32),
    models       TEXT NOT NULL CHECK (length(models) BETWEEN 1 AND 1000),
    size         INTEGER NOT NULL CHECK (size > 0),
    sha256       BLOB NOT NULL CHECK (length(sha256) = 32),
    signature    BLOB NOT NULL CHECK (length(signature) = 64),
    key_name     TEXT NOT NULL,
    image        BLOB NOT NULL CHECK (length(image) = size),
    uploaded_by  BLOB,
    uploaded_at  TEXT NOT NULL
) STRICT;

CREATE TABLE device_firmware (
    device_id      TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    firmware       TEXT NOT NULL,
    first_seen_at  TEXT NOT NULL,
    last_seen_at   TEXT NOT NULL,
    PRIMARY KEY (device_id, firmware)
) STRICT;
