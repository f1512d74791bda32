-- Replay state of each device's uplinks, kept so a restarted gateway (or another gateway) refuses
-- what was already accepted: the current session and the last uplink counter seen in it, and every
-- session the device has used (a Hello for one of them is a replay).
ALTER TABLE devices ADD COLUMN up_counter BIGINT CHECK (up_counter BETWEEN 0 AND 4294967295);

CREATE TABLE device_sessions (
    device_id   TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    session     BIGINT NOT NULL CHECK (session BETWEEN 1 AND 4294967295),
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, session)
);

-- Every presence change, with its time and why.
CREATE TABLE presence_log (
    id          BIGSERIAL PRIMARY KEY,
    device_id   TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    online      BOOLEAN NOT NULL,
    session     BIGINT,
    reason      TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX presence_log_device ON presence_log (device_id, at);
CREATE INDEX devices_online_last_seen ON devices (last_seen_at) WHERE online;
