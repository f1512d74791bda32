-- Alarms operators handle (issue 23): one row per alarm, open -> acknowledged -> resolved, with
-- its severity. A kind raised again at the same door while the alarm is not resolved counts on
-- the same row (`times`, `last_raised_at`) instead of flooding the list.
CREATE TABLE alarms (
    id              BIGSERIAL PRIMARY KEY,
    device_id       TEXT NOT NULL CHECK (length(device_id) BETWEEN 1 AND 32),
    door            INTEGER CHECK (door BETWEEN 1 AND 512),
    kind            TEXT NOT NULL
                    CHECK (kind IN ('forced_open', 'door_ajar', 'tamper', 'power_loss', 'jammed')),
    severity        TEXT NOT NULL CHECK (severity IN ('critical', 'major', 'minor')),
    state           TEXT NOT NULL DEFAULT 'open'
                    CHECK (state IN ('open', 'acknowledged', 'resolved')),
    raised_at       TIMESTAMPTZ NOT NULL,
    last_raised_at  TIMESTAMPTZ NOT NULL,
    times           INTEGER NOT NULL DEFAULT 1 CHECK (times >= 1),
    acknowledged_by UUID,
    acknowledged_at TIMESTAMPTZ,
    resolved_by     UUID,
    resolved_at     TIMESTAMPTZ,
    resolution      TEXT CHECK (length(resolution) <= 500),
    CHECK (state <> 'open' OR (acknowledged_at IS NULL AND resolved_at IS NULL)),
    CHECK (state <> 'acknowledged' OR acknowledged_at IS NOT NULL),
    CHECK (state <> 'resolved' OR resolved_at IS NOT NULL)
);
-- One alarm not yet resolved per locker, door and kind.
CREATE UNIQUE INDEX alarms_unresolved ON alarms (device_id, (COALESCE(door, 0)), kind)
    WHERE state <> 'resolved';
CREATE INDEX alarms_by_state ON alarms (state, id);
CREATE INDEX alarms_by_device ON alarms (device_id, id);
