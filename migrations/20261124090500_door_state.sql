-- What each door's sensors last said (never guessed: `unknown` when the sensor does not answer).
ALTER TABLE doors ADD COLUMN sensor TEXT NOT NULL DEFAULT 'unknown'
    CHECK (sensor IN ('open', 'closed', 'unknown'));
ALTER TABLE doors ADD COLUMN locked BOOLEAN;
ALTER TABLE doors ADD COLUMN occupied BOOLEAN;
ALTER TABLE doors ADD COLUMN state_at TIMESTAMPTZ;
-- The last opening with no command behind it (a forced-open alarm is raised once per opening).
ALTER TABLE doors ADD COLUMN uncommanded_open_at TIMESTAMPTZ;
