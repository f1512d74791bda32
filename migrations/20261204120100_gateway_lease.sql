-- One gateway per database until several can share one: the running gateway holds this lease
-- and renews it; another refuses to start while it is renewed, and takes it over once it expires
-- (the holder died).
CREATE TABLE gateway_lease (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    renewed_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
