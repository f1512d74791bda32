-- Firmware campaigns (issue 24): an image rolled out to target lockers in waves, each started
-- once the one before reached its success threshold, stopped by itself past its error
-- threshold; installs only inside a daily maintenance window. Owned by src/firmware.
CREATE TABLE firmware_campaigns (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    image_id       UUID NOT NULL REFERENCES firmware_images (id),
    -- The waves as asked, JSON: [{"count": 10}, {"percent": 50}, ...].
    waves          TEXT NOT NULL,
    wave_count     INTEGER NOT NULL CHECK (wave_count BETWEEN 1 AND 100),
    waves_started  INTEGER NOT NULL DEFAULT 0 CHECK (waves_started >= 0),
    success_pct    INTEGER NOT NULL CHECK (success_pct BETWEEN 0 AND 100),
    error_pct      INTEGER NOT NULL CHECK (error_pct BETWEEN 0 AND 100),
    -- Installs only between these local times (HH:MM) in time_zone; both absent: any time.
    window_start   TEXT,
    window_end     TEXT,
    time_zone      TEXT NOT NULL,
    state          TEXT NOT NULL DEFAULT 'running'
                   CHECK (state IN ('running', 'paused', 'stopped', 'cancelled', 'finished')),
    stop_reason    TEXT,
    created_by     UUID,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    CHECK ((window_start IS NULL) = (window_end IS NULL))
);

-- One locker's update in a campaign; its id is the update_id on the wire.
CREATE TABLE firmware_updates (
    id            BIGSERIAL PRIMARY KEY CHECK (id < 4294967296),
    campaign_id   BIGINT NOT NULL REFERENCES firmware_campaigns (id) ON DELETE CASCADE,
    device_id     TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    wave          INTEGER NOT NULL CHECK (wave >= 0),
    state         TEXT NOT NULL DEFAULT 'waiting'
                  CHECK (state IN ('waiting', 'offered', 'downloading', 'downloaded', 'installing',
                                   'installed', 'failed', 'rolled_back', 'cancelled')),
    next_chunk    BIGINT NOT NULL DEFAULT 0 CHECK (next_chunk >= 0),
    chunks        BIGINT NOT NULL DEFAULT 0 CHECK (chunks >= 0),
    chunk_size    INTEGER NOT NULL DEFAULT 0 CHECK (chunk_size >= 0),
    reason        TEXT,
    from_version  TEXT,
    offered_at    TIMESTAMPTZ,
    updated_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    UNIQUE (campaign_id, device_id)
);
-- A locker takes one update at a time.
CREATE UNIQUE INDEX firmware_updates_one_active ON firmware_updates (device_id)
    WHERE state IN ('offered', 'downloading', 'downloaded', 'installing');
CREATE INDEX firmware_updates_by_campaign ON firmware_updates (campaign_id, wave, state);

-- The largest update chunk a locker's hello announced (none: it takes no updates). Owned by
-- src/device.
ALTER TABLE devices ADD COLUMN update_chunk INTEGER CHECK (update_chunk BETWEEN 16 AND 32768);
