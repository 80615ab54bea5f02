-- Puts back the attempts 0004a set aside (see there), now that 0005 made a subscription_state row
-- for every subscription; its insert trigger sets each subscription's place in the claim queue.
-- A no-op wherever 0004a was.
DO $$
BEGIN
    IF to_regclass('upgrade_held_attempts') IS NOT NULL THEN
        INSERT INTO attempts (
            id, application_id, event_id, subscription_id, status, try_number, trigger, due_at,
            claimed_by, lease_expires_at, started_at, finished_at, response_status,
            response_headers, response_body, elapsed_ms, error, created_at)
        SELECT id, application_id, event_id, subscription_id, status, try_number, trigger, due_at,
               claimed_by, lease_expires_at, started_at, finished_at, response_status,
               response_headers, response_body, elapsed_ms, error, created_at
        FROM upgrade_held_attempts;
        DROP TABLE upgrade_held_attempts;
    END IF;
END
$$;
