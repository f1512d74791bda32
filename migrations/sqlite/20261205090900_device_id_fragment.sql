-- Lockers found by any fragment of their id (see ../20261205090900_device_id_fragment.sql): an
-- edge gateway's few lockers are scanned; nothing to index.
SELECT 1;
