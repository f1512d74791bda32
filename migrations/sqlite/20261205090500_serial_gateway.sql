-- The gateway whose serial line a lock board hangs on (see the PostgreSQL migration).
ALTER TABLE devices ADD COLUMN serial_gateway TEXT;
