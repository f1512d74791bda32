-- Commands queued for an offline locker, with a time to live; and the locker's uptime clock, so a
-- command can carry a deadline the locker itself enforces.
ALTER TABLE commands ADD COLUMN expires_at TIMESTAMPTZ;
ALTER TABLE commands ADD COLUMN queued BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX commands_queued ON commands (device_id, id) WHERE state = 'pending' AND queued;
ALTER TABLE devices ADD COLUMN uptime_ms BIGINT CHECK (uptime_ms >= 0);
ALTER TABLE devices ADD COLUMN uptime_at TIMESTAMPTZ;
