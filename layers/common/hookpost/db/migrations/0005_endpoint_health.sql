-- Endpoint health and fair, ordered, paced delivery.
--
-- Settings a subscription may carry: an outbound rate and in-flight cap, and per-key ordering.
ALTER TABLE subscriptions
    ADD COLUMN rate_limit_per_s double precision
        CONSTRAINT subscriptions_rate_limit_check CHECK (rate_limit_per_s > 0),
    ADD COLUMN max_in_flight integer
        CONSTRAINT subscriptions_max_in_flight_check CHECK (max_in_flight >= 1),
    ADD COLUMN ordering text NOT NULL DEFAULT 'none'
        CONSTRAINT subscriptions_ordering_check CHECK (ordering IN ('none', 'per_key'));

-- Events may be sent later (deliver_at), expire (expires_at), and carry the key that orders them
-- on per_key subscriptions (the event type unless given).
ALTER TABLE events
    ADD COLUMN ordering_key text,
    ADD COLUMN deliver_at timestamptz,
    ADD COLUMN expires_at timestamptz;

-- An attempt carries what the claim needs without reading its event: its ordering key (set only
-- for per_key subscriptions) and its expiry.
ALTER TABLE attempts
    ADD COLUMN ordering_key text,
    ADD COLUMN expires_at timestamptz;

-- What delivery knows of each subscription, in two narrow tables apart from its settings, each
-- written under its own row locks so that any number of deliver copies agree on it, and apart
-- from each other so that recording outcomes never holds the row a claim locks.
--
-- subscription_state belongs to the claim. ready_at is the subscription's place in the claim
-- queue: the earliest time a claim should look at it, NULL when nothing is pending (or all it has
-- waits on an answer in flight, whose record sets it again). Claims serve the oldest ready_at
-- first and move a subscription that still has work to now(), the back of the queue: round robin,
-- so one subscription's backlog never holds up another's fresh event by more than a claim round.
-- Inserting (or returning to pending) an attempt pulls ready_at forward (trigger below); only a
-- claim moves it later, and only under the protocol in hookpost_settle_ready. The token bucket
-- (rate_limit_per_s, or the adaptive pace when lower) and the probe an open circuit sent live here
-- too, as the claim spends and sends them.
CREATE TABLE subscription_state (
    subscription_id uuid PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    application_id  uuid NOT NULL,
    ready_at        timestamptz,
    tokens          double precision,
    tokens_at       timestamptz,
    probe_id        uuid
) WITH (fillfactor = 70);

-- subscription_health belongs to the record: what the answers say of the endpoint.
CREATE TABLE subscription_health (
    subscription_id   uuid PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    -- Open: nothing is sent but one probe at probe_at; the API shows `half_open` while it is out.
    circuit           text NOT NULL DEFAULT 'closed' CHECK (circuit IN ('closed', 'open')),
    failure_streak    integer NOT NULL DEFAULT 0,
    opened_at         timestamptz,
    probe_at          timestamptz,
    -- The cool-down doubles on every failed probe.
    cooldown_s        double precision NOT NULL DEFAULT 0,
    -- A tumbling window of sends and failures, for the failure-ratio trip.
    window_started_at timestamptz,
    window_sent       integer NOT NULL DEFAULT 0,
    window_failed     integer NOT NULL DEFAULT 0,
    -- Lowered by a 429, raised again by successes; NULL: not throttled.
    pace_per_s        double precision,
    -- A Retry-After from the receiver: nothing is sent to it before this.
    paused_until      timestamptz
) WITH (fillfactor = 70);
CREATE INDEX subscription_state_ready_idx ON subscription_state (ready_at)
    WHERE ready_at IS NOT NULL;
-- The claim takes turns by application first (a loose index scan over the applications with a
-- subscription ready), then by ready_at within each.
CREATE INDEX subscription_state_application_ready_idx
    ON subscription_state (application_id, ready_at)
    WHERE ready_at IS NOT NULL;

-- Every attempt references its subscription's state row: the foreign-key check of an insert
-- holds a KEY SHARE lock on it until commit, which is what hookpost_settle_ready waits out.
ALTER TABLE attempts ADD CONSTRAINT attempts_subscription_state_fkey
    FOREIGN KEY (subscription_id) REFERENCES subscription_state (subscription_id)
    ON DELETE CASCADE;

-- The claim reads one subscription's due attempts at a time, and per_key subscriptions by key.
DROP INDEX attempts_pending_due_idx;
CREATE INDEX attempts_subscription_due_idx ON attempts (subscription_id, due_at)
    WHERE status = 'pending';
CREATE INDEX attempts_key_order_idx ON attempts (subscription_id, ordering_key, event_id)
    WHERE status IN ('pending', 'in_flight') AND ordering_key IS NOT NULL;
CREATE INDEX attempts_key_in_flight_idx ON attempts (subscription_id, ordering_key)
    WHERE status = 'in_flight' AND ordering_key IS NOT NULL;
CREATE INDEX attempts_in_flight_subscription_idx ON attempts (subscription_id)
    WHERE status = 'in_flight';
-- A subscription's health reads its last finished attempts: straight from here, however many
-- pending ones are newer (a backlog behind an open circuit is when health is looked at).
CREATE INDEX attempts_subscription_finished_idx ON attempts (subscription_id, id)
    WHERE status IN ('succeeded', 'failed', 'gave_up');
-- Pending attempts that expire, for the sweep that ends them on time even when held.
CREATE INDEX attempts_pending_expiry_idx ON attempts (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;

-- State and health rows for every subscription, from its creation.
CREATE FUNCTION hookpost_subscription_state_create() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO subscription_state (subscription_id, application_id)
    VALUES (NEW.id, NEW.application_id);
    INSERT INTO subscription_health (subscription_id) VALUES (NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER subscriptions_state_create AFTER INSERT ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION hookpost_subscription_state_create();

INSERT INTO subscription_state (subscription_id, application_id, ready_at)
SELECT s.id, s.application_id,
       (SELECT min(a.due_at) FROM attempts a
        WHERE a.subscription_id = s.id AND a.status = 'pending')
FROM subscriptions s;
INSERT INTO subscription_health (subscription_id) SELECT id FROM subscriptions;

-- Pending attempts written (inserted, released, recovered) make their subscription ready by
-- their due time. A subscription already ready that early is not touched. One whose state row
-- another transaction holds is skipped rather than waited for (waiting, a writer that already
-- holds attempt rows could deadlock with a record): every holder leaves ready_at no later than
-- now or re-reads it under the protocol of hookpost_settle_ready, and DELIVERY_RESYNC_READY
-- catches the rest (a deliver_at earlier than the holder's) on every recovery pass.
CREATE FUNCTION hookpost_attempts_ready() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    WITH due AS (
        SELECT subscription_id, min(due_at) AS due_at FROM new_attempts
        WHERE status = 'pending' GROUP BY subscription_id
    ),
    stale AS (
        SELECT st.subscription_id, due.due_at FROM subscription_state st
        JOIN due USING (subscription_id)
        WHERE st.ready_at IS NULL OR st.ready_at > due.due_at
        FOR NO KEY UPDATE OF st SKIP LOCKED
    )
    UPDATE subscription_state st SET ready_at = least(st.ready_at, stale.due_at)
    FROM stale WHERE st.subscription_id = stale.subscription_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER attempts_ready_on_insert AFTER INSERT ON attempts
    REFERENCING NEW TABLE AS new_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION hookpost_attempts_ready();
CREATE TRIGGER attempts_ready_on_update AFTER UPDATE ON attempts
    REFERENCING NEW TABLE AS new_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION hookpost_attempts_ready();
