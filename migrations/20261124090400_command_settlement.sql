-- How a command's outcome was learned, and when an unknown outcome was shown to operators.
ALTER TABLE commands ADD COLUMN settled_by TEXT CHECK (settled_by IN ('ack', 'state_report'));
ALTER TABLE commands ADD COLUMN surfaced_at TIMESTAMPTZ;
CREATE INDEX commands_unknown ON commands (device_id) WHERE state = 'unknown';
