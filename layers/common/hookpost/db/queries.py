"""Every SQL statement Hookpost runs, by name. Parameters are named (`%(name)s`).

Lists are newest first and keyed by the time-ordered id, so a cursor is the last id seen; the
optional filters are composed in `listing` so every plan can use its index.
"""

from __future__ import annotations

from psycopg import sql

HEALTH_CHECK = "SELECT 1 AS ok"

# Migrations (hookpost.db.migrate): a session-level advisory lock serialises migrating processes.
MIGRATIONS_LOCK = "SELECT pg_advisory_lock(%(key)s)"
MIGRATIONS_UNLOCK = "SELECT pg_advisory_unlock(%(key)s)"
MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())
"""
MIGRATIONS_APPLIED = "SELECT version FROM schema_migrations"
MIGRATION_RECORD = "INSERT INTO schema_migrations (version) VALUES (%(version)s)"

# Applications and API keys

APPLICATION_INSERT = """
INSERT INTO applications (name, retention_days) VALUES (%(name)s, %(retention_days)s)
RETURNING id, name, retention_days, created_at, updated_at
"""

APPLICATION_GET = """
SELECT id, name, retention_days, created_at, updated_at FROM applications WHERE id = %(id)s
"""

APPLICATION_LIST = """
SELECT id, name, retention_days, created_at, updated_at FROM applications {where}
ORDER BY id DESC LIMIT %(limit)s
"""

APPLICATION_DELETE = "DELETE FROM applications WHERE id = %(id)s RETURNING id"

API_KEY_INSERT = """
INSERT INTO api_keys (application_id, name, key_hash, key_prefix)
VALUES (%(application_id)s, %(name)s, %(key_hash)s, %(key_prefix)s)
RETURNING id, name, created_at
"""

API_KEY_LIST = """
SELECT id, name, key_prefix AS prefix, created_at, revoked_at FROM api_keys {where}
ORDER BY id DESC LIMIT %(limit)s
"""

API_KEY_REVOKE = """
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = %(id)s AND application_id = %(application_id)s RETURNING id
"""

API_KEY_APPLICATION = """
SELECT application_id FROM api_keys WHERE key_hash = %(key_hash)s AND revoked_at IS NULL
"""

# Event types

_EVENT_TYPE_COLUMNS = "name, description, schema, active, created_at, updated_at"

# A new name is inserted; a deactivated one comes back to life; an active one is a conflict
# (no row returned).
EVENT_TYPE_UPSERT = f"""
INSERT INTO event_types (application_id, name, description, schema)
VALUES (%(application_id)s, %(name)s, %(description)s, %(schema)s)
ON CONFLICT ON CONSTRAINT event_types_pkey DO UPDATE
SET description = excluded.description, schema = excluded.schema, active = true,
    updated_at = now()
WHERE NOT event_types.active
RETURNING {_EVENT_TYPE_COLUMNS}
"""

EVENT_TYPE_LIST = f"""
SELECT {_EVENT_TYPE_COLUMNS} FROM event_types {{where}} ORDER BY name LIMIT %(limit)s
"""

EVENT_TYPE_DEACTIVATE = """
UPDATE event_types SET active = false, updated_at = now()
WHERE application_id = %(application_id)s AND name = %(name)s RETURNING name
"""

EVENT_TYPES_FOR_INGEST = """
SELECT name, active, schema, updated_at FROM event_types
WHERE application_id = %(application_id)s AND name = ANY(%(names)s)
"""

# Subscriptions

SUBSCRIPTION_COLUMNS = (
    "id, url, event_types, labels, headers, description, enabled, disabled_reason, secret,"
    " created_at, updated_at"
)

SUBSCRIPTION_INSERT = f"""
INSERT INTO subscriptions
    (application_id, url, event_types, labels, headers, description, enabled, secret)
VALUES (%(application_id)s, %(url)s, %(event_types)s, %(labels)s, %(headers)s, %(description)s,
        %(enabled)s, %(secret)s)
