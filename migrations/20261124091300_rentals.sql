-- Doors that need a person: suspect after a jam or an unknown outcome, out of service after
-- repeated jams (or a door the locker says does not exist).
ALTER TABLE doors ADD COLUMN suspect BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE doors ADD COLUMN jams_in_row INTEGER NOT NULL DEFAULT 0 CHECK (jams_in_row >= 0);
ALTER TABLE doors ADD COLUMN out_of_service BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE rentals (
    id            UUID PRIMARY KEY,
    user_id       UUID NOT NULL REFERENCES users (id),
    device_id     TEXT NOT NULL,
    door          INTEGER NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'active', 'ending', 'ended', 'cancelled')),
    plan_id       UUID REFERENCES price_plans (id),
    -- The plan's terms as they were at the start: later edits never change a running rental.
    terms         JSONB NOT NULL,
    deposit_held  BIGINT NOT NULL CHECK (deposit_held >= 0),
    fee           BIGINT CHECK (fee >= 0),
    -- Billing runs from the unlock at the start to the unlock at pickup.
    started_at    TIMESTAMPTZ,
    ended_at      TIMESTAMPTZ,
    start_command BIGINT REFERENCES commands (id),
    -- Why it was cancelled, or what operators should look at.
    cancel_reason TEXT,
    flags         TEXT[] NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    FOREIGN KEY (device_id, door) REFERENCES doors (device_id, door)
);
-- The database's fence: at most one rental holds a door.
CREATE UNIQUE INDEX rentals_one_per_door ON rentals (device_id, door)
    WHERE state IN ('pending', 'active', 'ending');
CREATE INDEX rentals_user ON rentals (user_id, created_at DESC);
