-- One ingest request in one round trip: its API key, the events stored and fanned out, and its
-- rate-limit buckets, in one call (a function, so that the plans are kept in the server session
-- even where the client cannot prepare statements: RDS Proxy). One transaction: a 202 answered
-- from its rows means committed.
--
-- p_key_hash NULL skips the key and the limits (a call again after a stale answer: the first
-- call checked them). A key unknown, revoked (checked on every request, never cached) or of
-- another application still spends the request's tokens, as every request does, and is the
-- one row answered: 'unauthorized' or 'not_found' (or 'throttled' when a bucket was empty).
--
-- The buckets are taken last. Every request of every copy takes the one shared global bucket
-- with FOR UPDATE, and that lock lasts until commit: taken first it would queue every other
-- request behind this one's whole insert (a batch of 500 included); taken last it is held from
-- the take to the commit. A bucket found empty then raises SQLSTATE HP429 (DETAIL: seconds to
-- wait, then the empty scopes, space-separated), which undoes the insert: nothing stored, no
-- token spent. So that throttled callers do not pay for inserts undone, the buckets are first
-- read without a lock, and a request that would be refused is refused before any insert.
--
-- The statement is what queries.py's comment on EVENTS_INGEST describes: one row per event
-- stored (outcome 'ok'), or one row with stale true.
CREATE OR REPLACE FUNCTION hookpost_ingest(
    p_application_id uuid, p_key_hash bytea, p_keys text[], p_bursts double precision[],
    p_rates double precision[], p_events jsonb)
