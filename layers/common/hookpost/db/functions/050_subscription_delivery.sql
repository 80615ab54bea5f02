-- What the claim reads of a subscription: its settings, its claim state and its health.
CREATE OR REPLACE VIEW subscription_delivery AS
SELECT st.subscription_id, s.enabled, s.rate_limit_per_s, s.max_in_flight, s.ordering,
       h.circuit, h.probe_at, h.paused_until, h.pace_per_s, st.probe_id, st.tokens, st.tokens_at,
       s.batch_max_events, s.batch_max_wait_ms
FROM subscription_state st
JOIN subscriptions s ON s.id = st.subscription_id
JOIN subscription_health h ON h.subscription_id = st.subscription_id;