RETURNING {SUBSCRIPTION_COLUMNS}
"""

SUBSCRIPTION_GET = f"""
SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions
WHERE id = %(id)s AND application_id = %(application_id)s
"""

SUBSCRIPTION_LIST = f"""
SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions {{where}} ORDER BY id DESC LIMIT %(limit)s
"""

SUBSCRIPTION_DELETE = """
DELETE FROM subscriptions WHERE id = %(id)s AND application_id = %(application_id)s RETURNING id
"""

SUBSCRIPTION_ROTATE_SECRET = f"""
UPDATE subscriptions
SET previous_secret = secret, previous_secret_expires_at = now() + interval '24 hours',
    secret = %(secret)s, updated_at = now()
WHERE id = %(id)s AND application_id = %(application_id)s
RETURNING {SUBSCRIPTION_COLUMNS}
"""

SUBSCRIPTIONS_ENABLED_AMONG = """
SELECT id FROM subscriptions
WHERE application_id = %(application_id)s AND enabled AND id = ANY(%(ids)s)
"""

# Events

# One statement stores a whole batch and fans it out: the input is one JSON array, the matching
# subscriptions are joined once, and an event_id seen before inserts nothing (its row is read
# back by EVENTS_BY_KEY). A row with `stale` true says the caller's event types were out of
# date and nothing was stored. When attempts were created it NOTIFYs hookpost_attempts (sent on
# commit, once) to wake the deliver loops that LISTEN; `woken` is joined so that it runs.
EVENTS_INGEST = """
WITH input AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(%(events)s::jsonb) AS t(
        ord integer, id uuid, event_id text, event_type text, payload jsonb, labels jsonb,
        occurred_at timestamptz, type_version timestamptz)
),
-- The caller validated payloads against event types it may have cached: if any is gone,
-- inactive or changed since (another version), nothing is stored and it asks again.
stale AS MATERIALIZED (
    SELECT count(*) AS types FROM input i
    LEFT JOIN event_types t ON t.application_id = %(application_id)s AND t.name = i.event_type
    WHERE t.name IS NULL OR NOT t.active OR t.updated_at IS DISTINCT FROM i.type_version
),
matched AS MATERIALIZED (
    SELECT i.ord, s.id AS subscription_id
    FROM input i
    JOIN subscriptions s
      ON s.application_id = %(application_id)s AND s.enabled
     AND s.event_types && ARRAY[i.event_type, '*']
     AND i.labels @> s.labels
),
inserted AS (
    INSERT INTO events
        (id, application_id, event_id, event_type, payload, labels, occurred_at, attempts_created)
    SELECT i.id, %(application_id)s, i.event_id, i.event_type, i.payload, i.labels, i.occurred_at,
           (SELECT count(*) FROM matched m WHERE m.ord = i.ord)
    FROM input i WHERE (SELECT types FROM stale) = 0 ORDER BY i.ord
    ON CONFLICT ON CONSTRAINT events_idempotency_key DO NOTHING
    RETURNING id, event_id, event_type, attempts_created
),
fanned_out AS (
    INSERT INTO attempts (application_id, event_id, subscription_id)
    SELECT %(application_id)s, ins.id, m.subscription_id
    FROM inserted ins JOIN input i ON i.id = ins.id JOIN matched m ON m.ord = i.ord
    RETURNING 1
),
woken AS MATERIALIZED (
    SELECT pg_notify('hookpost_attempts', '') FROM (SELECT FROM fanned_out LIMIT 1) AS created
)
SELECT id, event_id, event_type, attempts_created, false AS stale
FROM inserted CROSS JOIN (SELECT count(*) FROM woken) AS wake
UNION ALL
SELECT NULL, NULL, NULL, NULL, true FROM stale WHERE types > 0
"""

EVENTS_BY_KEY = """
SELECT id, event_id, event_type, attempts_created FROM events
WHERE application_id = %(application_id)s AND event_id = ANY(%(event_ids)s)
"""

_EVENT_COLUMNS = (
    "id, event_id, event_type, payload, labels, occurred_at, created_at, attempts_created"
)

EVENT_GET = f"""
SELECT {_EVENT_COLUMNS} FROM events WHERE id = %(id)s AND application_id = %(application_id)s
"""

EVENT_LIST = f"""
SELECT {_EVENT_COLUMNS} FROM events {{where}} ORDER BY id DESC LIMIT %(limit)s
"""

# Replays go to the given subscriptions, or to every enabled one the event matches today.
# NOTIFY wakes the deliver loops, as in EVENTS_INGEST.
EVENT_REPLAY = """
WITH created AS (
    INSERT INTO attempts (application_id, event_id, subscription_id, trigger)
    SELECT e.application_id, e.id, s.id, 'replay'
    FROM events e
    JOIN subscriptions s ON s.application_id = e.application_id AND s.enabled
    WHERE e.id = %(id)s AND e.application_id = %(application_id)s
      AND CASE WHEN %(subscription_ids)s::uuid[] IS NULL
               THEN s.event_types && ARRAY[e.event_type, '*'] AND e.labels @> s.labels
               ELSE s.id = ANY(%(subscription_ids)s::uuid[]) END
    RETURNING id
),
woken AS MATERIALIZED (
    SELECT pg_notify('hookpost_attempts', '') FROM (SELECT FROM created LIMIT 1) AS any_created
)
SELECT id FROM created CROSS JOIN (SELECT count(*) FROM woken) AS wake
"""

# Attempts

_ATTEMPT_COLUMNS = (
    "id, event_id, subscription_id, status::text AS status, try_number, trigger, due_at,"
    " created_at, started_at, finished_at, response_status, response_headers, response_body,"
    " elapsed_ms, error"
)

ATTEMPT_GET = f"""
SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE id = %(id)s AND application_id = %(application_id)s
"""

ATTEMPT_LIST = f"""
SELECT {_ATTEMPT_COLUMNS} FROM attempts {{where}} ORDER BY id DESC LIMIT %(limit)s
"""

ATTEMPTS_OF_EVENT = f"""
SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE event_id = %(event_id)s ORDER BY id
"""

# A manual retry is one more try of the same event to the same subscription, due now; NOTIFY
# wakes the deliver loops, as in EVENTS_INGEST.
ATTEMPT_RETRY = f"""
WITH created AS (
    INSERT INTO attempts (application_id, event_id, subscription_id, try_number, trigger)
    SELECT a.application_id, a.event_id, a.subscription_id,
           (SELECT max(try_number) + 1 FROM attempts p
            WHERE p.event_id = a.event_id AND p.subscription_id = a.subscription_id),
           'manual'
    FROM attempts a WHERE a.id = %(id)s AND a.application_id = %(application_id)s
    RETURNING {_ATTEMPT_COLUMNS}
),
woken AS MATERIALIZED (SELECT pg_notify('hookpost_attempts', '') FROM created)
SELECT created.* FROM created CROSS JOIN (SELECT count(*) FROM woken) AS wake
"""

# Filters: each is a condition over named parameters, used only when the parameter is given.
LIST_FILTERS = {
    "application_id": "application_id = %(application_id)s",
    "after_id": "id < %(after_id)s",
    "after_name": "name > %(after_name)s",
    "event_type": "event_type = %(event_type)s",
    "status": "status = %(status)s::attempt_status",
    "subscription_id": "subscription_id = %(subscription_id)s",
    # An attempt's event may be named by its id or by the event_id the client gave it.
    "event_ref": (
        "event_id IN (SELECT id FROM events WHERE application_id = %(application_id)s"
        " AND (id = %(event_uuid)s OR event_id = %(event_ref)s))"
    ),
}


def listing(template: str, params: dict[str, object]) -> str:
    """The list query with a WHERE clause of the filters whose parameters are set."""
    conditions = [cond for name, cond in LIST_FILTERS.items() if params.get(name) is not None]
    where = "WHERE " + " AND ".join(conditions) if conditions else ""
    return template.format(where=where)


def update_statement(table: str, columns: list[str], returning: str) -> sql.Composed:
    """`UPDATE table SET col = %(col)s, ...` for the given columns, scoped to one row."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in columns
    )
    scope = "id = %(id)s" + (
        " AND application_id = %(application_id)s" if table != "applications" else ""
    )
    return sql.SQL("UPDATE {} SET {}, updated_at = now() WHERE {} RETURNING {}").format(
        sql.Identifier(table), assignments, sql.SQL(scope), sql.SQL(returning)
    )


