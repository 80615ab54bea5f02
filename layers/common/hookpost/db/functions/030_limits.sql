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
CREATE OR REPLACE FUNCTION hookpost_take_tokens(
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
