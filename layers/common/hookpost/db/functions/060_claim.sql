-- The claim and the record of the deliver loop, as functions: the claim needs fresh snapshots
-- between its steps (a lock, then a read that must see everything committed before the lock),
-- which only a VOLATILE function gives inside one round trip; both keep their plans cached in the
-- server session even where the client cannot prepare statements (RDS Proxy).

-- The head of every key of a per_key subscription that may go now: the attempt of the oldest
-- event (ingest order) with anything left to send, when no attempt of its key is in flight. With
-- p_due false, heads not due yet are included (to know when the next one is). A loose index scan
-- over the keys: the cost follows the number of keys with work, not the backlog behind them.
CREATE OR REPLACE FUNCTION hookpost_key_heads(p_subscription_id uuid, p_due boolean, p_limit integer)
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
        SELECT a.id, a.status, a.due_at, a.event_id, a.priority FROM attempts a
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
    ORDER BY head.priority DESC, head.event_id
    LIMIT p_limit
$$;

-- Up to p_limit due attempts of a subscription, higher priority first, then by due time; with
-- p_unbatched, only those in no batch yet. One index scan per priority (high and low ones have
-- attempts_subscription_priority_due_idx to themselves), each stopping at p_limit.
CREATE OR REPLACE FUNCTION hookpost_due_attempts(
    p_subscription_id uuid, p_limit integer, p_unbatched boolean)
RETURNS TABLE (id uuid, due_at timestamptz)
LANGUAGE sql STABLE AS $$
    (SELECT a.id, a.due_at FROM attempts a
     WHERE a.subscription_id = p_subscription_id AND a.status = 'pending' AND a.priority = 1
       AND a.due_at <= now() AND (NOT p_unbatched OR a.batch_id IS NULL)
     ORDER BY a.due_at LIMIT p_limit)
    UNION ALL
    (SELECT a.id, a.due_at FROM attempts a
     WHERE a.subscription_id = p_subscription_id AND a.status = 'pending' AND a.priority = 0
       AND a.due_at <= now() AND (NOT p_unbatched OR a.batch_id IS NULL)
     ORDER BY a.due_at LIMIT p_limit)
    UNION ALL
    (SELECT a.id, a.due_at FROM attempts a
     WHERE a.subscription_id = p_subscription_id AND a.status = 'pending' AND a.priority = -1
       AND a.due_at <= now() AND (NOT p_unbatched OR a.batch_id IS NULL)
     ORDER BY a.due_at LIMIT p_limit)
    LIMIT p_limit
$$;

-- Requests of a subscription on the wire: a batch is one.
CREATE OR REPLACE FUNCTION hookpost_requests_in_flight(p_subscription_id uuid) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT count(DISTINCT coalesce(a.batch_id, a.id))::integer FROM attempts a
    WHERE a.subscription_id = p_subscription_id AND a.status = 'in_flight'
$$;

-- When a claim should next look at a subscription, from what is committed now: its earliest
-- sendable attempt, no earlier than its circuit's probe, its receiver's Retry-After and its next
-- token. NULL when nothing is pending, or when all of it waits on an answer in flight (a
-- half-open probe, max_in_flight reached, every key busy): recording that answer makes the
-- subscription ready again. A batching subscription whose next batch is not full waits for more
-- until batch_max_wait_ms after its first attempt fell due.
CREATE OR REPLACE FUNCTION hookpost_next_ready(p_subscription_id uuid) RETURNS timestamptz
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    sub record;
    next_at timestamptz;
    rate double precision;
    fresh integer;
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
    ELSIF sub.max_in_flight IS NOT NULL AND sub.max_in_flight <= hookpost_requests_in_flight(
        p_subscription_id) THEN
        RETURN NULL;
    ELSE
        SELECT a.due_at INTO next_at FROM attempts a
        WHERE a.subscription_id = p_subscription_id AND a.status = 'pending'
        ORDER BY a.due_at LIMIT 1;
    END IF;
    IF next_at IS NULL THEN
        RETURN NULL;
    END IF;
    IF sub.batch_max_events IS NOT NULL AND sub.batch_max_wait_ms > 0 AND NOT EXISTS (
        SELECT FROM attempts a
        WHERE a.subscription_id = p_subscription_id AND a.status = 'pending'
          AND a.batch_id IS NOT NULL AND a.due_at <= next_at
    ) THEN
        IF sub.ordering = 'per_key' THEN
            SELECT count(*) INTO fresh
            FROM hookpost_key_heads(p_subscription_id, false, sub.batch_max_events) h
            WHERE h.due_at <= greatest(next_at, now());
        ELSE
            SELECT count(*) INTO fresh FROM (
                SELECT FROM attempts a
                WHERE a.subscription_id = p_subscription_id AND a.status = 'pending'
                  AND a.batch_id IS NULL AND a.due_at <= greatest(next_at, now())
                LIMIT sub.batch_max_events) AS due;
        END IF;
        IF fresh < sub.batch_max_events THEN
            next_at := next_at + make_interval(secs => sub.batch_max_wait_ms / 1000.0);
        END IF;
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
CREATE OR REPLACE FUNCTION hookpost_settle_ready(p_subscription_id uuid) RETURNS void
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