# Delivery

# Claims a batch of due attempts for one claim id and leases them, in one short statement. The
# MATERIALIZED CTE fences LIMIT (inlined, the planner may lock and update more rows than asked);
# SKIP LOCKED lets any number of workers claim side by side without waiting on each other; the
# partial index attempts_pending_due_idx serves `status = 'pending' ORDER BY due_at` directly.
# `= ANY(ARRAY(...))` makes the update fetch the claimed rows by primary key whatever the
# planner's estimates (a join may hash the whole table). An attempt whose subscription was
# disabled meanwhile is given up here instead of sent.
DELIVERY_CLAIM = """
WITH due AS MATERIALIZED (
    SELECT id FROM attempts
    WHERE status = 'pending' AND due_at <= now()
    ORDER BY due_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE attempts a
    SET status = CASE WHEN s.enabled THEN 'in_flight' ELSE 'gave_up' END::attempt_status,
        claimed_by = %(claim_id)s,
        lease_expires_at = CASE WHEN s.enabled THEN now() + make_interval(secs => %(lease_s)s) END,
        started_at = now(),
        finished_at = CASE WHEN NOT s.enabled THEN now() END,
        error = CASE WHEN NOT s.enabled THEN 'subscription disabled' END
    FROM subscriptions s
    WHERE a.id = ANY(ARRAY(SELECT id FROM due)) AND s.id = a.subscription_id
    RETURNING a.id, a.status, a.try_number, a.event_id, a.subscription_id, a.due_at
)
SELECT c.id, c.status::text AS status, c.try_number, c.event_id, e.event_type,
       (extract(epoch FROM now() - c.due_at) * 1000)::bigint AS waited_ms,
       e.payload::text AS payload, e.occurred_at, s.url, s.headers, s.secret,
       CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END
           AS previous_secret
FROM claimed c JOIN events e ON e.id = c.event_id JOIN subscriptions s ON s.id = c.subscription_id
"""

