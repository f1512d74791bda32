-- Every operator action, allowed or refused (see ../20261124090900_audit.sql).
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    actor_id    BLOB,
    actor_email TEXT,
    action      TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 128),
    target      TEXT CHECK (length(target) <= 256),
    outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
    detail      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
) STRICT;
CREATE INDEX audit_log_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
