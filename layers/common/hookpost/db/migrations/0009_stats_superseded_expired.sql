-- The hourly rollup also counts attempts that ended without being sent: `superseded` (replaced by
-- a newer event of their ordering key under debounce_s) and `expired` (their event's expires_at
-- passed first). Both get a finished_at when they end, so they are bucketed like the others.
-- Constant defaults: adding the columns rewrites no row. Hours rolled up before this release keep
-- 0 (the refresh recomputes only the latest hours).
ALTER TABLE stats_hourly
    ADD COLUMN superseded integer NOT NULL DEFAULT 0,
    ADD COLUMN expired integer NOT NULL DEFAULT 0;
