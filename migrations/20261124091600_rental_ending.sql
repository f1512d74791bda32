-- When a rental was claimed for its end: one left `ending` by a request that died is found by
-- the reconciler (with its door's lock free) and finished or put back.
ALTER TABLE rentals ADD COLUMN ending_at TIMESTAMPTZ;