-- One subscription's part of a claim: up to p_quota requests of its due attempts leased to
-- p_claim_id (`sent`; `requests`: how many requests they make), and those the claim settles
-- itself (`settled`: 'gave_up' when the subscription is disabled, 'expired' past their event's
-- expires_at), each as its UPDATE left the row. `hungry`: it took its whole quota and may have
-- more. The caller holds the subscription's state row lock; health is only read (the record
-- writes it).
--
-- An open circuit holds everything until its probe time, then sends one probe; a Retry-After
-- holds everything; max_in_flight and the token bucket (rate_limit_per_s or the adaptive pace,
-- whichever is lower; a burst of one second) cap the quota; per_key subscriptions send only key
-- heads. Higher priority goes first. The calling loop may hold at most p_share requests of one
-- subscription (p_holding: how many it holds now, by subscription), so that a slow receiver never
-- takes all of a loop's slots and others' fresh events find one free.
--
-- A batching subscription's request is a batch: first any batch formed before that is due
-- again (a failed batch's retries, a dead worker's batch), whole and under its id; else up to
-- batch_max_events due attempts in no batch, once there are that many or batch_max_wait_ms has
-- passed since the first fell due, under a new id.
--
-- Its statements are planned once per session (plan_cache_mode): left to choose, PostgreSQL
-- planned the reads of due attempts again on every call (a plan for `LIMIT $n` costs more than
-- one for LIMIT 100, so the generic plan never won), an eighth of a claim's CPU with a backlog.
-- Each statement here has the same plan generically: an index scan by subscription.
DROP FUNCTION IF EXISTS hookpost_claim_from(uuid, integer, uuid, double precision, integer, jsonb);
CREATE OR REPLACE FUNCTION hookpost_claim_from(
    p_subscription_id uuid, p_quota integer, p_claim_id uuid, p_lease_s double precision,
    p_share integer, p_holding jsonb, OUT sent attempts[], OUT settled attempts[],
    OUT hungry boolean, OUT requests integer)
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    sid constant uuid := p_subscription_id;
    sub record;
    probing boolean;
    cap integer;
    rate double precision;
    level double precision;
    picked uuid[] := '{}';
    batches uuid[];
    fresh uuid[];
    fresh_due timestamptz[];
    first integer;
    last integer;
    batched uuid[] := '{}';
    batch_ids uuid[] := '{}';
