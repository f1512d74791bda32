-- Time a rental is not billed for: a pickup whose door turned out not to open (jammed, refused,
-- or not executed) gives back the time between the pickup request and the moment that was known.
ALTER TABLE rentals ADD COLUMN unbilled_ms INTEGER NOT NULL DEFAULT 0 CHECK (unbilled_ms >= 0);