# Records a batch of outcomes in one statement: each attempt's result, the subscriptions a 410
# disables, and the next try of each failure (unless a try of that event to that subscription
# is already pending: a replay or manual retry then carries on, rather than a second chain).
# Rows are fetched by primary key (`= ANY(ARRAY(...))`, as in DELIVERY_CLAIM).
# Only the claim that holds an attempt may record it; an attempt whose lease expired and went
# back to pending unclaimed still takes its holder's late result, saving a second send.
DELIVERY_RECORD = """
WITH result AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(%(results)s::jsonb) AS r(
        id uuid, claim_id uuid, status attempt_status, response_status integer,
        response_headers jsonb, response_body text, elapsed_ms integer, error text,
        retry_in_s double precision, disable boolean)
),
recorded AS (
    UPDATE attempts a
    SET status = r.status, finished_at = now(), lease_expires_at = NULL,
        response_status = r.response_status, response_headers = r.response_headers,
        response_body = r.response_body, elapsed_ms = r.elapsed_ms, error = r.error
    FROM result r
    WHERE a.id = ANY(ARRAY(SELECT id FROM result)) AND a.id = r.id
      AND a.claimed_by = r.claim_id AND a.status IN ('in_flight', 'pending')
    RETURNING a.id, a.status, a.application_id, a.event_id, a.subscription_id, a.try_number
),
disabled AS (
    UPDATE subscriptions s
    SET enabled = false, disabled_reason = 'the receiver answered 410 Gone', updated_at = now()
    FROM recorded c JOIN result r ON r.id = c.id
    WHERE r.disable AND s.id = c.subscription_id AND s.enabled
),
retried AS (
    INSERT INTO attempts (application_id, event_id, subscription_id, try_number, trigger, due_at)
    SELECT c.application_id, c.event_id, c.subscription_id, c.try_number + 1, 'retry',
           now() + make_interval(secs => r.retry_in_s)
    FROM recorded c JOIN result r ON r.id = c.id
    WHERE r.retry_in_s IS NOT NULL
      AND NOT EXISTS (
          SELECT FROM attempts p
          WHERE p.event_id = c.event_id AND p.subscription_id = c.subscription_id
            AND p.status = 'pending')
)
SELECT status::text AS status, count(*) AS count FROM recorded GROUP BY status
"""

# Hands back attempts a stopping worker claimed but did not finish, due at once.
DELIVERY_RELEASE = """
UPDATE attempts SET status = 'pending', claimed_by = NULL, lease_expires_at = NULL
WHERE id = ANY(%(ids)s) AND claimed_by = ANY(%(claim_ids)s) AND status = 'in_flight'
"""

