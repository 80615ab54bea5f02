-- Records a batch of outcomes (p_results: DELIVERY_RECORD's recordset; p_circuit: the breaker's
-- settings, and under `operational` the names of the operational events, as claims.record
-- passes them). One statement writes each attempt's result; the subscriptions a 410 disables;
-- the next try of each failure, in the same batch as the failed try (unless a try of that event to that subscription is already
-- pending: a replay or manual retry then carries on, rather than a second chain), due no later
-- than the event expires; each subscription's health as hookpost_health_next rules (failure
-- streak and window, circuit, pace, Retry-After), under its row lock, taken in key order; and
-- the operational events these changes raise, for the application's subscriptions to them. Only the claim that holds an attempt may
-- record it; an attempt whose lease expired and went back to pending unclaimed still takes its
-- holder's late result, saving a second send.
--
-- Then, last so that the lock is held only until the commit that follows, every subscription
-- recorded is made ready: an answer frees a slot (max_in_flight, a key, the probe), or holds it
-- whole (an open circuit, a Retry-After). One ready already is not touched, nor locked: a claim
-- busy with a backlog never waits for a record.
CREATE OR REPLACE FUNCTION hookpost_record(p_results jsonb, p_circuit jsonb)
RETURNS TABLE (status text, count bigint)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    -- The names of the operational events raised, as hookpost/operational.py names them.
    names constant jsonb := p_circuit -> 'operational';
    counts jsonb;
    recorded_subscriptions uuid[];
