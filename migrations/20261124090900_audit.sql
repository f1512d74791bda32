-- Every operator action, allowed or refused: who, what, on what, when, and how it ended.
CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_id    UUID,
    actor_email TEXT,
    action      TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 128),
    target      TEXT CHECK (length(target) <= 256),
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    detail      JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_action ON audit_log (action, id);

-- Who asked for a command, and why (maintenance unlocks by operators).
ALTER TABLE commands ADD COLUMN requested_by UUID REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE commands ADD COLUMN reason TEXT CHECK (length(reason) <= 200);