# Returns attempts whose worker died (lease expired) to pending, keeping their due time so they
# go first. claimed_by stays: see DELIVERY_RECORD. Served by attempts_in_flight_lease_idx.
DELIVERY_RECOVER_LEASES = """
WITH expired AS MATERIALIZED (
    SELECT id FROM attempts
    WHERE status = 'in_flight' AND lease_expires_at < now()
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE attempts SET status = 'pending', lease_expires_at = NULL
WHERE id = ANY(ARRAY(SELECT id FROM expired))
"""

# The channel EVENTS_INGEST, EVENT_REPLAY and ATTEMPT_RETRY notify.
DELIVERY_LISTEN = "LISTEN hookpost_attempts"

# The deliver loop's writes need not wait for the WAL flush (one fsync each): if PostgreSQL
# crashes and loses the last moments of them, the attempts concerned are still pending or in
# flight, and are sent again (delivery is at least once). Events are never written this way.
DELIVERY_ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"


# Jobs, stats and limits

# Due attempts no deliver loop has claimed yet, counted up to `cap`: a huge backlog costs a
# bounded read of attempts_pending_due_idx.
BACKLOG_DEPTH = """
SELECT count(*) AS depth FROM (
    SELECT FROM attempts WHERE status = 'pending' AND due_at <= now() LIMIT %(cap)s
) AS due
"""

# The hours the next stats refresh recomputes: from the hour the last refresh's start falls in
# (less `margin`, for rows of transactions still open then) to the end of the current hour. The
# very first refresh starts at the oldest data, found through the indexes the refresh uses.
STATS_REFRESH_WINDOW = """
SELECT date_trunc('hour', coalesce(
           (SELECT refreshed_at FROM stats_refresh) - %(margin)s,
           least((SELECT min(created_at) FROM events),
                 (SELECT min(finished_at) FROM attempts WHERE finished_at IS NOT NULL)),
           now()), 'UTC') AS lo,
       date_trunc('hour', now(), 'UTC') + interval '1 hour' AS hi
"""

# One refresh at a time (the transaction's lock); a second one skips rather than redoing the
# same hours and fighting over the same rows.
STATS_REFRESH_LOCK = "SELECT pg_try_advisory_xact_lock(7210342119) AS locked"

# Recomputes every application's buckets for the hours in [lo, hi) from the raw rows, served by
# events_created_idx and attempts_finished_idx: the cost follows the hours' traffic, not the
# history. Buckets that lost all their rows are removed, unchanged ones are not rewritten.
STATS_REFRESH = """
WITH finished AS MATERIALIZED (
    SELECT application_id, date_trunc('hour', finished_at, 'UTC') AS hour, status, elapsed_ms
    FROM attempts
    WHERE finished_at >= %(lo)s AND finished_at < %(hi)s
      AND status IN ('succeeded', 'failed', 'gave_up')
),
attempt_counts AS (
    SELECT application_id, hour,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'gave_up') AS gave_up,
           percentile_disc(0.5) WITHIN GROUP (ORDER BY elapsed_ms)
               FILTER (WHERE status = 'succeeded') AS p50_ms,
           percentile_disc(0.95) WITHIN GROUP (ORDER BY elapsed_ms)
               FILTER (WHERE status = 'succeeded') AS p95_ms
    FROM finished GROUP BY application_id, hour
),
histograms AS (
    SELECT application_id, hour,
           array_agg(ms ORDER BY ms) AS latency_ms, array_agg(n ORDER BY ms) AS latency_count
    FROM (SELECT application_id, hour, hookpost_latency_bucket(elapsed_ms) AS ms,
                 count(*)::integer AS n
          FROM finished WHERE status = 'succeeded' AND elapsed_ms IS NOT NULL
          GROUP BY 1, 2, 3) AS buckets
    GROUP BY application_id, hour
),
event_counts AS (
    SELECT application_id, date_trunc('hour', created_at, 'UTC') AS hour, count(*) AS events
    FROM events WHERE created_at >= %(lo)s AND created_at < %(hi)s
    GROUP BY 1, 2
),
fresh AS MATERIALIZED (
    SELECT application_id, hour, coalesce(e.events, 0) AS events,
           coalesce(a.succeeded, 0) AS succeeded, coalesce(a.failed, 0) AS failed,
           coalesce(a.gave_up, 0) AS gave_up, a.p50_ms, a.p95_ms,
           coalesce(h.latency_ms, '{}') AS latency_ms,
           coalesce(h.latency_count, '{}') AS latency_count
    FROM event_counts e
    FULL JOIN attempt_counts a USING (application_id, hour)
    LEFT JOIN histograms h USING (application_id, hour)
),
emptied AS (
    DELETE FROM stats_hourly s
    WHERE s.hour >= %(lo)s AND s.hour < %(hi)s
      AND NOT EXISTS (
          SELECT FROM fresh f WHERE f.application_id = s.application_id AND f.hour = s.hour)
    RETURNING 1
),
written AS (
    INSERT INTO stats_hourly AS s (application_id, hour, events, succeeded, failed, gave_up,
                                   p50_ms, p95_ms, latency_ms, latency_count)
    SELECT application_id, hour, events, succeeded, failed, gave_up, p50_ms, p95_ms,
           latency_ms, latency_count
    FROM fresh
    ON CONFLICT ON CONSTRAINT stats_hourly_pkey DO UPDATE
    SET events = excluded.events, succeeded = excluded.succeeded, failed = excluded.failed,
        gave_up = excluded.gave_up, p50_ms = excluded.p50_ms, p95_ms = excluded.p95_ms,
        latency_ms = excluded.latency_ms, latency_count = excluded.latency_count
    WHERE (s.events, s.succeeded, s.failed, s.gave_up, s.p50_ms, s.p95_ms, s.latency_ms,
           s.latency_count)
          IS DISTINCT FROM (excluded.events, excluded.succeeded, excluded.failed,
                            excluded.gave_up, excluded.p50_ms, excluded.p95_ms,
                            excluded.latency_ms, excluded.latency_count)
    RETURNING 1
)
SELECT (SELECT count(*) FROM written) AS written, (SELECT count(*) FROM emptied) AS emptied
"""

