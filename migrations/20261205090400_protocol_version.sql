-- The protocol version each locker announced in its last hello: 2 keeps a downlink anti-replay
-- window (several gateways may send to it at once), 1 needs counters in order (one gateway at a
-- time sends, holding the locker's turn). Lockers known before default to 1.
ALTER TABLE devices ADD COLUMN protocol_version SMALLINT NOT NULL DEFAULT 1;
