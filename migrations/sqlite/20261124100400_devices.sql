-- Devices, their doors and their presence (see ../20261124090000_devices.sql,
-- ../20261124090200_presence.sql, ../20261124090500_door_state.sql and the door columns of
-- ../20261124091300_rentals.sql, ../20261124091700_sensor_misses.sql), in one table each.
CREATE TABLE devices (
    id                      TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 32
                                AND id NOT GLOB '*[^A-Za-z0-9_-]*'),
    model                   TEXT NOT NULL DEFAULT 'generic' CHECK (length(model) BETWEEN 1 AND 64),
    door_count              INTEGER NOT NULL CHECK (door_count BETWEEN 1 AND 512),
    firmware                TEXT,
    serial_no               TEXT,
    secret_sha256           BLOB NOT NULL CHECK (length(secret_sha256) = 32),
    tag_key                 BLOB NOT NULL CHECK (length(tag_key) = 32),
    previous_secret_sha256  BLOB CHECK (length(previous_secret_sha256) = 32),
    previous_tag_key        BLOB CHECK (length(previous_tag_key) = 32),
    previous_valid_until    TEXT,
    revoked_at              TEXT,
    online                  INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),
    session                 INTEGER CHECK (session BETWEEN 1 AND 4294967295),
    presence_changed_at     TEXT,
    last_seen_at            TEXT,
    created_at              TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    up_counter              INTEGER CHECK (up_counter BETWEEN 0 AND 4294967295),
    down_counter            INTEGER NOT NULL DEFAULT 0 CHECK (down_counter BETWEEN 0 AND 4294967295),
    uptime_ms               INTEGER CHECK (uptime_ms >= 0),
    uptime_at               TEXT,
    state_asked_at          TEXT,
    CHECK ((previous_secret_sha256 IS NULL) = (previous_tag_key IS NULL)),
    CHECK ((previous_secret_sha256 IS NULL) = (previous_valid_until IS NULL))
) STRICT;
CREATE INDEX devices_online_last_seen ON devices (last_seen_at) WHERE online;

CREATE TABLE doors (
    device_id            TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    door                 INTEGER NOT NULL CHECK (door BETWEEN 1 AND 512),
    size_class           TEXT NOT NULL DEFAULT 'm' CHECK (length(size_class) BETWEEN 1 AND 16),
    sensor               TEXT NOT NULL DEFAULT 'unknown' CHECK (sensor IN ('open', 'closed', 'unknown')),
    locked               INTEGER CHECK (locked IN (0, 1)),
    occupied             INTEGER CHECK (occupied IN (0, 1)),
    state_at             TEXT,
    uncommanded_open_at  TEXT,
    suspect              INTEGER NOT NULL DEFAULT 0 CHECK (suspect IN (0, 1)),
    jams_in_row          INTEGER NOT NULL DEFAULT 0 CHECK (jams_in_row >= 0),
    out_of_service       INTEGER NOT NULL DEFAULT 0 CHECK (out_of_service IN (0, 1)),
    sensor_misses        INTEGER NOT NULL DEFAULT 0 CHECK (sensor_misses >= 0),
    PRIMARY KEY (device_id, door)
) STRICT;

CREATE TABLE device_sessions (
    device_id   TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    session     INTEGER NOT NULL CHECK (session BETWEEN 1 AND 4294967295),
    started_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (device_id, session)
) STRICT;

CREATE TABLE presence_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    online      INTEGER NOT NULL CHECK (online IN (0, 1)),
    session     INTEGER,
    reason      TEXT NOT NULL,
    at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX presence_log_device ON presence_log (device_id, at);
