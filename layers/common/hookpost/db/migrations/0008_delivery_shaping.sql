-- hookpost: no-transaction
-- What a subscription receives and how (filter, batch, debounce, thin payloads) and event
-- priority. Every statement is safe to run again, and none holds a lock on events or attempts
-- for longer than a catalog change: the columns added to them have constant defaults (no
-- rewrite, no scan) and no constraint (the API checks the values), and their indexes are built
-- concurrently.

-- An attempt replaced by a newer event of its ordering key on a debounced subscription.
ALTER TYPE attempt_status ADD VALUE IF NOT EXISTS 'superseded';

-- The subscriptions table is small: its checks are validated in place. The filter is kept as
-- the client wrote it (a jsonpath column would answer PostgreSQL's rewriting of it); the API
-- admits only text that parses.
ALTER TABLE subscriptions
    ADD COLUMN IF NOT EXISTS payload_filter text,
    ADD COLUMN IF NOT EXISTS batch_max_events integer
        CONSTRAINT subscriptions_batch_max_events_check
        CHECK (batch_max_events BETWEEN 2 AND 1000),
    ADD COLUMN IF NOT EXISTS batch_max_wait_ms integer
        CONSTRAINT subscriptions_batch_max_wait_ms_check
        CHECK (batch_max_wait_ms BETWEEN 0 AND 60000),
    ADD COLUMN IF NOT EXISTS debounce_s integer
        CONSTRAINT subscriptions_debounce_s_check CHECK (debounce_s BETWEEN 1 AND 3600),
    ADD COLUMN IF NOT EXISTS payload_mode text NOT NULL DEFAULT 'full'
        CONSTRAINT subscriptions_payload_mode_check CHECK (payload_mode IN ('full', 'thin'));

-- Priority: 1 high, 0 normal, -1 low.
ALTER TABLE events ADD COLUMN IF NOT EXISTS priority smallint NOT NULL DEFAULT 0;

-- An attempt carries its event's priority (the claim orders by it without reading events), the
-- batch it was last sent in (sent again whole, under the same id), and on a debounced
-- subscription the latest time its chain of replaced events may wait until.
ALTER TABLE attempts
    ADD COLUMN IF NOT EXISTS priority smallint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS batch_id uuid,
    ADD COLUMN IF NOT EXISTS debounce_until timestamptz;

-- Due attempts of a subscription by priority: only the high and low ones are in it (normal ones
-- are read through attempts_subscription_due_idx), so events sent without a priority cost no
-- more index writes than before.
CREATE INDEX CONCURRENTLY IF NOT EXISTS attempts_subscription_priority_due_idx
    ON attempts (subscription_id, priority, due_at)
    WHERE status = 'pending' AND priority <> 0;

-- Batches to send again (a failed batch's retries, a dead worker's batch).
CREATE INDEX CONCURRENTLY IF NOT EXISTS attempts_pending_batch_idx
    ON attempts (subscription_id, due_at)
    WHERE status = 'pending' AND batch_id IS NOT NULL;

-- The attempts of one batch.
CREATE INDEX CONCURRENTLY IF NOT EXISTS attempts_batch_idx
    ON attempts (batch_id) WHERE batch_id IS NOT NULL;
