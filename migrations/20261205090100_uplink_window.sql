-- The anti-replay window of a locker's uplinks (RFC 4303 §3.4.3): `up_counter` is the highest
-- counter accepted in the session, bit i of `up_window` says `up_counter - i` was accepted. With
-- several gateways one locker's uplinks are recorded out of order; the window takes each once.
-- Rows from before: everything up to `up_counter` counts as seen.
ALTER TABLE devices ADD COLUMN up_window BIGINT NOT NULL DEFAULT 0;
UPDATE devices SET up_window = -1 WHERE up_counter IS NOT NULL;
-- Which uplink a door's state came from: an older one (recorded late, through another gateway)
-- never overwrites a newer one's.
ALTER TABLE doors ADD COLUMN state_session BIGINT;
ALTER TABLE doors ADD COLUMN state_counter BIGINT;
