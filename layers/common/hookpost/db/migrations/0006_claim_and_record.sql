-- The claim and the record of the deliver loop, as functions: the claim needs fresh snapshots
-- between its steps (a lock, then a read that must see everything committed before the lock),
-- which only a VOLATILE function gives inside one round trip; both keep their plans cached in the
-- server session even where the client cannot prepare statements (RDS Proxy).

-- RFC 3339 in UTC with a Z, as the API writes timestamps (for operational event payloads).
CREATE FUNCTION hookpost_rfc3339(at timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- What the claim reads of a subscription: its settings, its claim state and its health.
CREATE VIEW subscription_delivery AS
SELECT st.subscription_id, s.enabled, s.rate_limit_per_s, s.max_in_flight, s.ordering,
       h.circuit, h.probe_at, h.paused_until, h.pace_per_s, st.probe_id, st.tokens, st.tokens_at
FROM subscription_state st
JOIN subscriptions s ON s.id = st.subscription_id
JOIN subscription_health h ON h.subscription_id = st.subscription_id;

-- The head of every key of a per_key subscription that may go now: the attempt of the oldest
-- event (ingest order) with anything left to send, when no attempt of its key is in flight. With
-- p_due false, heads not due yet are included (to know when the next one is). A loose index scan
-- over the keys: the cost follows the number of keys with work, not the backlog behind them.
CREATE FUNCTION hookpost_key_heads(p_subscription_id uuid, p_due boolean, p_limit integer)
RETURNS TABLE (id uuid, due_at timestamptz)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE keys AS (
        (SELECT a.ordering_key FROM attempts a
         WHERE a.subscription_id = p_subscription_id AND a.status IN ('pending', 'in_flight')
           AND a.ordering_key IS NOT NULL
         ORDER BY a.ordering_key LIMIT 1)
        UNION ALL
        SELECT (SELECT a.ordering_key FROM attempts a
                WHERE a.subscription_id = p_subscription_id AND a.status IN ('pending', 'in_flight')
                  AND a.ordering_key IS NOT NULL AND a.ordering_key > keys.ordering_key
                ORDER BY a.ordering_key LIMIT 1)
        FROM keys WHERE keys.ordering_key IS NOT NULL
    )
    SELECT head.id, head.due_at
    FROM keys
    CROSS JOIN LATERAL (
        SELECT a.id, a.status, a.due_at, a.event_id FROM attempts a
        WHERE a.subscription_id = p_subscription_id AND a.ordering_key = keys.ordering_key
          AND a.status IN ('pending', 'in_flight')
        ORDER BY a.event_id, a.id LIMIT 1
    ) AS head
    WHERE keys.ordering_key IS NOT NULL AND head.status = 'pending'
      AND (NOT p_due OR head.due_at <= now())
      AND NOT EXISTS (
          SELECT FROM attempts f
          WHERE f.subscription_id = p_subscription_id AND f.ordering_key = keys.ordering_key
            AND f.status = 'in_flight')
    ORDER BY head.event_id
    LIMIT p_limit
$$;

-- When a claim should next look at a subscription, from what is committed now: its earliest
-- sendable attempt, no earlier than its circuit's probe, its receiver's Retry-After and its next
-- token. NULL when nothing is pending, or when all of it waits on an answer in flight (a
-- half-open probe, max_in_flight reached, every key busy): recording that answer makes the
-- subscription ready again.
CREATE FUNCTION hookpost_next_ready(p_subscription_id uuid) RETURNS timestamptz
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    sub record;
    next_at timestamptz;
    rate double precision;
BEGIN
    SELECT * INTO sub FROM subscription_delivery d WHERE d.subscription_id = p_subscription_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF sub.circuit = 'open' AND sub.probe_at <= now() AND EXISTS (
        SELECT FROM attempts a WHERE a.id = sub.probe_id AND a.status = 'in_flight'
    ) THEN
        RETURN NULL;
    END IF;
    IF sub.ordering = 'per_key' THEN
        SELECT min(h.due_at) INTO next_at
        FROM hookpost_key_heads(p_subscription_id, false, 1000000) h;
    ELSIF sub.max_in_flight IS NOT NULL AND sub.max_in_flight <= (
        SELECT count(*) FROM attempts a
        WHERE a.subscription_id = p_subscription_id AND a.status = 'in_flight'
    ) THEN
        RETURN NULL;
    ELSE
        SELECT a.due_at INTO next_at FROM attempts a
        WHERE a.subscription_id = p_subscription_id AND a.status = 'pending'
        ORDER BY a.due_at LIMIT 1;
    END IF;
    IF next_at IS NULL THEN
        RETURN NULL;
    END IF;
    rate := least(sub.rate_limit_per_s, sub.pace_per_s);
    RETURN greatest(
        next_at,
        sub.paused_until,
        CASE WHEN sub.circuit = 'open' THEN sub.probe_at END,
        CASE WHEN rate IS NOT NULL AND sub.tokens < 1
             THEN sub.tokens_at + make_interval(secs => (1 - sub.tokens) / rate) END);
END
$$;

-- Moves a subscription's ready_at to hookpost_next_ready, which may be later than now: safe only
-- if no attempt is being written for it that the move would hide. A writer of an attempt holds a
-- KEY SHARE lock on the state row until it commits (the attempts_subscription_state_fkey check),
-- and FOR UPDATE conflicts with it: with the lock (SKIP LOCKED: never wait in a claim), every such
-- writer has committed, the next statement's fresh snapshot sees its attempt, and any later one
-- waits for this transaction, then finds ready_at moved and pulls it forward itself. Without the
-- lock, the subscription stays ready for the next claim to look again.
CREATE FUNCTION hookpost_settle_ready(p_subscription_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM FROM subscription_state WHERE subscription_id = p_subscription_id
    FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
        UPDATE subscription_state SET ready_at = hookpost_next_ready(p_subscription_id)
        WHERE subscription_id = p_subscription_id;
    ELSE
        UPDATE subscription_state SET ready_at = now() WHERE subscription_id = p_subscription_id;
    END IF;
END
$$;

-- One subscription's part of a claim: up to p_quota of its due attempts leased to p_claim_id
-- (`sent`), and those the claim settles itself (`settled`: 'gave_up' when the subscription is
-- disabled, 'expired' past their event's expires_at). `hungry`: it took its whole quota and may
-- have more. The caller holds the subscription's state row lock; health is only read (the
-- record writes it).
--
-- An open circuit holds everything until its probe time, then sends one probe; a Retry-After
-- holds everything; max_in_flight and the token bucket (rate_limit_per_s or the adaptive pace,
-- whichever is lower; a burst of one second) cap the quota; per_key subscriptions send only key
-- heads. The calling loop may hold at most p_share attempts of one subscription (p_holding: how
-- many it holds now, by subscription), so that a slow receiver never takes all of a loop's slots
-- and others' fresh events find one free.
CREATE FUNCTION hookpost_claim_from(
    p_subscription_id uuid, p_quota integer, p_claim_id uuid, p_lease_s double precision,
    p_share integer, p_holding jsonb, OUT sent uuid[], OUT settled uuid[], OUT hungry boolean)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    sid constant uuid := p_subscription_id;
    sub record;
    probing boolean;
    cap integer;
    rate double precision;
    level double precision;
    picked uuid[] := '{}';
BEGIN
    sent := '{}';
    settled := '{}';
    hungry := false;
    SELECT * INTO sub FROM subscription_delivery d WHERE d.subscription_id = sid;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    IF NOT sub.enabled THEN
        WITH doomed AS (
            UPDATE attempts a
            SET status = 'gave_up', claimed_by = p_claim_id, started_at = now(),
                finished_at = now(), error = 'subscription disabled'
            WHERE a.id = ANY(ARRAY(
                SELECT d.id FROM attempts d
                WHERE d.subscription_id = sid AND d.status = 'pending' AND d.due_at <= now()
                ORDER BY d.due_at LIMIT 1000 FOR UPDATE SKIP LOCKED))
            RETURNING a.id
        )
        SELECT coalesce(array_agg(doomed.id), '{}') INTO settled FROM doomed;
        IF cardinality(settled) = 1000 THEN
            UPDATE subscription_state SET ready_at = now() WHERE subscription_id = sid;
        ELSE
            PERFORM hookpost_settle_ready(sid);
        END IF;
        RETURN;
    END IF;

    -- Held as a whole: every attempt of the subscription waits the same time.
    IF sub.paused_until > now() OR (sub.circuit = 'open' AND sub.probe_at > now()) THEN
        UPDATE subscription_state
        SET ready_at = greatest(sub.paused_until,
                                CASE WHEN sub.circuit = 'open' THEN sub.probe_at END)
        WHERE subscription_id = sid;
        RETURN;
    END IF;

    -- An open circuit past its probe time sends one probe, and nothing more while it is out.
    probing := sub.circuit = 'open';
    IF probing AND EXISTS (
        SELECT FROM attempts a WHERE a.id = sub.probe_id AND a.status = 'in_flight'
    ) THEN
        PERFORM hookpost_settle_ready(sid);
        RETURN;
    END IF;
    cap := least(CASE WHEN probing THEN 1 ELSE p_quota END,
                 p_share - coalesce((p_holding ->> sid::text)::integer, 0));
    IF sub.max_in_flight IS NOT NULL THEN
        cap := least(cap, sub.max_in_flight - (
            SELECT count(*) FROM attempts a
            WHERE a.subscription_id = sid AND a.status = 'in_flight')::integer);
    END IF;
    rate := least(sub.rate_limit_per_s, sub.pace_per_s);
    IF rate IS NOT NULL THEN
        level := least(greatest(rate, 1.0), coalesce(
            sub.tokens + rate * extract(epoch FROM now() - sub.tokens_at), greatest(rate, 1.0)));
        cap := least(cap, floor(level)::integer);
    END IF;

    IF cap > 0 THEN
        IF sub.ordering = 'per_key' THEN
            SELECT coalesce(array_agg(l.id), '{}') INTO picked FROM (
                SELECT a.id FROM attempts a
                WHERE a.id = ANY(ARRAY(SELECT h.id FROM hookpost_key_heads(sid, true, cap) h))
                  AND a.status = 'pending'
                FOR UPDATE SKIP LOCKED) AS l;
        ELSE
            SELECT coalesce(array_agg(l.id), '{}') INTO picked FROM (
                SELECT a.id FROM attempts a
                WHERE a.subscription_id = sid AND a.status = 'pending' AND a.due_at <= now()
                ORDER BY a.due_at LIMIT cap
                FOR UPDATE SKIP LOCKED) AS l;
        END IF;
    END IF;

    -- Leased, or ended if their event expired meanwhile: one statement.
    WITH taken AS (
        UPDATE attempts a
        SET status = CASE WHEN a.expires_at <= now() THEN 'expired'
                          ELSE 'in_flight' END::attempt_status,
            claimed_by = p_claim_id,
            started_at = CASE WHEN a.expires_at <= now() THEN NULL ELSE now() END,
            lease_expires_at = CASE WHEN a.expires_at <= now() THEN NULL
                                    ELSE now() + make_interval(secs => p_lease_s) END,
            finished_at = CASE WHEN a.expires_at <= now() THEN now() END,
            error = CASE WHEN a.expires_at <= now() THEN 'expired before it could be sent' END
        WHERE a.id = ANY(picked)
        RETURNING a.id, a.status
    )
    SELECT coalesce(array_agg(taken.id) FILTER (WHERE taken.status = 'in_flight'), '{}'),
           coalesce(array_agg(taken.id) FILTER (WHERE taken.status = 'expired'), '{}')
    INTO sent, settled
    FROM taken;

    IF rate IS NOT NULL OR (probing AND cardinality(sent) > 0) THEN
        UPDATE subscription_state
        SET tokens = CASE WHEN rate IS NOT NULL THEN level - cardinality(sent) END,
            tokens_at = CASE WHEN rate IS NOT NULL THEN now() END,
            probe_id = CASE WHEN probing AND cardinality(sent) > 0 THEN sent[1] ELSE probe_id END
        WHERE subscription_id = sid;
    END IF;
    hungry := cap > 0 AND cardinality(picked) = cap AND cap = p_quota AND NOT probing;
    IF hungry THEN
        -- There may be more, after everyone else's turn.
        UPDATE subscription_state SET ready_at = now() WHERE subscription_id = sid;
    ELSE
        PERFORM hookpost_settle_ready(sid);
    END IF;
END
$$;

-- Claims up to p_limit attempts for p_claim_id, leased for p_lease_s, and returns what sending
-- them needs (rows with status 'in_flight'), plus the attempts the claim settled itself.
--
-- Fairness: the subscriptions whose turn it is share the batch: each gets up to its equal part of
-- what is left, and what one does not use goes to the next; what is still left then goes to those
-- that took their whole part. Turns go by application first: every application with a ready
-- subscription has its longest-waiting one in the turn before any has a second, so however many
-- subscriptions one application has with a backlog, another's fresh event goes in the next claim.
-- Within an application, the oldest ready_at goes first, and one with more due goes to the back of
-- the queue (ready_at now). None another claim holds is taken. p_share, p_holding: see
-- hookpost_claim_from.
CREATE FUNCTION hookpost_claim(
    p_claim_id uuid, p_limit integer, p_lease_s double precision, p_share integer,
    p_holding jsonb)
RETURNS TABLE (
    id uuid, status text, try_number integer, event_id uuid, subscription_id uuid,
    event_type text, waited_ms bigint, payload text, occurred_at timestamptz, url text,
    headers jsonb, secret text, previous_secret text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    candidates uuid[];
    turn uuid[];
    hungry uuid[] := '{}';
    sid uuid;
    turn_index integer;
    remaining integer := p_limit;
    part record;
    sent_all uuid[] := '{}';
    settled_all uuid[] := '{}';
    -- What the loop holds of each subscription, with what this claim gave it so far.
    holding jsonb := p_holding;
BEGIN
    -- Every subscription ready fits in the turn (the usual case): no ranking needed.
    SELECT coalesce(array_agg(t.subscription_id ORDER BY t.ready_at, t.subscription_id), '{}')
    INTO turn
    FROM (SELECT st.subscription_id, st.ready_at FROM subscription_state st
          WHERE st.ready_at <= now()
          ORDER BY st.ready_at, st.subscription_id
          LIMIT p_limit + 1
          FOR NO KEY UPDATE SKIP LOCKED) AS t;
    IF cardinality(turn) > p_limit THEN
        WITH RECURSIVE applications AS (
            (SELECT st.application_id FROM subscription_state st
             WHERE st.ready_at <= now() ORDER BY st.application_id LIMIT 1)
            UNION ALL
            SELECT (SELECT st.application_id FROM subscription_state st
                    WHERE st.ready_at <= now() AND st.application_id > a.application_id
                    ORDER BY st.application_id LIMIT 1)
            FROM applications a WHERE a.application_id IS NOT NULL
        ),
        ranked AS (
            SELECT r.subscription_id, r.ready_at,
                   row_number() OVER (PARTITION BY a.application_id
                                      ORDER BY r.ready_at, r.subscription_id) AS place
            FROM applications a
            CROSS JOIN LATERAL (
                SELECT st.subscription_id, st.ready_at FROM subscription_state st
                WHERE st.application_id = a.application_id AND st.ready_at <= now()
                ORDER BY st.ready_at, st.subscription_id LIMIT p_limit
            ) AS r
            WHERE a.application_id IS NOT NULL
        )
        SELECT coalesce(
                   array_agg(c.subscription_id ORDER BY c.place, c.ready_at, c.subscription_id),
                   '{}')
        INTO candidates
        FROM (SELECT * FROM ranked
              ORDER BY place, ready_at, subscription_id LIMIT 2 * p_limit) AS c;
        -- Locked apart from the ranking (a window cannot be locked), in turn order; those another
        -- claim holds are passed over.
        SELECT coalesce(
                   array_agg(t.subscription_id
                             ORDER BY array_position(candidates, t.subscription_id)),
                   '{}')
        INTO turn
        FROM (SELECT st.subscription_id FROM subscription_state st
              WHERE st.subscription_id = ANY(candidates) AND st.ready_at <= now()
              FOR NO KEY UPDATE SKIP LOCKED) AS t;
        turn := turn[1:p_limit];
    END IF;

    FOR pass IN 1 .. 2 LOOP
        turn_index := 0;
        FOREACH sid IN ARRAY turn LOOP
            turn_index := turn_index + 1;
            -- The rest keep their place at the front of the queue for the next claim.
            EXIT WHEN remaining <= 0;
            part := hookpost_claim_from(
                sid, ceil(remaining::numeric / (cardinality(turn) - turn_index + 1))::integer,
                p_claim_id, p_lease_s, p_share, holding);
            holding := holding || jsonb_build_object(
                sid::text, coalesce((holding ->> sid::text)::integer, 0) + cardinality(part.sent));
            sent_all := sent_all || part.sent;
            settled_all := settled_all || part.settled;
            remaining := remaining - cardinality(part.sent);
            IF part.hungry THEN
                hungry := hungry || sid;
            END IF;
        END LOOP;
        turn := hungry;
        hungry := '{}';
    END LOOP;

    RETURN QUERY
    SELECT a.id, a.status::text, a.try_number, a.event_id, a.subscription_id, e.event_type,
           (extract(epoch FROM now() - a.due_at) * 1000)::bigint,
           e.payload::text, e.occurred_at, s.url, s.headers, s.secret,
           CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END
    FROM attempts a
    JOIN events e ON e.id = a.event_id
    JOIN subscriptions s ON s.id = a.subscription_id
    WHERE a.id = ANY(sent_all)
    UNION ALL
    SELECT a.id, a.status::text, a.try_number, a.event_id, a.subscription_id,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    FROM attempts a WHERE a.id = ANY(settled_all);
END
$$;

-- Records a batch of outcomes (p_results: DELIVERY_RECORD's recordset; p_circuit: the breaker's
-- settings). One statement writes each attempt's result; the subscriptions a 410 disables; the
-- next try of each failure (unless a try of that event to that subscription is already pending:
-- a replay or manual retry then carries on, rather than a second chain), due no later than the
-- event expires; each subscription's health (failure streak and window, circuit, pace,
-- Retry-After), under its row lock, taken in key order; and the operational events these changes
-- raise, for the application's subscriptions to them. Only the claim that holds an attempt may
-- record it; an attempt whose lease expired and went back to pending unclaimed still takes its
-- holder's late result, saving a second send.
--
-- Then, last so that the lock is held only until the commit that follows, every subscription
-- recorded is made ready: an answer frees a slot (max_in_flight, a key, the probe), or holds it
-- whole (an open circuit, a Retry-After). One ready already is not touched, nor locked: a claim
-- busy with a backlog never waits for a record.
CREATE FUNCTION hookpost_record(p_results jsonb, p_circuit jsonb)
RETURNS TABLE (status text, count bigint)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    trip_failures integer := (p_circuit ->> 'failures')::integer;
    trip_ratio double precision := (p_circuit ->> 'failure_ratio')::double precision;
    window_s double precision := (p_circuit ->> 'window_s')::double precision;
    min_requests integer := (p_circuit ->> 'min_requests')::integer;
    base_cooldown_s double precision := (p_circuit ->> 'cooldown_s')::double precision;
    max_cooldown_s double precision := (p_circuit ->> 'max_cooldown_s')::double precision;
    -- An adaptive pace this high is as good as none.
    unpaced_per_s constant double precision := 1000;
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
                  a.ordering_key, a.expires_at, r.ord, r.retry_in_s, r.disable, r.failure,
                  r.throttled, r.pause_s, r.response_status, r.error
    ),
    per_subscription AS MATERIALIZED (
        SELECT o.subscription_id, count(*) AS sent,
               count(*) FILTER (WHERE o.failure) AS failed,
               count(*) FILTER (WHERE o.status = 'succeeded') AS succeeded,
               count(*) FILTER (WHERE o.failure AND o.ord > o.last_success) AS failed_since,
               bool_or(o.throttled) AS throttled, max(o.pause_s) AS pause_s,
               coalesce(array_agg(o.id) FILTER (WHERE o.failure), '{}') AS failed_ids,
               array_agg(o.id) AS ids
        FROM (SELECT *, coalesce(max(ord) FILTER (WHERE status = 'succeeded')
                                     OVER (PARTITION BY subscription_id), -1) AS last_success
              FROM outcome) AS o
        GROUP BY o.subscription_id
    ),
    locked AS MATERIALIZED (
        SELECT h.* FROM subscription_health h
        WHERE h.subscription_id IN (SELECT subscription_id FROM per_subscription)
        ORDER BY h.subscription_id
        FOR NO KEY UPDATE
    ),
    decided AS MATERIALIZED (
        SELECT l.subscription_id, s.application_id, s.url, c.circuit,
               CASE WHEN c.circuit = 'closed' AND l.circuit = 'open' THEN 0 ELSE f.streak END
                   AS failure_streak,
               w.started_at AS window_started_at, w.sent AS window_sent,
               w.failed AS window_failed,
               CASE WHEN c.circuit = 'closed' THEN NULL
                    WHEN c.reopened OR l.circuit = 'closed'
                        THEN now() + make_interval(secs => k.cooldown_s)
                    ELSE l.probe_at END AS probe_at,
               k.cooldown_s,
               CASE WHEN c.circuit = 'closed' THEN NULL
                    WHEN l.circuit = 'closed' THEN now() ELSE l.opened_at END AS opened_at,
               CASE WHEN p.throttled
                        THEN greatest(0.5, coalesce(l.pace_per_s, s.rate_limit_per_s,
                                                    w.sent / greatest(1.0, w.age_s)) / 2)
                    WHEN l.pace_per_s * power(1.05, p.succeeded)
                         >= coalesce(s.rate_limit_per_s, unpaced_per_s) THEN NULL
                    ELSE l.pace_per_s * power(1.05, p.succeeded) END AS pace_per_s,
               CASE WHEN p.pause_s > 0
                    THEN greatest(l.paused_until, now() + make_interval(secs => p.pause_s))
                    ELSE l.paused_until END AS paused_until,
               l.circuit = 'closed' AND c.circuit = 'open' AS opened
        FROM locked l
        JOIN per_subscription p USING (subscription_id)
        JOIN subscriptions s ON s.id = l.subscription_id
        -- The probe the claim sent, as it committed before sending it.
        JOIN subscription_state st ON st.subscription_id = l.subscription_id
        CROSS JOIN LATERAL (
            SELECT CASE WHEN p.succeeded > 0 THEN p.failed_since
                        ELSE l.failure_streak + p.failed END AS streak
        ) AS f
        CROSS JOIN LATERAL (
            SELECT CASE WHEN fresh THEN now() ELSE l.window_started_at END AS started_at,
                   CASE WHEN fresh THEN 0 ELSE l.window_sent END + p.sent AS sent,
                   CASE WHEN fresh THEN 0 ELSE l.window_failed END + p.failed AS failed,
                   CASE WHEN fresh THEN 0
                        ELSE extract(epoch FROM now() - l.window_started_at) END AS age_s
            FROM (SELECT l.window_started_at IS NULL
                         OR l.window_started_at <= now() - make_interval(secs => window_s)
                         AS fresh) AS w0
        ) AS w
        CROSS JOIN LATERAL (
            -- An open circuit closes on its probe's success and opens again on its failure;
            -- the late answers of what was in flight when it opened change nothing.
            SELECT CASE
                       WHEN l.circuit = 'open' AND st.probe_id = ANY(p.ids)
                           THEN CASE WHEN st.probe_id = ANY(p.failed_ids) THEN 'open'
                                     ELSE 'closed' END
                       WHEN l.circuit = 'closed'
                            AND (f.streak >= trip_failures
                                 OR (w.sent >= min_requests AND w.failed >= trip_ratio * w.sent))
                           THEN 'open'
                       ELSE l.circuit END AS circuit,
                   l.circuit = 'open' AND st.probe_id = ANY(p.failed_ids) AS reopened
        ) AS c
        CROSS JOIN LATERAL (
            SELECT CASE WHEN c.circuit = 'closed' THEN 0
                        WHEN l.circuit = 'closed' THEN base_cooldown_s
                        WHEN c.reopened
                            THEN least(max_cooldown_s, greatest(l.cooldown_s, base_cooldown_s) * 2)
                        ELSE l.cooldown_s END AS cooldown_s
        ) AS k
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
          AND d.pace_per_s < coalesce(l.pace_per_s, 'infinity')
        RETURNING 1
    ),
    disabled AS (
        UPDATE subscriptions s
        SET enabled = false, disabled_reason = 'the receiver answered 410 Gone', updated_at = now()
        FROM outcome o
        WHERE o.disable AND s.id = o.subscription_id AND s.enabled
        RETURNING s.id, s.application_id, s.url
    ),
    retried AS (
        INSERT INTO attempts (application_id, event_id, subscription_id, try_number, trigger,
                              due_at, ordering_key, expires_at)
        SELECT o.application_id, o.event_id, o.subscription_id, o.try_number + 1, 'retry',
               least(now() + make_interval(secs => o.retry_in_s), o.expires_at), o.ordering_key,
               o.expires_at
        FROM outcome o
        WHERE o.retry_in_s IS NOT NULL
          AND NOT EXISTS (
              SELECT FROM attempts p
              WHERE p.event_id = o.event_id AND p.subscription_id = o.subscription_id
                AND p.status = 'pending')
        RETURNING 1
    ),
    -- What happened that an application may subscribe to. No operational event is raised about
    -- the attempts of operational events: a receiver of hookpost.attempt.gave_up that is down
    -- would otherwise feed itself for ever.
    raised AS MATERIALIZED (
        SELECT d.application_id, d.subscription_id AS about,
               'hookpost.circuit.opened' AS event_type,
               jsonb_build_object(
                   'subscription_id', d.subscription_id, 'url', d.url,
                   'opened_at', hookpost_rfc3339(now()), 'failure_streak', d.failure_streak,
                   'probe_at', hookpost_rfc3339(d.probe_at)) AS payload
        FROM decided d WHERE d.opened
        UNION ALL
        SELECT x.application_id, x.id, 'hookpost.subscription.disabled',
               jsonb_build_object('subscription_id', x.id, 'url', x.url,
                                  'reason', 'the receiver answered 410 Gone',
                                  'disabled_at', hookpost_rfc3339(now()))
        FROM disabled x
        UNION ALL
        SELECT o.application_id, o.subscription_id, 'hookpost.attempt.gave_up',
               jsonb_build_object('attempt_id', o.id, 'event_id', o.event_id,
                                  'event_type', e.event_type, 'subscription_id', o.subscription_id,
                                  'try_number', o.try_number, 'response_status', o.response_status,
                                  'error', o.error)
        FROM outcome o JOIN events e ON e.id = o.event_id
        WHERE o.status = 'gave_up' AND e.event_type NOT LIKE 'hookpost.%'
    ),
    audience AS MATERIALIZED (
        SELECT r.application_id, r.event_type, r.payload, r.ord, s.id AS subscription_id,
               s.ordering
        FROM (SELECT *, row_number() OVER () AS ord FROM raised) AS r
        JOIN subscriptions s
          ON s.application_id = r.application_id AND s.enabled
         AND r.event_type = ANY(s.event_types)
         -- the subscription just disabled gets no more attempts
         AND NOT (r.event_type = 'hookpost.subscription.disabled' AND s.id = r.about)
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