BEGIN
    WITH result AS MATERIALIZED (
        SELECT * FROM jsonb_to_recordset(p_results) AS r(
            ord integer, id uuid, claim_id uuid, status attempt_status, response_status integer,
            response_headers jsonb, response_body text, elapsed_ms integer, error text,
            retry_in_s double precision, disable boolean, failure boolean, throttled boolean,
            pause_s double precision)
    ),
    outcome AS (
        UPDATE attempts a
        SET status = r.status, finished_at = now(), lease_expires_at = NULL,
            response_status = r.response_status, response_headers = r.response_headers,
            response_body = r.response_body, elapsed_ms = r.elapsed_ms, error = r.error
        FROM result r
        WHERE a.id = ANY(ARRAY(SELECT id FROM result)) AND a.id = r.id
          AND a.claimed_by = r.claim_id AND a.status IN ('in_flight', 'pending')
        RETURNING a.id, a.status, a.application_id, a.event_id, a.subscription_id, a.try_number,
                  a.ordering_key, a.expires_at, a.priority, a.batch_id, r.ord, r.retry_in_s,
                  r.disable, r.failure, r.throttled, r.pause_s, r.response_status, r.error,
                  -- A batch is one request to the receiver: its members count once.
                  coalesce(a.batch_id, a.id) AS request
    ),
    per_subscription AS MATERIALIZED (
        SELECT o.subscription_id, count(DISTINCT o.request)::integer AS sent,
               count(DISTINCT o.request) FILTER (WHERE o.failure)::integer AS failed,
               count(DISTINCT o.request) FILTER (WHERE o.status = 'succeeded')::integer
                   AS succeeded,
               count(DISTINCT o.request) FILTER (WHERE o.failure AND o.ord > o.last_success)
                   ::integer AS failed_since,
               bool_or(o.throttled) AS throttled, max(o.pause_s) AS pause_s,
               coalesce(array_agg(o.id) FILTER (WHERE o.failure), '{}') AS failed_ids,
               array_agg(o.id) AS ids
        FROM (SELECT *, coalesce(max(ord) FILTER (WHERE status = 'succeeded')
                                     OVER (PARTITION BY subscription_id), -1) AS last_success
              FROM outcome) AS o
        GROUP BY o.subscription_id
    ),
    locked AS MATERIALIZED (
        SELECT h.subscription_id, h AS health FROM subscription_health h
        WHERE h.subscription_id IN (SELECT subscription_id FROM per_subscription)
        ORDER BY h.subscription_id
        FOR NO KEY UPDATE
    ),
    decided AS MATERIALIZED (
        SELECT s.application_id, s.url, (l.health).circuit = 'closed' AND n.circuit = 'open'
                   AS opened, n.*
        FROM locked l
        JOIN per_subscription p USING (subscription_id)
        JOIN subscriptions s ON s.id = l.subscription_id
        -- The probe the claim sent, as it committed before sending it.
        JOIN subscription_state st ON st.subscription_id = l.subscription_id
        CROSS JOIN LATERAL hookpost_health_next(
            l.health, p.sent, p.failed, p.succeeded, p.failed_since, p.throttled, p.pause_s,
            CASE WHEN st.probe_id = ANY(p.ids) THEN st.probe_id = ANY(p.failed_ids) END,
            s.rate_limit_per_s, now(), p_circuit) AS n
    ),
    health AS (
        UPDATE subscription_health h
        SET circuit = d.circuit, failure_streak = d.failure_streak,
            window_started_at = d.window_started_at, window_sent = d.window_sent,
            window_failed = d.window_failed, probe_at = d.probe_at, cooldown_s = d.cooldown_s,
            opened_at = d.opened_at, pace_per_s = d.pace_per_s, paused_until = d.paused_until
        FROM decided d WHERE h.subscription_id = d.subscription_id
        RETURNING 1
    ),
    -- A slower pace starts from an empty bucket. The claim holds this row only briefly, and never
    -- waits for a record, so waiting here is short and cannot deadlock.
    repaced AS (
        UPDATE subscription_state st SET tokens = 0, tokens_at = now()
        FROM decided d JOIN locked l USING (subscription_id)
        WHERE st.subscription_id = d.subscription_id
          AND d.pace_per_s < coalesce((l.health).pace_per_s, 'infinity')
        RETURNING 1
    ),
    disabled AS (
        UPDATE subscriptions s
        SET enabled = false, disabled_reason = 'the receiver answered 410 Gone', updated_at = now()
        FROM outcome o
        WHERE o.disable AND s.id = o.subscription_id AND s.enabled
        RETURNING s.id, s.application_id, s.url, s.disabled_reason
    ),
    retried AS (
        INSERT INTO attempts (application_id, event_id, subscription_id, try_number, trigger,
                              due_at, ordering_key, expires_at, priority, batch_id)
        SELECT o.application_id, o.event_id, o.subscription_id, o.try_number + 1, 'retry',
               least(now() + make_interval(secs => o.retry_in_s), o.expires_at), o.ordering_key,
               o.expires_at, o.priority, o.batch_id
        FROM outcome o
        WHERE o.retry_in_s IS NOT NULL
          AND NOT EXISTS (
              SELECT FROM attempts p
              WHERE p.event_id = o.event_id AND p.subscription_id = o.subscription_id
                AND p.status = 'pending')
        RETURNING 1
    ),
    -- What happened that an application may subscribe to. No operational event is raised about
    -- the attempts of operational events: a receiver of given-up attempts that is down would
    -- otherwise feed itself for ever.
    raised AS MATERIALIZED (
        SELECT d.application_id, d.subscription_id AS about,
               names ->> 'circuit_opened' AS event_type,
               jsonb_build_object(
                   'subscription_id', d.subscription_id, 'url', d.url,
                   'opened_at', hookpost_rfc3339(now()), 'failure_streak', d.failure_streak,
                   'probe_at', hookpost_rfc3339(d.probe_at)) AS payload
        FROM decided d WHERE d.opened
        UNION ALL
        SELECT x.application_id, x.id, names ->> 'subscription_disabled',
               jsonb_build_object('subscription_id', x.id, 'url', x.url,
                                  'reason', x.disabled_reason,
                                  'disabled_at', hookpost_rfc3339(now()))
        FROM disabled x
        UNION ALL
        SELECT o.application_id, o.subscription_id, names ->> 'attempt_gave_up',
               jsonb_build_object('attempt_id', o.id, 'event_id', o.event_id,
                                  'event_type', e.event_type, 'subscription_id', o.subscription_id,
                                  'try_number', o.try_number, 'response_status', o.response_status,
                                  'error', o.error)
        FROM outcome o JOIN events e ON e.id = o.event_id
        WHERE o.status = 'gave_up'
          AND NOT starts_with(e.event_type, names ->> 'reserved_prefix')
    ),
    audience AS MATERIALIZED (
        SELECT r.application_id, r.event_type, r.payload, r.ord, s.id AS subscription_id,
               s.ordering
        FROM (SELECT *, row_number() OVER () AS ord FROM raised) AS r
        JOIN subscriptions s
          ON s.application_id = r.application_id AND s.enabled
         AND r.event_type = ANY(s.event_types)
         AND (s.payload_filter IS NULL OR r.payload @@ s.payload_filter::jsonpath)
         -- the subscription just disabled gets no more attempts
         AND NOT (r.event_type = names ->> 'subscription_disabled' AND s.id = r.about)
        -- As ingest does: a PATCH changing `ordering` waits for this, or this reads its result.
        FOR KEY SHARE OF s
    ),
    operational AS MATERIALIZED (
        SELECT hookpost_uuid7() AS id, a.application_id, a.event_type, a.payload,
               count(*) AS attempts_created, a.ord
        FROM audience a GROUP BY a.ord, a.application_id, a.event_type, a.payload
    ),
    operational_events AS (
        INSERT INTO events (id, application_id, event_id, event_type, payload, labels,
                            occurred_at, attempts_created, ordering_key)
        SELECT o.id, o.application_id, o.id::text, o.event_type, o.payload, '{}', now(),
               o.attempts_created, o.event_type
        FROM operational o
        RETURNING 1
    ),
    operational_attempts AS (
        INSERT INTO attempts (application_id, event_id, subscription_id, ordering_key)
        SELECT a.application_id, o.id, a.subscription_id,
               CASE WHEN a.ordering = 'per_key' THEN a.event_type END
        FROM audience a JOIN operational o ON o.ord = a.ord
        RETURNING 1
    ),
    woken AS MATERIALIZED (
        SELECT pg_notify('hookpost_attempts', '')
        FROM (SELECT FROM operational_attempts LIMIT 1) AS created
    ),
    tally AS (
        SELECT o.status::text AS status, count(*) AS n FROM outcome o GROUP BY o.status
    )
    SELECT coalesce((SELECT jsonb_object_agg(t.status, t.n) FROM tally t), '{}'),
           coalesce((SELECT array_agg(p.subscription_id ORDER BY p.subscription_id)
                     FROM per_subscription p), '{}')
    INTO counts, recorded_subscriptions
    FROM (SELECT count(*) FROM woken) AS wake;

    UPDATE subscription_state st
    SET ready_at = greatest(now(), h.paused_until, CASE WHEN h.circuit = 'open' THEN h.probe_at END)
    FROM subscription_health h
    WHERE st.subscription_id = ANY(recorded_subscriptions)
      AND h.subscription_id = st.subscription_id
      AND (st.ready_at IS NULL OR st.ready_at > greatest(
          now(), h.paused_until, CASE WHEN h.circuit = 'open' THEN h.probe_at END));

    RETURN QUERY SELECT c.key, c.value::bigint FROM jsonb_each_text(counts) AS c;
END
$$;
