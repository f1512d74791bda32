-- The gateways sharing this database, each with its lease (replaces the one-gateway lease; on
-- SQLite there is only ever one live gateway).
DROP TABLE gateway_lease;
CREATE TABLE gateways (
    id          TEXT PRIMARY KEY,
    process     TEXT NOT NULL,
    broker      TEXT NOT NULL CHECK (broker IN ('embedded', 'external')),
    exclusive   INTEGER NOT NULL,
    version     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    renewed_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    stopped_at  TEXT
) STRICT;
