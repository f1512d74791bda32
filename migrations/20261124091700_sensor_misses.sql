-- A door sensor that fails to answer (reported `unknown`, or its board silent) keeps its last
-- state through two failed reads and becomes `unknown` on the third.
ALTER TABLE doors ADD COLUMN sensor_misses INTEGER NOT NULL DEFAULT 0 CHECK (sensor_misses >= 0);
