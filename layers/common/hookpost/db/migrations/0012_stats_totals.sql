-- Running totals for the counters of GET /v1/metrics, which must never go down (Prometheus reads
-- any decrease as a counter reset), and the latencies of failed and given-up tries.
--
-- stats_hourly gains a latency histogram per outcome that had a response time: the existing
-- latency_ms/latency_count stay those of succeeded tries; failed_* and gave_up_* are new.
-- Constant defaults: adding the columns rewrites no row. Hours rolled up before this release keep
-- empty histograms for those two outcomes (the refresh recomputes only the latest hours).
ALTER TABLE stats_hourly
    ADD COLUMN failed_latency_ms integer[] NOT NULL DEFAULT '{}',
    ADD COLUMN failed_latency_count integer[] NOT NULL DEFAULT '{}',
    ADD COLUMN gave_up_latency_ms integer[] NOT NULL DEFAULT '{}',
    ADD COLUMN gave_up_latency_count integer[] NOT NULL DEFAULT '{}';

-- Per application: every count stats_hourly ever held, each hour counted once however often it is
-- recomputed. The triggers of db/functions/025_stats_totals.sql add what each write to
-- stats_hourly raises (a row's new value less its old one, never less than zero); deleting
-- stats_hourly rows takes nothing away.
CREATE TABLE stats_totals (
    application_id uuid PRIMARY KEY REFERENCES applications (id) ON DELETE CASCADE,
    events         bigint NOT NULL,
    succeeded      bigint NOT NULL,
    failed         bigint NOT NULL,
    gave_up        bigint NOT NULL
);

-- The latency histograms by outcome, every application's together (no application column: an
-- application deleted takes nothing away from them): key `ms` (hookpost_latency_bucket) seen `n`
-- times. A few hundred keys per outcome at most.
CREATE TABLE stats_latency_totals (
    outcome text NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'gave_up')),
    ms      integer NOT NULL,
    n       bigint NOT NULL,
    CONSTRAINT stats_latency_totals_pkey PRIMARY KEY (outcome, ms)
);

-- The totals start from what the rollup holds, so counters continue from it. The triggers are
-- created after this file (by the function files), so these rows are not counted twice.
INSERT INTO stats_totals (application_id, events, succeeded, failed, gave_up)
SELECT application_id, sum(events), sum(succeeded), sum(failed), sum(gave_up)
FROM stats_hourly
GROUP BY application_id;

INSERT INTO stats_latency_totals (outcome, ms, n)
SELECT 'succeeded', u.ms, sum(u.n)
FROM stats_hourly s, unnest(s.latency_ms, s.latency_count) AS u(ms, n)
GROUP BY u.ms;
