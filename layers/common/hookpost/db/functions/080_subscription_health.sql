-- What the API shows of a subscription's health (`health` in every subscription answer), from
-- its claim state and health rows. Both are absent from the statement that inserts the
-- subscription (its trigger writes them in that same statement), hence the defaults. STABLE: it
-- reads the calling statement's snapshot; a one-SELECT SQL function, so the planner inlines it
-- into the statement that calls it.
-- An open circuit whose probe is on the wire is shown half open (hookpost_circuit_shown).
-- `recent` reads the last 100 finished attempts through attempts_subscription_finished_idx. Its
-- subscription_id is bounded by a range, not `=`: an equality would make the first sort column
-- redundant, and the planner would then often walk the whole primary key backwards, filtering
-- (the whole table, for a quiet subscription), instead of this subscription's part of the index.
CREATE OR REPLACE FUNCTION hookpost_subscription_health(subscription uuid)
RETURNS TABLE (
    circuit text, open_since timestamptz, probe_at timestamptz, failure_streak integer,
    paced_per_s double precision, paused_until timestamptz, recent_attempts bigint,
    recent_success_rate double precision, recent_p50_ms integer)
LANGUAGE sql STABLE AS $$
SELECT shown.circuit,
       CASE WHEN h.circuit = 'open' THEN h.opened_at END,
       CASE WHEN shown.circuit = 'open' THEN h.probe_at END,
       coalesce(h.failure_streak, 0),
       h.pace_per_s,
       CASE WHEN h.paused_until > now() THEN h.paused_until END,
       recent.attempts, recent.success_rate, recent.p50_ms
FROM (SELECT subscription AS id) AS s
LEFT JOIN subscription_state st ON st.subscription_id = s.id
LEFT JOIN subscription_health h ON h.subscription_id = s.id
CROSS JOIN LATERAL (
    SELECT hookpost_circuit_shown(h, EXISTS (
               SELECT FROM attempts p WHERE p.id = st.probe_id AND p.status = 'in_flight'),
           now()) AS circuit
) AS shown
CROSS JOIN LATERAL (
    SELECT count(*) AS attempts,
           (avg((f.status = 'succeeded')::integer))::double precision AS success_rate,
           percentile_disc(0.5) WITHIN GROUP (ORDER BY f.elapsed_ms)
               FILTER (WHERE f.status = 'succeeded') AS p50_ms
    FROM (SELECT a.status, a.elapsed_ms FROM attempts a
          WHERE a.subscription_id >= s.id AND a.subscription_id <= s.id
            AND a.status IN ('succeeded', 'failed', 'gave_up')
          ORDER BY a.subscription_id DESC, a.id DESC LIMIT 100) AS f
) AS recent
$$;
