-- Commands to lockers (see ../20261124090300_commands.sql and the migrations after it that add
-- columns to `commands`): one row per command, its state, its answer, its door's result.
CREATE TABLE commands (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id       TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('unlock', 'configure')),
    door            INTEGER CHECK (door BETWEEN 1 AND 512),
    body            TEXT NOT NULL CHECK (json_valid(body)),
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'executed', 'refused', 'expired', 'cancelled', 'unknown')),
    session         INTEGER CHECK (session BETWEEN 1 AND 4294967295),
    counter         INTEGER CHECK (counter BETWEEN 1 AND 4294967295),
    payload         TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    refusal         TEXT,
    door_result     TEXT CHECK (door_result IN ('opened', 'already_open', 'jammed')),
    conflict        TEXT,
    duplicates      INTEGER NOT NULL DEFAULT 0,
    -- Written by the gateway (compared with the clock).
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    answered_at     TEXT,
    door_at         TEXT,
    settled_by      TEXT CHECK (settled_by IN ('ack', 'state_report')),
    surfaced_at     TEXT,
    expires_at      TEXT,
    queued          INTEGER NOT NULL DEFAULT 0 CHECK (queued IN (0, 1)),
    -- Who asked for it and why (see ../20261124090900_audit.sql).
    requested_by    BLOB REFERENCES users (id) ON DELETE SET NULL,
    reason          TEXT CHECK (length(reason) <= 200)
) STRICT;
CREATE INDEX commands_open ON commands (device_id, state) WHERE state IN ('pending', 'sent');
CREATE INDEX commands_door ON commands (device_id, door, answered_at) WHERE kind = 'unlock';
CREATE INDEX commands_unknown ON commands (device_id) WHERE state = 'unknown';
CREATE INDEX commands_queued ON commands (device_id, id) WHERE state = 'pending' AND queued;
