-- Delivery statistics (an hourly rollup the refresh_views job keeps up to date), what cleanup
-- needs to find expired events cheaply, and the rate-limit token buckets.

-- Statistics are bucketed by when things happened to us: an event by its created_at, an attempt
-- by its finished_at. Both are "now" when written, so only the latest hours ever change and the
-- refresh reads just those hours through these indexes, however much history there is.
CREATE INDEX events_created_idx ON events (created_at);
CREATE INDEX attempts_finished_idx ON attempts (finished_at) WHERE finished_at IS NOT NULL;

-- A latency in ms rounded to the nearest of 32 log-spaced steps per doubling, so that the
-- histogram of an hour has a few hundred keys at most and hours add up into days. A key is
-- within 2% of every latency it stands for (1.1% from the step, the rest from rounding to whole
-- ms); below 51 ms each latency is its own key.
CREATE FUNCTION hookpost_latency_bucket(ms integer) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN ms < 1 THEN 0
                ELSE round(exp(round(ln(ms) * 32 / ln(2)) * ln(2) / 32))::integer END
$$;

-- The smallest UUIDv7 of a given instant: ids below it were made before it, so a range scan of
-- an (application_id, id) index finds an application's old rows.
CREATE FUNCTION hookpost_uuid7_floor(at timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT encode(substring(int8send((extract(epoch FROM at) * 1000)::bigint) FROM 3)
                  || '\x00000000000000000000'::bytea, 'hex')::uuid
$$;

-- One row per application per hour that had an event or a finished attempt. p50/p95 are exact
-- (nearest rank) over the hour's succeeded attempts; the histogram (latency_ms[i] seen
-- latency_count[i] times) is what a day's percentiles are computed from, since percentiles of
-- hours cannot be averaged into the percentiles of their day.
CREATE TABLE stats_hourly (
    application_id uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    hour           timestamptz NOT NULL,
    events         integer NOT NULL,
    succeeded      integer NOT NULL,
    failed         integer NOT NULL,
    gave_up        integer NOT NULL,
    p50_ms         integer,
    p95_ms         integer,
    latency_ms     integer[] NOT NULL,
    latency_count  integer[] NOT NULL,
    CONSTRAINT stats_hourly_pkey PRIMARY KEY (application_id, hour)
);
-- The refresh replaces the latest hours of every application at once.
CREATE INDEX stats_hourly_hour_idx ON stats_hourly (hour);

-- How far the rollup is complete: the next refresh starts from the hour this falls in (less a
-- margin for transactions that were still open).
CREATE TABLE stats_refresh (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    refreshed_at   timestamptz NOT NULL
);

-- Token buckets: one row each for the global limit, every source IP and every bearer token
-- (by hash), with the burst and refill rate it was last used with. Unlogged because they are
-- rewritten on every request and worth nothing after a crash (they come back full); the low
-- fillfactor leaves room on the page for those updates to stay HOT.
CREATE UNLOGGED TABLE rate_limit_buckets (
    key        text PRIMARY KEY,
    tokens     double precision NOT NULL,
    updated_at timestamptz NOT NULL,
    burst      double precision NOT NULL,
    per_s      double precision NOT NULL
) WITH (fillfactor = 50);

-- Takes a token from each of a request's buckets, or from none: the request is allowed when
-- every bucket holds at least one after refilling (per_s a second since its last use, up to its
-- burst; a missing bucket is full). Otherwise nothing is written, and retry_after_s says when
-- the emptiest bucket has a token again. A function, so that its plans are cached in the server
-- session even where the client cannot prepare statements (RDS Proxy), and one call per request.
--
-- Concurrency: rows are locked in key order, so concurrent calls queue on the shared global
-- bucket and never deadlock; FOR UPDATE reads each row's latest version, so no two calls spend
-- the same token. Two calls creating the same bucket at once both find it missing (full); the
-- insert's conflict then spends from the row the other just wrote, counting exactly.
CREATE FUNCTION hookpost_take_tokens(
    keys text[], bursts double precision[], rates double precision[],
    OUT allowed boolean, OUT retry_after_s double precision, OUT exhausted text[])
LANGUAGE plpgsql AS $$
DECLARE
    levels double precision[] := bursts;
    bucket record;
    i integer;
BEGIN
    FOR bucket IN
        SELECT b.key, b.tokens, b.updated_at FROM rate_limit_buckets b
        WHERE b.key = ANY(keys) ORDER BY b.key FOR UPDATE
    LOOP
        i := array_position(keys, bucket.key);
        levels[i] := least(bursts[i], bucket.tokens
                           + rates[i] * greatest(0, extract(epoch FROM now() - bucket.updated_at)));
    END LOOP;
    allowed := true;
    retry_after_s := 0;
    exhausted := '{}';
    FOR i IN 1 .. cardinality(keys) LOOP
        IF levels[i] < 1 THEN
            allowed := false;
            retry_after_s := greatest(retry_after_s, (1 - levels[i]) / rates[i]);
            exhausted := exhausted || split_part(keys[i], ':', 1);
        END IF;
    END LOOP;
    IF allowed THEN
        INSERT INTO rate_limit_buckets AS b (key, tokens, updated_at, burst, per_s)
        SELECT k, level - 1, now(), burst, per_s
        FROM unnest(keys, levels, bursts, rates) AS u(k, level, burst, per_s)
        ON CONFLICT (key) DO UPDATE
        SET tokens = least(excluded.burst, b.tokens + excluded.per_s
                           * greatest(0, extract(epoch FROM excluded.updated_at - b.updated_at))) - 1,
            updated_at = greatest(b.updated_at, excluded.updated_at),
            burst = excluded.burst,
            per_s = excluded.per_s;
    END IF;
END
$$;
