-- The running totals behind GET /v1/metrics' counters (tables: migration 0012): whatever writes
-- stats_hourly (the refresh_views job's STATS_REFRESH, or the previous release's during a
-- deploy) adds to stats_totals and stats_latency_totals what the write raised.
--
-- The refresh recomputes the latest hours again and again; each time only the difference from
-- the row it replaces is added, so an hour counts once however often it is recomputed. A
-- difference below zero adds nothing: a count goes down only when rows it counted were deleted
-- (a subscription's or an application's, or events past retention in an hour a long-stalled
-- refresh recomputes), and a counter must not. Tries counted by the same recompute of the same
-- hour as such a deletion are offset by it.
--
-- Deleting stats_hourly rows takes nothing away. A row written again for an hour whose row was
-- deleted counts again, so a cleanup of stats_hourly must delete only hours the refresh no longer
-- recomputes: before the hour of stats_refresh.refreshed_at less the refresh's margin (any
-- retention counted in days is).
--
-- p_fresh are rows as written, p_stale the same rows (by application and hour) as they were;
-- an inserted row has none.
CREATE OR REPLACE FUNCTION hookpost_stats_count(p_fresh stats_hourly[], p_stale stats_hourly[])
RETURNS void
LANGUAGE sql VOLATILE AS $$
    WITH pairs AS MATERIALIZED (
        SELECT f.application_id, f.hour,
               greatest(f.events - coalesce(s.events, 0), 0) AS events,
               greatest(f.succeeded - coalesce(s.succeeded, 0), 0) AS succeeded,
               greatest(f.failed - coalesce(s.failed, 0), 0) AS failed,
               greatest(f.gave_up - coalesce(s.gave_up, 0), 0) AS gave_up,
               f.latency_ms, f.latency_count, f.failed_latency_ms, f.failed_latency_count,
               f.gave_up_latency_ms, f.gave_up_latency_count,
               s.latency_ms AS was_latency_ms, s.latency_count AS was_latency_count,
               s.failed_latency_ms AS was_failed_latency_ms,
               s.failed_latency_count AS was_failed_latency_count,
               s.gave_up_latency_ms AS was_gave_up_latency_ms,
               s.gave_up_latency_count AS was_gave_up_latency_count
        FROM unnest(p_fresh) AS f
        LEFT JOIN unnest(p_stale) AS s
            ON s.application_id = f.application_id AND s.hour = f.hour
    ),
    counted AS (
        INSERT INTO stats_totals AS t (application_id, events, succeeded, failed, gave_up)
        SELECT application_id, sum(events), sum(succeeded), sum(failed), sum(gave_up)
        FROM pairs
        GROUP BY application_id
        ON CONFLICT (application_id) DO UPDATE
        SET events = t.events + excluded.events, succeeded = t.succeeded + excluded.succeeded,
            failed = t.failed + excluded.failed, gave_up = t.gave_up + excluded.gave_up
        WHERE (excluded.events, excluded.succeeded, excluded.failed, excluded.gave_up)
              <> (0, 0, 0, 0)
        RETURNING 1
    ),
    -- Each key of each row on its own: a key that lost counts does not offset another. A
    -- histogram the write left as it was is not read.
    raised AS (
        SELECT h.outcome, d.ms, d.n
        FROM pairs p
        CROSS JOIN LATERAL (VALUES
            ('succeeded', p.latency_ms, p.latency_count, p.was_latency_ms, p.was_latency_count),
            ('failed', p.failed_latency_ms, p.failed_latency_count, p.was_failed_latency_ms,
             p.was_failed_latency_count),
            ('gave_up', p.gave_up_latency_ms, p.gave_up_latency_count, p.was_gave_up_latency_ms,
             p.was_gave_up_latency_count)
        ) AS h(outcome, keys_ms, counts, was_keys_ms, was_counts)
        CROSS JOIN LATERAL (
            SELECT k.ms, k.n - coalesce(w.n, 0) AS n
            FROM unnest(h.keys_ms, h.counts) AS k(ms, n)
            LEFT JOIN unnest(h.was_keys_ms, h.was_counts) AS w(ms, n) USING (ms)
        ) AS d
        WHERE (h.keys_ms, h.counts) IS DISTINCT FROM (h.was_keys_ms, h.was_counts)
          AND d.n > 0
    )
    INSERT INTO stats_latency_totals AS t (outcome, ms, n)
    SELECT outcome, ms, sum(n) FROM raised
    GROUP BY outcome, ms
    ON CONFLICT ON CONSTRAINT stats_latency_totals_pkey DO UPDATE SET n = t.n + excluded.n
$$;

CREATE OR REPLACE FUNCTION hookpost_stats_counted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A transition table's rows are anonymous records of the table's columns.
    IF TG_OP = 'INSERT' THEN
        PERFORM hookpost_stats_count(ARRAY(SELECT ROW(f.*)::stats_hourly FROM fresh_stats f),
                                     '{}');
    ELSE
        PERFORM hookpost_stats_count(ARRAY(SELECT ROW(f.*)::stats_hourly FROM fresh_stats f),
                                     ARRAY(SELECT ROW(s.*)::stats_hourly FROM stale_stats s));
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER stats_hourly_counted_on_insert AFTER INSERT ON stats_hourly
    REFERENCING NEW TABLE AS fresh_stats
    FOR EACH STATEMENT EXECUTE FUNCTION hookpost_stats_counted();
CREATE OR REPLACE TRIGGER stats_hourly_counted_on_update AFTER UPDATE ON stats_hourly
    REFERENCING OLD TABLE AS stale_stats NEW TABLE AS fresh_stats
    FOR EACH STATEMENT EXECUTE FUNCTION hookpost_stats_counted();
