-- Items the background workers failed on again and again (src/worker): listed for operators at
-- GET /v1/admin/stuck, known to a restarted gateway, removed when the item goes through.
CREATE TABLE worker_stuck (
    worker          TEXT NOT NULL,
    item            TEXT NOT NULL,
    failures        INTEGER NOT NULL CHECK (failures > 0),
    last_error      TEXT NOT NULL,
    first_failed_at TEXT NOT NULL,
    last_failed_at  TEXT NOT NULL,
    PRIMARY KEY (worker, item)
) STRICT;
