-- Firmware campaigns and each locker's update (see ../20261205091400_firmware_campaigns.sql).
CREATE TABLE firmware_campaigns (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    image_id       BLOB NOT NULL REFERENCES firmware_images (id),
    waves          TEXT NOT NULL,
    wave_count     INTEGER NOT NULL CHECK (wave_count BETWEEN 1 AND 100),
    waves_started  INTEGER NOT NULL DEFAULT 0 CHECK (waves_started >= 0),
    success_pct    INTEGER NOT NULL CHECK (success_pct BETWEEN 0 AND 100),
    error_pct      INTEGER NOT NULL CHECK (error_pct BETWEEN 0 AND 100),
    window_start   TEXT,
    window_end     TEXT,
    time_zone      TEXT NOT NULL,
    state          TEXT NOT NULL DEFAULT 'running'
                   CHECK (state IN ('running', 'paused', 'stopped', 'cancelled', 'finished')),
    stop_reason    TEXT,
    created_by     BLOB,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    CHECK ((window_start IS NULL) = (window_end IS NULL))
) STRICT;

CREATE TABLE firmware_updates (
    id            INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id < 4294967296),
    campaign_id   INTEGER NOT NULL REFERENCES firmware_campaigns (id) ON DELETE CASCADE,
    device_id     TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    wave          INTEGER NOT NULL CHECK (wave >= 0),
    state         TEXT NOT NULL DEFAULT 'waiting'
                  CHECK (state IN ('waiting', 'offered', 'downloading', 'downloaded', 'installing',
                                   'installed', 'failed', 'rolled_back', 'cancelled')),
    next_chunk    INTEGER NOT NULL DEFAULT 0 CHECK (next_chunk >= 0),
    chunks        INTEGER NOT NULL DEFAULT 0 CHECK (chunks >= 0),
    chunk_size    INTEGER NOT NULL DEFAULT 0 CHECK (chunk_size >= 0),
    reason        TEXT,
    from_version  TEXT,
    offered_at    TEXT,
    updated_at    TEXT NOT NULL,
    finished_at   TEXT,
    UNIQUE (campaign_id, device_id)
) STRICT;
CREATE UNIQUE INDEX firmware_updates_one_active ON firmware_updates (device_id)
    WHERE state IN ('offered', 'downloading', 'downloaded', 'installing');
CREATE INDEX firmware_updates_by_campaign ON firmware_updates (campaign_id, wave, state);

ALTER TABLE devices ADD COLUMN update_chunk INTEGER CHECK (update_chunk BETWEEN 16 AND 32768);
