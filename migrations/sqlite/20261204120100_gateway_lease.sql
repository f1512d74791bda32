-- One gateway per database: the running gateway holds this lease and renews it; another refuses
-- to start while it is renewed, and takes it over once it expires (the holder died).
CREATE TABLE gateway_lease (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    renewed_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) STRICT;
