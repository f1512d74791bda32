-- Rentals (see ../20261124091300_rentals.sql, ../20261124091400_refunds.sql,
-- ../20261124091600_rental_ending.sql). `flags` is a JSON array of strings.
CREATE TABLE rentals (
    id            BLOB PRIMARY KEY,
    user_id       BLOB NOT NULL REFERENCES users (id),
    device_id     TEXT NOT NULL,
    door          INTEGER NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'active', 'ending', 'ended', 'cancelled')),
    plan_id       BLOB REFERENCES price_plans (id),
    terms         TEXT NOT NULL CHECK (json_valid(terms)),
    deposit_held  INTEGER NOT NULL CHECK (deposit_held >= 0),
    fee           INTEGER CHECK (fee >= 0),
    started_at    TEXT,
    ended_at      TEXT,
    start_command INTEGER REFERENCES commands (id),
    cancel_reason TEXT,
    flags         TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(flags) AND json_type(flags) = 'array'),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    refunded      INTEGER NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= coalesce(fee, 0)),
    ending_at     TEXT,
    FOREIGN KEY (device_id, door) REFERENCES doors (device_id, door)
) STRICT;
-- The database's fence: at most one rental holds a door.
CREATE UNIQUE INDEX rentals_one_per_door ON rentals (device_id, door)
    WHERE state IN ('pending', 'active', 'ending');
CREATE INDEX rentals_user ON rentals (user_id, created_at DESC);
