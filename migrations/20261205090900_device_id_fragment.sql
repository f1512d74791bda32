-- Lockers found by any fragment of their id (issue 23): a trigram index serves
-- `lower(id) LIKE '%fragment%'` (pg_trgm ships with PostgreSQL's contrib modules).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX devices_id_fragment ON devices USING gin (lower(id) gin_trgm_ops);