RETURNS TABLE (
    outcome text, retry_after_s double precision, exhausted text[], id uuid, event_id text,
    event_type text, attempts_created integer, stale boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    taken record;
    key_application uuid;
    limited boolean := p_key_hash IS NOT NULL AND cardinality(p_keys) > 0;
BEGIN
    IF p_key_hash IS NOT NULL THEN
        SELECT k.application_id INTO key_application FROM api_keys k
        WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL
          AND (k.expires_at IS NULL OR k.expires_at > now());
        IF key_application IS NULL OR key_application <> p_application_id
           OR (limited AND EXISTS (
               SELECT FROM rate_limit_buckets b
               JOIN unnest(p_keys, p_bursts, p_rates) AS u(k, burst, per_s) ON u.k = b.key
               WHERE least(u.burst, b.tokens + u.per_s
                           * greatest(0, extract(epoch FROM now() - b.updated_at))) < 1))
        THEN
            IF limited THEN
                -- Spent here, once: a bucket the read found empty may have refilled since.
                limited := false;
                SELECT * INTO taken FROM hookpost_take_tokens(p_keys, p_bursts, p_rates);
                IF NOT taken.allowed THEN
                    RETURN QUERY SELECT 'throttled', taken.retry_after_s, taken.exhausted,
                        NULL::uuid, NULL::text, NULL::text, NULL::integer, NULL::boolean;
                    RETURN;
                END IF;
            END IF;
            IF key_application IS NULL OR key_application <> p_application_id THEN
                RETURN QUERY SELECT CASE WHEN key_application IS NULL THEN 'unauthorized'
                                         ELSE 'not_found' END,
                    0::double precision, '{}'::text[],
                    NULL::uuid, NULL::text, NULL::text, NULL::integer, NULL::boolean;
                RETURN;
            END IF;
        END IF;
    END IF;
    -- Two requests with events of one ordering key for a debounced subscription, at once: the
    -- statement below reads pending attempts in a snapshot taken when it starts, so neither would
    -- see the other's and both would be sent. Each waits here for any other holding one of its
    -- keys to commit (a lock of this transaction only; taken in one order, so no two wait on
    -- each other), and the statement's fresh snapshot then sees and replaces its attempt.
    IF EXISTS (SELECT FROM subscriptions s
               WHERE s.application_id = p_application_id AND s.enabled
                 AND s.debounce_s IS NOT NULL) THEN
        PERFORM pg_advisory_xact_lock(k.lock_key)
        FROM (SELECT DISTINCT hashtextextended(s.id::text || '/' || x.ordering_key, 0) AS lock_key
              FROM subscriptions s
              CROSS JOIN jsonb_to_recordset(p_events) AS x(ordering_key text)
              WHERE s.application_id = p_application_id AND s.enabled
                AND s.debounce_s IS NOT NULL
              ORDER BY 1) AS k;
    END IF;
    RETURN QUERY
    WITH input AS MATERIALIZED (
        SELECT * FROM jsonb_to_recordset(p_events) AS t(
            ord integer, id uuid, event_id text, event_type text, payload jsonb, labels jsonb,
            occurred_at timestamptz, type_version timestamptz, ordering_key text,
            deliver_at timestamptz, expires_at timestamptz, priority smallint)
    ),
    -- The caller validated payloads against event types it may have cached: if any is gone,
    -- inactive or changed since (another version), nothing is stored and it asks again.
    stale AS MATERIALIZED (
        SELECT count(*) AS types FROM input i
        LEFT JOIN event_types t ON t.application_id = p_application_id AND t.name = i.event_type
        WHERE t.name IS NULL OR NOT t.active OR t.updated_at IS DISTINCT FROM i.type_version
    ),
    candidates AS MATERIALIZED (
        SELECT s.id, s.event_types, s.labels, s.ordering, s.debounce_s,
               s.payload_filter::jsonpath AS payload_filter
        FROM subscriptions s
        WHERE s.application_id = p_application_id AND s.enabled
          AND s.event_types && ((SELECT array_agg(DISTINCT event_type) FROM input) || '*'::text)
        FOR KEY SHARE OF s
    ),
    matched AS MATERIALIZED (
        SELECT i.ord, s.id AS subscription_id, s.ordering, s.debounce_s,
               row_number() OVER (PARTITION BY s.id, i.ordering_key ORDER BY i.ord DESC) = 1
                   AS last_of_key
        FROM input i
        JOIN candidates s ON s.event_types && ARRAY[i.event_type, '*'] AND i.labels @> s.labels
         AND (s.payload_filter IS NULL OR i.payload @@ s.payload_filter)
    ),
    -- Each event's count of attempts, by one pass over `matched` (a subquery per event scanned
    -- it once per event: a batch of 500 spent a third of its statement there).
    matched_counts AS MATERIALIZED (
        SELECT m.ord, count(*) AS attempts FROM matched m GROUP BY m.ord
    ),
    inserted AS (
        INSERT INTO events
            (id, application_id, event_id, event_type, payload, labels, occurred_at, attempts_created,
             ordering_key, deliver_at, expires_at, priority)
        SELECT i.id, p_application_id, i.event_id, i.event_type, i.payload, i.labels, i.occurred_at,
               coalesce(c.attempts, 0), i.ordering_key, i.deliver_at, i.expires_at, i.priority
        FROM input i LEFT JOIN matched_counts c ON c.ord = i.ord
        WHERE (SELECT types FROM stale) = 0 ORDER BY i.ord
        ON CONFLICT ON CONSTRAINT events_idempotency_key DO NOTHING
        RETURNING id, event_id, event_type, attempts_created
    ),
    fan AS MATERIALIZED (
        SELECT ins.id AS event_id, i.ordering_key, i.deliver_at, i.expires_at, i.priority,
               m.subscription_id, m.ordering, m.debounce_s, m.last_of_key
        FROM inserted ins JOIN input i ON i.id = ins.id JOIN matched m ON m.ord = i.ord
    ),
    -- Found by key through attempts_key_order_idx: on a debounced subscription attempts carry their
    -- event's ordering key whatever the subscription's `ordering`.
    superseded AS (
        UPDATE attempts a
        SET status = 'superseded', finished_at = now(),
            error = 'replaced by a newer event of its ordering key'
        FROM (SELECT DISTINCT f.subscription_id, f.ordering_key FROM fan f
              WHERE f.debounce_s IS NOT NULL) AS k
        WHERE a.subscription_id = k.subscription_id AND a.ordering_key = k.ordering_key
          AND a.status = 'pending' AND a.trigger = 'event' AND a.due_at > now()
        RETURNING a.subscription_id, k.ordering_key, a.debounce_until
    ),
    fanned_out AS (
        INSERT INTO attempts
            (application_id, event_id, subscription_id, status, due_at, expires_at, ordering_key,
             priority, debounce_until, finished_at, error)
        SELECT p_application_id, f.event_id, f.subscription_id,
               CASE WHEN f.debounce_s IS NULL OR f.last_of_key THEN 'pending'
                    ELSE 'superseded' END::attempt_status,
               CASE WHEN f.debounce_s IS NULL THEN greatest(f.deliver_at, now())
                    ELSE greatest(f.deliver_at, least(now() + make_interval(secs => f.debounce_s),
                                                      d.until)) END,
               f.expires_at,
               CASE WHEN f.ordering = 'per_key' OR f.debounce_s IS NOT NULL THEN f.ordering_key END,
               f.priority,
               d.until,
               CASE WHEN f.debounce_s IS NOT NULL AND NOT f.last_of_key THEN now() END,
               CASE WHEN f.debounce_s IS NOT NULL AND NOT f.last_of_key
                    THEN 'replaced by a newer event of its ordering key' END
        FROM fan f
        CROSS JOIN LATERAL (
            SELECT CASE WHEN f.debounce_s IS NOT NULL THEN coalesce(
                       (SELECT min(x.debounce_until) FROM superseded x
                        WHERE x.subscription_id = f.subscription_id
                          AND x.ordering_key = f.ordering_key),
                       now() + make_interval(secs => 10 * f.debounce_s)) END AS until
        ) AS d
        RETURNING 1
    ),
    woken AS MATERIALIZED (
        SELECT pg_notify('hookpost_attempts', '') FROM (SELECT FROM fanned_out LIMIT 1) AS created
    )
    SELECT 'ok', 0::double precision, '{}'::text[], ins.id, ins.event_id, ins.event_type,
           ins.attempts_created, false
    FROM inserted ins CROSS JOIN (SELECT count(*) FROM woken) AS wake
    UNION ALL
    SELECT 'ok', 0, '{}', NULL, NULL, NULL, NULL, true FROM stale WHERE types > 0;
    IF limited THEN
        SELECT * INTO taken FROM hookpost_take_tokens(p_keys, p_bursts, p_rates);
        IF NOT taken.allowed THEN
            RAISE EXCEPTION 'rate limited' USING ERRCODE = 'HP429',
                DETAIL = taken.retry_after_s || ' ' || array_to_string(taken.exhausted, ' ');
        END IF;
    END IF;
END
$$;
