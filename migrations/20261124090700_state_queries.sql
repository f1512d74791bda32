-- When the gateway last asked a locker about commands of unknown outcome (a lost or slow report is
-- asked for again).
ALTER TABLE devices ADD COLUMN state_asked_at TIMESTAMPTZ;
