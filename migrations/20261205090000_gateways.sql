-- The gateways sharing this database, each with its lease (replaces the one-gateway lease). A
-- gateway renews its row every third of its lease; a row whose lease expired belongs to a
-- gateway that died (or stopped: `stopped_at`), and its in-flight work may be taken over.
DROP TABLE gateway_lease;
CREATE TABLE gateways (
    id          TEXT PRIMARY KEY,
    process     TEXT NOT NULL,
    broker      TEXT NOT NULL CHECK (broker IN ('embedded', 'external')),
    exclusive   BOOLEAN NOT NULL,
    version     TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    renewed_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    stopped_at  TIMESTAMPTZ
);
