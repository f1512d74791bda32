-- The protocol version each locker announced in its last hello (see the PostgreSQL migration).
ALTER TABLE devices ADD COLUMN protocol_version INTEGER NOT NULL DEFAULT 1;