# Marks the rollup complete up to `hi`, or to the transaction's start when `hi` is still ahead
# (the refresh's snapshot was taken after it). Never moves back.
STATS_MARK_REFRESHED = """
INSERT INTO stats_refresh AS r (refreshed_at) VALUES (least(%(hi)s::timestamptz, now()))
ON CONFLICT (singleton) DO UPDATE
SET refreshed_at = greatest(r.refreshed_at, excluded.refreshed_at)
"""

STATS_REFRESHED_AT = "SELECT refreshed_at FROM stats_refresh"

# One application's hourly buckets at the given starts, zeros where nothing happened.
STATS_HOURS = """
SELECT b.start, coalesce(s.events, 0) AS events, coalesce(s.succeeded, 0) AS succeeded,
       coalesce(s.failed, 0) AS failed, coalesce(s.gave_up, 0) AS gave_up, s.p50_ms, s.p95_ms
FROM unnest(%(starts)s::timestamptz[]) AS b(start)
LEFT JOIN stats_hourly s ON s.application_id = %(application_id)s AND s.hour = b.start
ORDER BY b.start
"""

# One application's days at the given starts: the hours summed, and their latency histograms
# merged (the day's percentiles are read off the merged histogram by the caller).
STATS_DAYS = """
WITH hours AS (
    SELECT date_trunc('day', hour, 'UTC') AS start, events, succeeded, failed, gave_up,
           latency_ms, latency_count
    FROM stats_hourly
    WHERE application_id = %(application_id)s AND hour >= %(lo)s AND hour < %(hi)s
),
totals AS (
    SELECT start, sum(events) AS events, sum(succeeded) AS succeeded, sum(failed) AS failed,
           sum(gave_up) AS gave_up
    FROM hours GROUP BY start
),
latency AS (
    SELECT start, array_agg(ms ORDER BY ms) AS latency_ms, array_agg(n ORDER BY ms) AS latency_count
    FROM (SELECT start, u.ms, sum(u.n) AS n
          FROM hours, unnest(latency_ms, latency_count) AS u(ms, n)
          GROUP BY start, u.ms) AS merged
    GROUP BY start
)
SELECT b.start, coalesce(t.events, 0) AS events, coalesce(t.succeeded, 0) AS succeeded,
       coalesce(t.failed, 0) AS failed, coalesce(t.gave_up, 0) AS gave_up,
       coalesce(l.latency_ms, '{}') AS latency_ms, coalesce(l.latency_count, '{}') AS latency_count
FROM unnest(%(starts)s::timestamptz[]) AS b(start)
LEFT JOIN totals t USING (start)
LEFT JOIN latency l USING (start)
ORDER BY b.start
"""

