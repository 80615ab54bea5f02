-- Someone asked for these deliveries now (a replay, a manual retry, a recovery, a test send):
-- an open circuit of each subscription probes at once instead of after its cool-down (the probe
-- is whichever attempt is due first; its success lets everything held, these included, flow),
-- the subscription is put in line for the next claim, and a NOTIFY wakes the deliver loops.
-- Called once by each such statement, with the subscriptions of the attempts it created (none:
-- nothing happens).
CREATE OR REPLACE FUNCTION hookpost_deliver_now(p_subscription_ids uuid[]) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF coalesce(cardinality(p_subscription_ids), 0) = 0 THEN
        RETURN;
    END IF;
    WITH probed AS (
        UPDATE subscription_health SET probe_at = now()
        WHERE subscription_id = ANY (p_subscription_ids)
          AND circuit = 'open' AND probe_at > now()
        RETURNING subscription_id
    )
    UPDATE subscription_state SET ready_at = now()
    WHERE subscription_id IN (SELECT subscription_id FROM probed);
    PERFORM pg_notify('hookpost_attempts', '');
END
$$;
