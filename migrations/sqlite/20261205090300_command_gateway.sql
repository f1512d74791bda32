-- The gateway whose request sent a command: only an expired gateway's commands in flight are
-- taken over.
ALTER TABLE commands ADD COLUMN gateway TEXT;