BEGIN
    sent := '{}';
    settled := '{}';
    hungry := false;
    requests := 0;
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
            RETURNING a
        )
        SELECT coalesce(array_agg(doomed.a), '{}') INTO settled FROM doomed;
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
        cap := least(cap, sub.max_in_flight - hookpost_requests_in_flight(sid));
    END IF;
    rate := least(sub.rate_limit_per_s, sub.pace_per_s);
    IF rate IS NOT NULL THEN
        level := least(greatest(rate, 1.0), coalesce(
            sub.tokens + rate * extract(epoch FROM now() - sub.tokens_at), greatest(rate, 1.0)));
        cap := least(cap, floor(level)::integer);
    END IF;

    IF cap > 0 AND sub.batch_max_events IS NOT NULL THEN
        -- Batches formed before and due again go first, whole, under their ids.
        SELECT coalesce(array_agg(b.batch_id), '{}') INTO batches FROM (
            SELECT a.batch_id FROM attempts a
            WHERE a.subscription_id = sid AND a.status = 'pending' AND a.batch_id IS NOT NULL
              AND a.due_at <= now()
            GROUP BY a.batch_id ORDER BY min(a.due_at) LIMIT cap) AS b;
        IF cardinality(batches) > 0 THEN
            SELECT coalesce(array_agg(l.id), '{}') INTO picked FROM (
                SELECT a.id FROM attempts a
                WHERE a.batch_id = ANY(batches) AND a.subscription_id = sid
                  AND a.status = 'pending' AND a.due_at <= now()
                FOR UPDATE SKIP LOCKED) AS l;
            requests := cardinality(batches);
        END IF;
        -- Then new batches of the due attempts in none, in claim order (priority, due time; of
        -- a per_key subscription, key heads: one batch, as a key's next event waits for its
        -- head). A last batch not full waits for more until batch_max_wait_ms after its first
        -- fell due. Read, locked and labelled in one statement each, however many batches.
        IF requests < cap THEN
            IF sub.ordering = 'per_key' THEN
                fresh := ARRAY(SELECT h.id
                               FROM hookpost_key_heads(sid, true, sub.batch_max_events) h);
            ELSE
                fresh := ARRAY(SELECT d.id FROM hookpost_due_attempts(
                    sid, (cap - requests) * sub.batch_max_events, true) d);
            END IF;
            SELECT coalesce(array_agg(l.id ORDER BY l.ord), '{}'),
                   coalesce(array_agg(l.due_at ORDER BY l.ord), '{}')
            INTO fresh, fresh_due FROM (
                SELECT a.id, a.due_at, u.ord FROM unnest(fresh) WITH ORDINALITY AS u(id, ord)
                JOIN attempts a ON a.id = u.id
                WHERE a.status = 'pending' AND a.batch_id IS NULL
                FOR UPDATE OF a SKIP LOCKED) AS l;
            first := 1;
            WHILE first <= cardinality(fresh) AND requests < cap LOOP
                last := least(first + sub.batch_max_events - 1, cardinality(fresh));
                EXIT WHEN last - first + 1 < sub.batch_max_events
                     AND (SELECT min(d) FROM unnest(fresh_due[first:last]) AS d)
                         + make_interval(secs => sub.batch_max_wait_ms / 1000.0) > now();
                batched := batched || fresh[first:last];
                batch_ids := batch_ids || array_fill(hookpost_uuid7(), ARRAY[last - first + 1]);
                requests := requests + 1;
                first := last + 1;
            END LOOP;
            picked := picked || batched;
        END IF;
    ELSIF cap > 0 THEN
        IF sub.ordering = 'per_key' THEN
            SELECT coalesce(array_agg(l.id), '{}') INTO picked FROM (
                SELECT a.id FROM attempts a
                WHERE a.id = ANY(ARRAY(SELECT h.id FROM hookpost_key_heads(sid, true, cap) h))
                  AND a.status = 'pending'
                FOR UPDATE SKIP LOCKED) AS l;
        ELSE
            -- Higher priority first, each by due time: one index scan per priority that locks
            -- what it reads and stops at what is left of the cap (high and low ones have
            -- attempts_subscription_priority_due_idx to themselves), with no second lookup of
            -- the rows by id.
            picked := ARRAY(
                SELECT a.id FROM attempts a
                WHERE a.subscription_id = sid AND a.status = 'pending' AND a.priority = 1
                  AND a.due_at <= now()
                ORDER BY a.due_at LIMIT cap FOR UPDATE SKIP LOCKED);
            IF cardinality(picked) < cap THEN
                picked := picked || ARRAY(
                    SELECT a.id FROM attempts a
                    WHERE a.subscription_id = sid AND a.status = 'pending' AND a.priority = 0
                      AND a.due_at <= now()
                    ORDER BY a.due_at LIMIT cap - cardinality(picked) FOR UPDATE SKIP LOCKED);
            END IF;
            IF cardinality(picked) < cap THEN
                picked := picked || ARRAY(
                    SELECT a.id FROM attempts a
                    WHERE a.subscription_id = sid AND a.status = 'pending' AND a.priority = -1
                      AND a.due_at <= now()
                    ORDER BY a.due_at LIMIT cap - cardinality(picked) FOR UPDATE SKIP LOCKED);
            END IF;
        END IF;
    END IF;

    -- Leased (new batches' members labelled), or ended if their event expired meanwhile: one
    -- statement.
    WITH taken AS (
        UPDATE attempts a
        SET status = CASE WHEN a.expires_at <= now() THEN 'expired'
                          ELSE 'in_flight' END::attempt_status,
            claimed_by = p_claim_id,
            started_at = CASE WHEN a.expires_at <= now() THEN NULL ELSE now() END,
            lease_expires_at = CASE WHEN a.expires_at <= now() THEN NULL
                                    ELSE now() + make_interval(secs => p_lease_s) END,
            finished_at = CASE WHEN a.expires_at <= now() THEN now() END,
            error = CASE WHEN a.expires_at <= now() THEN 'expired before it could be sent' END,
            batch_id = coalesce(x.batch_id, a.batch_id)
        FROM unnest(picked) AS p(id)
        LEFT JOIN unnest(batched, batch_ids) AS x(id, batch_id) ON x.id = p.id
        WHERE a.id = p.id
        RETURNING a.id, a.status, a AS leased
    )
    SELECT coalesce(array_agg(taken.leased) FILTER (WHERE taken.status = 'in_flight'), '{}'),
           coalesce(array_agg(taken.leased) FILTER (WHERE taken.status = 'expired'), '{}')
    INTO sent, settled
    FROM taken;
    IF sub.batch_max_events IS NULL THEN
        requests := cardinality(sent);
    END IF;

    IF rate IS NOT NULL OR (probing AND cardinality(sent) > 0) THEN
        UPDATE subscription_state
        SET tokens = CASE WHEN rate IS NOT NULL THEN level - requests END,
            tokens_at = CASE WHEN rate IS NOT NULL THEN now() END,
            probe_id = CASE WHEN probing AND cardinality(sent) > 0 THEN (sent[1]).id
                            ELSE probe_id END
        WHERE subscription_id = sid;
    END IF;
    hungry := cap > 0 AND cap = p_quota AND NOT probing AND cap = CASE
        WHEN sub.batch_max_events IS NULL THEN cardinality(picked) ELSE requests END;
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
-- hookpost_claim_from. p_limit and p_share count requests: a batch is one.
--
-- A row to send carries its batch (the members of one go in one request), for a subscription
-- with thin payloads no payload (the receiver fetches it), and for one without headers of its
-- own NULL headers.
DROP FUNCTION IF EXISTS hookpost_claim(uuid, integer, double precision, integer, jsonb);
CREATE OR REPLACE FUNCTION hookpost_claim(
    p_claim_id uuid, p_limit integer, p_lease_s double precision, p_share integer,
    p_holding jsonb)
RETURNS TABLE (
    id uuid, status text, try_number integer, event_id uuid, subscription_id uuid,
    event_type text, waited_ms bigint, payload text, occurred_at timestamptz, url text,
    headers jsonb, secret text, previous_secret text, batch_id uuid, event_ref text,
    thin boolean)
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
    sent_all attempts[] := '{}';
    settled_all attempts[] := '{}';
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
                sid::text, coalesce((holding ->> sid::text)::integer, 0) + part.requests);
            sent_all := sent_all || part.sent;
            settled_all := settled_all || part.settled;
            remaining := remaining - part.requests;
            IF part.hungry THEN
                hungry := hungry || sid;
            END IF;
        END LOOP;
        turn := hungry;
        hungry := '{}';
    END LOOP;

    -- The rows as the claim's UPDATEs returned them (not read again), in attempt order (a batch's
    -- members go in it). headers is NULL when the subscription has none (most), so that the loop
    -- parses no JSON for them.
    RETURN QUERY
    (SELECT a.id, a.status::text, a.try_number, a.event_id, a.subscription_id, e.event_type,
            (extract(epoch FROM now() - a.due_at) * 1000)::bigint,
            CASE WHEN s.payload_mode = 'thin' THEN NULL ELSE e.payload::text END,
            e.occurred_at, s.url, nullif(s.headers, '{}'), s.secret,
            CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END,
            a.batch_id, e.event_id, s.payload_mode = 'thin'
     FROM unnest(sent_all) AS a
     JOIN events e ON e.id = a.event_id
     JOIN subscriptions s ON s.id = a.subscription_id
     ORDER BY a.id)
    UNION ALL
    (SELECT a.id, a.status::text, a.try_number, a.event_id, a.subscription_id,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
     FROM unnest(settled_all) AS a ORDER BY a.id);
END
$$;