# Events past their application's retention with no attempt pending or in flight. Ids are
# UUIDv7, so an id bound finds an application's old events in a range of events_application_idx;
# the bound is written as a row comparison on that index's columns, which only that index can
# serve (planned on the bare id, the primary key looked cheaper and read every application's old
# events). created_at decides.
_EVENTS_DUE = """
FROM applications a
CROSS JOIN LATERAL (
    SELECT e.id FROM events e
    WHERE e.application_id = a.id
      AND (e.application_id, e.id)
          < (a.id, hookpost_uuid7_floor(now() - make_interval(days => a.retention_days)))
      AND e.created_at < now() - make_interval(days => a.retention_days)
      AND NOT EXISTS (
          SELECT FROM attempts t
          WHERE t.event_id = e.id AND t.status IN ('pending', 'in_flight'))
    {batch}
) AS e
"""

# Locks one batch of due events. SKIP LOCKED passes over an event another transaction holds,
# such as one inserting an attempt for it (its foreign-key check takes a share lock).
CLEANUP_LOCK_DUE_EVENTS = f"""
SELECT e.id
{_EVENTS_DUE.format(batch="ORDER BY e.id LIMIT %(limit)s FOR UPDATE OF e SKIP LOCKED")}
LIMIT %(limit)s
"""

# Deletes locked events and their attempts. Run in the locking transaction, after it: the locks
# keep new attempts out, and this statement's fresh snapshot sees any attempt that became pending
# before them, whose event is then kept.
CLEANUP_DELETE_EVENTS = """
WITH doomed AS MATERIALIZED (
    SELECT e.id FROM events e
    WHERE e.id = ANY(%(ids)s)
      AND NOT EXISTS (
          SELECT FROM attempts t
          WHERE t.event_id = e.id AND t.status IN ('pending', 'in_flight'))
),
attempts_gone AS (
    DELETE FROM attempts WHERE event_id IN (SELECT id FROM doomed) RETURNING 1
),
events_gone AS (
    DELETE FROM events WHERE id IN (SELECT id FROM doomed) RETURNING 1
)
SELECT (SELECT count(*) FROM events_gone) AS events,
       (SELECT count(*) FROM attempts_gone) AS attempts
"""

# What a cleanup would delete (HOOKPOST_CLEANUP_DRY_RUN).
CLEANUP_COUNT_DUE_EVENTS = f"""
SELECT count(*) AS events,
       coalesce(sum((SELECT count(*) FROM attempts t WHERE t.event_id = e.id)), 0)::bigint
           AS attempts
{_EVENTS_DUE.format(batch="")}"""

# A rotated-out secret stops signing after its expiry (the claim checks the time); clearing it
# keeps it from lingering in the database.
CLEANUP_EXPIRED_SECRETS = """
UPDATE subscriptions SET previous_secret = NULL, previous_secret_expires_at = NULL
WHERE previous_secret_expires_at <= now()
"""

CLEANUP_COUNT_EXPIRED_SECRETS = """
SELECT count(*) AS secrets FROM subscriptions WHERE previous_secret_expires_at <= now()
"""

# A bucket that has refilled to its burst reads exactly as a missing one, so dropping it changes
# nothing; this keeps the table down to the recently active clients.
CLEANUP_FULL_BUCKETS = """
DELETE FROM rate_limit_buckets
WHERE tokens + per_s * extract(epoch FROM now() - updated_at) >= burst
"""

CLEANUP_COUNT_FULL_BUCKETS = """
SELECT count(*) AS buckets FROM rate_limit_buckets
WHERE tokens + per_s * extract(epoch FROM now() - updated_at) >= burst
"""

# One token from every bucket of a request, or none (see hookpost_take_tokens).
LIMITS_TAKE = """
SELECT allowed, retry_after_s, exhausted
FROM hookpost_take_tokens(%(keys)s::text[], %(bursts)s::float8[], %(rates)s::float8[])
"""
