-- Delivery state rows for every subscription, and the triggers that keep the claim queue's
-- ready_at in step with pending attempts (tables: migration 0005).

-- State and health rows for every subscription, from its creation.
CREATE OR REPLACE FUNCTION hookpost_subscription_state_create() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO subscription_state (subscription_id, application_id)
    VALUES (NEW.id, NEW.application_id);
    INSERT INTO subscription_health (subscription_id) VALUES (NEW.id);
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER subscriptions_state_create AFTER INSERT ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION hookpost_subscription_state_create();

-- Pending attempts written (inserted, released, recovered) make their subscription ready by
-- their due time. A subscription already ready that early is not touched. One whose state row
-- another transaction holds is skipped rather than waited for (waiting, a writer that already
-- holds attempt rows could deadlock with a record): every holder leaves ready_at no later than
-- now or re-reads it under the protocol of hookpost_settle_ready, and DELIVERY_RESYNC_READY
-- catches the rest (a deliver_at earlier than the holder's) on every recovery pass.
CREATE OR REPLACE FUNCTION hookpost_attempts_ready() RETURNS trigger
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
CREATE OR REPLACE TRIGGER attempts_ready_on_insert AFTER INSERT ON attempts
    REFERENCING NEW TABLE AS new_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION hookpost_attempts_ready();
CREATE OR REPLACE TRIGGER attempts_ready_on_update AFTER UPDATE ON attempts
    REFERENCING NEW TABLE AS new_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION hookpost_attempts_ready();
