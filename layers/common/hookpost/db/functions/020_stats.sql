-- A latency in ms rounded to the nearest of 32 log-spaced steps per doubling, so that the
-- histogram of an hour has a few hundred keys at most and hours add up into days. A key is
-- within 2% of every latency it stands for (1.1% from the step, the rest from rounding to whole
-- ms); below 51 ms each latency is its own key.
CREATE OR REPLACE FUNCTION hookpost_latency_bucket(ms integer) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN ms < 1 THEN 0
                ELSE round(exp(round(ln(ms) * 32 / ln(2)) * ln(2) / 32))::integer END
$$;
