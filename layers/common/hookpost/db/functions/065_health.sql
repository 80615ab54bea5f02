-- The delivery rules of a subscription's health, as pure functions of literal inputs (no table
-- read, the time passed in): tests/unit/test_health_rules.py holds them to every transition.

-- What one batch of answers makes of a subscription's health (hookpost_record calls it for each
-- subscription a batch answered, under the health row's lock). The batch, in completion order:
-- p_sent answers, p_failed of them failures (what counts against the circuit: not a 2xx, a 410
-- or a 429, as delivery/schedule.py decides), p_succeeded 2xx, p_failed_after_success failures
-- after the last 2xx; p_throttled: a 429 among them; p_pause_s: the longest Retry-After;
-- p_probe_failed: whether the answer to the open circuit's probe was a failure, NULL when that
-- answer is not in the batch. p_rate_limit_per_s: the subscription's configured rate, if any.
-- p_circuit: the breaker's settings (CircuitSettings).
--
-- The circuit opens on `failures` failures in a row, or when at least `min_requests` sends of a
-- `window_s` tumbling window fail at `failure_ratio` or more; it then holds everything until
-- opened + `cooldown_s`, when the claim sends one probe. The probe's success (any answer that is
-- not a failure) closes it; its failure opens it again for twice the cool-down, up to
-- `max_cooldown_s`. Answers of what was in flight when it opened count in the streak and the
-- window, and change nothing else. A 429 halves the pace (from the pace, else the configured
-- rate, else the window's send rate); each success raises it 5 % until it reaches the
-- configured rate, or the unpaced ceiling. A Retry-After holds every send until then.
CREATE OR REPLACE FUNCTION hookpost_health_next(
    h subscription_health, p_sent integer, p_failed integer, p_succeeded integer,
    p_failed_after_success integer, p_throttled boolean, p_pause_s double precision,
    p_probe_failed boolean, p_rate_limit_per_s double precision, p_now timestamptz,
    p_circuit jsonb)
RETURNS subscription_health
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    trip_failures constant integer := (p_circuit ->> 'failures')::integer;
    trip_ratio constant double precision := (p_circuit ->> 'failure_ratio')::double precision;
    window_s constant double precision := (p_circuit ->> 'window_s')::double precision;
    min_requests constant integer := (p_circuit ->> 'min_requests')::integer;
    base_cooldown_s constant double precision := (p_circuit ->> 'cooldown_s')::double precision;
    max_cooldown_s constant double precision :=
        (p_circuit ->> 'max_cooldown_s')::double precision;
    throttled_factor constant double precision := 0.5;
    -- The slowest pace a 429 leads to: one send every two seconds.
    slowest_per_s constant double precision := 0.5;
    recovery_factor constant numeric := 1.05;
    -- An adaptive pace this high is as good as none.
    unpaced_per_s constant double precision := 1000;
    was constant text := h.circuit;
    window_age_s numeric := 0;
    raised double precision;
BEGIN
    -- Failures in a row: a 2xx in the batch starts the count again after it.
    h.failure_streak := CASE WHEN p_succeeded > 0 THEN p_failed_after_success
                             ELSE h.failure_streak + p_failed END;

    IF h.window_started_at IS NULL
       OR h.window_started_at <= p_now - make_interval(secs => window_s) THEN
        h.window_started_at := p_now;
        h.window_sent := 0;
        h.window_failed := 0;
    ELSE
        window_age_s := extract(epoch FROM p_now - h.window_started_at);
    END IF;
    h.window_sent := h.window_sent + p_sent;
    h.window_failed := h.window_failed + p_failed;

    IF was = 'closed' THEN
        IF h.failure_streak >= trip_failures
           OR (h.window_sent >= min_requests AND h.window_failed >= trip_ratio * h.window_sent) THEN
            h.circuit := 'open';
            h.opened_at := p_now;
            h.cooldown_s := base_cooldown_s;
            h.probe_at := p_now + make_interval(secs => h.cooldown_s);
        END IF;
    ELSIF p_probe_failed THEN
        h.cooldown_s := least(max_cooldown_s, greatest(h.cooldown_s, base_cooldown_s) * 2);
        h.probe_at := p_now + make_interval(secs => h.cooldown_s);
    ELSIF NOT p_probe_failed THEN
        h.circuit := 'closed';
        h.failure_streak := 0;
    END IF;
    IF h.circuit = 'closed' THEN
        h.opened_at := NULL;
        h.probe_at := NULL;
        h.cooldown_s := 0;
    END IF;

    raised := h.pace_per_s * power(recovery_factor, p_succeeded);
    h.pace_per_s := CASE
        WHEN p_throttled
            THEN greatest(slowest_per_s,
                          coalesce(h.pace_per_s, p_rate_limit_per_s,
                                   h.window_sent / greatest(1.0, window_age_s))
                          * throttled_factor)
        WHEN raised >= coalesce(p_rate_limit_per_s, unpaced_per_s) THEN NULL
        ELSE raised END;

    IF p_pause_s > 0 THEN
        h.paused_until := greatest(h.paused_until, p_now + make_interval(secs => p_pause_s));
    END IF;
    RETURN h;
END
$$;

-- The circuit the API shows (hookpost_subscription_health): an open circuit whose probe is on the
-- wire is half open.
CREATE OR REPLACE FUNCTION hookpost_circuit_shown(
    h subscription_health, p_probe_in_flight boolean, p_now timestamptz)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN h.circuit = 'open' AND h.probe_at <= p_now AND p_probe_in_flight
                THEN 'half_open' ELSE coalesce(h.circuit, 'closed') END
$$;
