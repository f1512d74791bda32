-- Commands to lockers: stored before they are sent, settled by the locker's answers.
ALTER TABLE devices ADD COLUMN down_counter BIGINT NOT NULL DEFAULT 0
    CHECK (down_counter BETWEEN 0 AND 4294967295);

CREATE TABLE commands (
    id              BIGSERIAL PRIMARY KEY,
    device_id       TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('unlock', 'configure')),
    door            INTEGER CHECK (door BETWEEN 1 AND 512),
    body            JSONB NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'executed', 'refused', 'expired', 'cancelled', 'unknown')),
    -- The locker session and downlink counter it was sent with (fixed at the first send).
    session         BIGINT CHECK (session BETWEEN 1 AND 4294967295),
    counter         BIGINT CHECK (counter BETWEEN 1 AND 4294967295),
    -- The envelope as first sealed: a resend in the same session repeats it byte for byte.
    payload         TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    refusal         TEXT,
    -- What the door did after an executed unlock: opened, already_open, jammed.
    door_result     TEXT CHECK (door_result IN ('opened', 'already_open', 'jammed')),
    -- A second answer that disagreed with the first (the first one wins).
    conflict        TEXT,
    duplicates      INTEGER NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at         TIMESTAMPTZ,
    answered_at     TIMESTAMPTZ,
    door_at         TIMESTAMPTZ
);

CREATE INDEX commands_open ON commands (device_id, state) WHERE state IN ('pending', 'sent');
CREATE INDEX commands_door ON commands (device_id, door, answered_at) WHERE kind = 'unlock';
