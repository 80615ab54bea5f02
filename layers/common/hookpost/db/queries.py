"""Every SQL statement Hookpost runs, by name. Parameters are named (`%(name)s`).

Each statement is written out whole as a plain string. The few with a part only known per
request are `psycopg.sql.SQL` templates, and that part is composed with `psycopg.sql`: the
optional filters of the *_LIST statements (`listing`), the columns a PATCH sets (`updating`).
Logic that several statements share lives in the database, as a function of
`db/functions/`.

Lists are newest first and keyed by the time-ordered id, so a cursor is the last id seen; the
filters are composed rather than written as `(%(x)s IS NULL OR ...)` so every plan can use its
index.
"""

from __future__ import annotations

from psycopg import sql

HEALTH_CHECK = "SELECT 1 AS ok"

# Migrations (hookpost.db.migrate): a session-level advisory lock serialises migrating processes.
MIGRATIONS_LOCK = "SELECT pg_try_advisory_lock(%(key)s) AS locked"
MIGRATIONS_UNLOCK = "SELECT pg_advisory_unlock(%(key)s)"
MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(), checksum text)
"""
# Releases before checksums were kept made the table without the column.
MIGRATIONS_CHECKSUM_COLUMN = "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text"
MIGRATION_ADOPT_CHECKSUMS = """
UPDATE schema_migrations m SET checksum = f.checksum
FROM unnest(%(versions)s::text[], %(checksums)s::text[]) AS f (version, checksum)
WHERE m.version = f.version AND m.checksum IS NULL
"""
MIGRATIONS_APPLIED = "SELECT version, checksum FROM schema_migrations"
# For the migrating session: no statement queues the application behind it for long.
MIGRATIONS_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', %(timeout)s, false)"
MIGRATION_RECORD = """
INSERT INTO schema_migrations (version, checksum) VALUES (%(version)s, %(checksum)s)
"""

# Applications and API keys

APPLICATION_INSERT = """
INSERT INTO applications (name, retention_days) VALUES (%(name)s, %(retention_days)s)
RETURNING id, name, retention_days, created_at, updated_at
"""

APPLICATION_GET = """
SELECT id, name, retention_days, created_at, updated_at FROM applications WHERE id = %(id)s
"""

APPLICATION_LIST = sql.SQL("""
SELECT id, name, retention_days, created_at, updated_at FROM applications {where}
ORDER BY id DESC LIMIT %(limit)s
""")

# A PATCH: `updating` sets the columns it names.
APPLICATION_UPDATE = sql.SQL("""
UPDATE applications SET {changes}, updated_at = now() WHERE id = %(id)s
RETURNING id, name, retention_days, created_at, updated_at
""")

APPLICATION_DELETE = "DELETE FROM applications WHERE id = %(id)s RETURNING id"

# `ttl_s` NULL: a key that never expires.
API_KEY_INSERT = """
INSERT INTO api_keys (application_id, name, key_hash, key_prefix, expires_at)
VALUES (%(application_id)s, %(name)s, %(key_hash)s, %(key_prefix)s,
        now() + make_interval(secs => %(ttl_s)s))
RETURNING id, name, created_at, expires_at
"""

API_KEY_LIST = sql.SQL("""
SELECT id, name, key_prefix AS prefix, created_at, revoked_at, expires_at FROM api_keys {where}
ORDER BY id DESC LIMIT %(limit)s
""")

API_KEY_REVOKE = """
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = %(id)s AND application_id = %(application_id)s RETURNING id
"""

# A live key: neither revoked nor expired (hookpost_ingest checks an ingest's key the same way).
API_KEY_APPLICATION = """
SELECT application_id FROM api_keys
WHERE key_hash = %(key_hash)s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
"""

# Event types

# A new name is inserted; a deactivated one comes back to life; an active one is a conflict
# (no row returned).
EVENT_TYPE_UPSERT = """
INSERT INTO event_types (application_id, name, description, schema)
VALUES (%(application_id)s, %(name)s, %(description)s, %(schema)s)
ON CONFLICT ON CONSTRAINT event_types_pkey DO UPDATE
SET description = excluded.description, schema = excluded.schema, active = true,
    updated_at = now()
WHERE NOT event_types.active
RETURNING name, description, schema, active, created_at, updated_at
"""

EVENT_TYPE_LIST = sql.SQL("""
SELECT name, description, schema, active, created_at, updated_at FROM event_types {where}
ORDER BY name LIMIT %(limit)s
""")

EVENT_TYPE_DEACTIVATE = """
UPDATE event_types SET active = false, updated_at = now()
WHERE application_id = %(application_id)s AND name = %(name)s RETURNING name
"""

EVENT_TYPES_FOR_INGEST = """
SELECT name, active, schema, updated_at FROM event_types
WHERE application_id = %(application_id)s AND name = ANY(%(names)s)
"""

# Subscriptions
#
# The API answers a subscription with its health: each statement below that returns
# subscriptions joins hookpost_subscription_health (db/functions/080_subscription_health.sql) to
# its rows, in the same round trip, including the INSERT and UPDATEs, whose RETURNING rows it
# reads.

SUBSCRIPTION_INSERT = """
WITH s AS (
    INSERT INTO subscriptions
        (application_id, url, event_types, labels, headers, description, enabled, secret,
         rate_limit_per_s, max_in_flight, ordering, payload_filter, batch_max_events,
         batch_max_wait_ms, debounce_s, payload_mode)
    VALUES (%(application_id)s, %(url)s, %(event_types)s, %(labels)s, %(headers)s,
            %(description)s, %(enabled)s, %(secret)s, %(rate_limit_per_s)s, %(max_in_flight)s,
            %(ordering)s, %(payload_filter)s, %(batch_max_events)s, %(batch_max_wait_ms)s,
            %(debounce_s)s, %(payload_mode)s)
    RETURNING id, url, event_types, labels, headers, description, enabled, disabled_reason,
              secret, rate_limit_per_s, max_in_flight, ordering, payload_filter AS filter,
              batch_max_events, batch_max_wait_ms, debounce_s, payload_mode AS payload,
              created_at, updated_at
)
SELECT s.*, h.* FROM s CROSS JOIN LATERAL hookpost_subscription_health(s.id) AS h
"""

SUBSCRIPTION_GET = """
SELECT s.id, s.url, s.event_types, s.labels, s.headers, s.description, s.enabled,
       s.disabled_reason, s.secret, s.rate_limit_per_s, s.max_in_flight, s.ordering,
       s.payload_filter AS filter, s.batch_max_events, s.batch_max_wait_ms, s.debounce_s,
       s.payload_mode AS payload, s.created_at, s.updated_at, h.*
FROM subscriptions s CROSS JOIN LATERAL hookpost_subscription_health(s.id) AS h
WHERE s.id = %(id)s AND s.application_id = %(application_id)s
"""

SUBSCRIPTION_LIST = sql.SQL("""
SELECT s.*, h.* FROM (
    SELECT id, url, event_types, labels, headers, description, enabled, disabled_reason, secret,
           rate_limit_per_s, max_in_flight, ordering, payload_filter AS filter,
           batch_max_events, batch_max_wait_ms, debounce_s, payload_mode AS payload, created_at,
           updated_at
    FROM subscriptions {where} ORDER BY id DESC LIMIT %(limit)s
) AS s
CROSS JOIN LATERAL hookpost_subscription_health(s.id) AS h
ORDER BY s.id DESC
""")

# A PATCH: `updating` sets the columns it names.
SUBSCRIPTION_UPDATE = sql.SQL("""
WITH s AS (
    UPDATE subscriptions SET {changes}, updated_at = now()
    WHERE id = %(id)s AND application_id = %(application_id)s
    RETURNING id, url, event_types, labels, headers, description, enabled, disabled_reason,
              secret, rate_limit_per_s, max_in_flight, ordering, payload_filter AS filter,
              batch_max_events, batch_max_wait_ms, debounce_s, payload_mode AS payload,
              created_at, updated_at
)
SELECT s.*, h.* FROM s CROSS JOIN LATERAL hookpost_subscription_health(s.id) AS h
""")

# A PATCH that changes `ordering` first locks the row FOR UPDATE: that waits out the ingests,
# replays and retries still storing attempts for it (they hold KEY SHARE locks on it until they
# commit) and makes those that start meanwhile wait, then read the new setting (their locking
# read of the subscription sees the committed row). So the backfill below, run after the
# update in the same transaction, finds every attempt fanned out under the old setting.
SUBSCRIPTION_LOCK = """
SELECT ordering FROM subscriptions
WHERE id = %(id)s AND application_id = %(application_id)s FOR UPDATE
"""

# The attempts of one subscription not finished yet take the ordering key its new `ordering`
# gives them (the event's key for per_key, none otherwise; a debounced subscription's keep it).
# The OR (not IN) lets the planner combine partial indexes of pending and of in-flight attempts
# in a BitmapOr. It runs in the PATCH's request: its cost grows with the subscription's backlog.
SUBSCRIPTION_ORDERING_BACKFILL = """
UPDATE attempts a
SET ordering_key = k.ordering_key
FROM subscriptions s
CROSS JOIN events e
CROSS JOIN LATERAL (
    SELECT CASE WHEN %(ordering)s = 'per_key' OR s.debounce_s IS NOT NULL
                THEN coalesce(e.ordering_key, e.event_type) END AS ordering_key
) AS k
WHERE s.id = %(id)s AND a.subscription_id = %(id)s
  AND (a.status = 'pending' OR a.status = 'in_flight')
  AND e.id = a.event_id AND a.ordering_key IS DISTINCT FROM k.ordering_key
"""

# A subscription's filter, checked by PostgreSQL itself: it must parse as a jsonpath and be a
# predicate (against an empty object, anything else raises "single boolean result is expected").
SUBSCRIPTION_FILTER_CHECK = "SELECT jsonb_path_match('{}'::jsonb, %(filter)s::jsonpath)"

SUBSCRIPTION_DELETE = """
DELETE FROM subscriptions WHERE id = %(id)s AND application_id = %(application_id)s RETURNING id
"""

SUBSCRIPTION_ROTATE_SECRET = """
WITH s AS (
    UPDATE subscriptions
    SET previous_secret = secret, previous_secret_expires_at = now() + interval '24 hours',
        secret = %(secret)s, updated_at = now()
    WHERE id = %(id)s AND application_id = %(application_id)s
    RETURNING id, url, event_types, labels, headers, description, enabled, disabled_reason,
              secret, rate_limit_per_s, max_in_flight, ordering, payload_filter AS filter,
              batch_max_events, batch_max_wait_ms, debounce_s, payload_mode AS payload,
              created_at, updated_at
)
SELECT s.*, h.* FROM s CROSS JOIN LATERAL hookpost_subscription_health(s.id) AS h
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
# A subscription matches an event when it is enabled, names its type (or `*`), its labels are
# among the event's and its filter, if any, holds for the payload (`@@` is false, never an error,
# for a payload the path does not fit). Attempts are due at the event's deliver_at (now when
# absent or past), expire with it, carry its priority, and its ordering key when their
# subscription orders per key or debounces. The candidate subscriptions are read with KEY SHARE
# locks (the same lock the attempts' foreign keys take anyway): a PATCH of `ordering`
# (SUBSCRIPTION_LOCK) then waits for this statement's transaction, or this statement waits for
# it and reads the setting it committed.
#
# Debounce: on a subscription with debounce_s, an event replaces the pending attempt (trigger
# 'event', not due yet) of the same ordering key, which ends `superseded`, and is due debounce_s
# later, but no later than debounce_until: 10 x debounce_s after the first event of the chain,
# carried from attempt to attempt. Of several events of one key in one request, only the last
# is pending.
# The statement is hookpost_ingest's (db/functions/035_ingest.sql), which first takes the
# request's rate-limit buckets and checks its API key when given `key_hash` (NULL: already done).
# Ids as text: what the answer writes (a UUID object per row, then its string, cost more).
EVENTS_INGEST = """
SELECT outcome, retry_after_s, exhausted, id::text, event_id, event_type, attempts_created, stale
FROM hookpost_ingest(%(application_id)s, %(key_hash)s, %(keys)s::text[], %(bursts)s::float8[],
                     %(rates)s::float8[], %(events)s::jsonb)
"""

EVENTS_BY_KEY = """
SELECT id::text, event_id, event_type, attempts_created FROM events
WHERE application_id = %(application_id)s AND event_id = ANY(%(event_ids)s)
"""

# Events stored before ordering keys existed have none: theirs is their type.
EVENT_GET = """
SELECT id, event_id, event_type, payload, labels, occurred_at,
       coalesce(ordering_key, event_type) AS ordering_key, deliver_at, expires_at,
       CASE priority WHEN 1 THEN 'high' WHEN -1 THEN 'low' ELSE 'normal' END AS priority,
       created_at, attempts_created
FROM events WHERE id = %(id)s AND application_id = %(application_id)s
"""

# An event named by its id or by the event_id the client gave it. A client may give one event
# another's id as its event_id: the event whose id it is wins.
EVENT_GET_BY_REF = """
SELECT id, event_id, event_type, payload, labels, occurred_at,
       coalesce(ordering_key, event_type) AS ordering_key, deliver_at, expires_at,
       CASE priority WHEN 1 THEN 'high' WHEN -1 THEN 'low' ELSE 'normal' END AS priority,
       created_at, attempts_created
FROM events
WHERE application_id = %(application_id)s AND (id = %(event_uuid)s OR event_id = %(event_ref)s)
ORDER BY id IS NOT DISTINCT FROM %(event_uuid)s DESC LIMIT 1
"""

EVENT_LIST = sql.SQL("""
SELECT id, event_id, event_type, payload, labels, occurred_at,
       coalesce(ordering_key, event_type) AS ordering_key, deliver_at, expires_at,
       CASE priority WHEN 1 THEN 'high' WHEN -1 THEN 'low' ELSE 'normal' END AS priority,
       created_at, attempts_created
FROM events {where} ORDER BY id DESC LIMIT %(limit)s
""")

# Replays go to the given subscriptions, or to every enabled one the event matches today (`*`
# matches no operational `hookpost.` type; filters apply). They are due now, never expire and
# carry the event's priority; per_key subscriptions get the event's ordering key. The
# subscriptions are locked as in EVENTS_INGEST.
# A replay is someone asking for a delivery now: hookpost_deliver_now (db/functions/
# 075_deliver_now.sql) makes an open circuit of each subscription probe at once, puts it in line
# for the next claim and wakes the deliver loops; ATTEMPT_RETRY, SUBSCRIPTION_RECOVER and
# SUBSCRIPTION_TEST call it too. `scope` narrows it to a portal session's subscriptions ('{}' for
# everyone else).
EVENT_REPLAY = """
WITH created AS (
    INSERT INTO attempts
        (application_id, event_id, subscription_id, trigger, ordering_key, priority)
    SELECT e.application_id, e.id, s.id, 'replay',
           CASE WHEN s.ordering = 'per_key' THEN coalesce(e.ordering_key, e.event_type) END,
           e.priority
    FROM events e
    JOIN subscriptions s ON s.application_id = e.application_id AND s.enabled
    WHERE e.id = %(id)s AND e.application_id = %(application_id)s
      AND s.labels @> %(scope)s::jsonb
      AND CASE WHEN %(subscription_ids)s::uuid[] IS NULL
               THEN s.event_types && CASE WHEN starts_with(e.event_type, 'hookpost.')
                                          THEN ARRAY[e.event_type]
                                          ELSE ARRAY[e.event_type, '*'] END
                    AND e.labels @> s.labels
                    AND (s.payload_filter IS NULL OR e.payload @@ s.payload_filter::jsonpath)
               ELSE s.id = ANY(%(subscription_ids)s::uuid[]) END
    FOR KEY SHARE OF s
    RETURNING id, subscription_id
)
SELECT id FROM created
CROSS JOIN (SELECT hookpost_deliver_now(array_agg(subscription_id)) FROM created) AS now_due
"""

# A thin delivery's fetch link (hookpost.links): the event, if it was sent to the subscription
# the link names, with the stored secrets the link may be signed with (the previous one while it
# still signs).
FETCH_LINK_EVENT = """
SELECT e.id, e.event_id, e.event_type, e.payload, e.occurred_at, s.secret,
       CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END
           AS previous_secret
FROM subscriptions s
JOIN events e ON e.id = %(event_id)s AND e.application_id = s.application_id
WHERE s.id = %(subscription_id)s
  AND EXISTS (SELECT FROM attempts a WHERE a.event_id = e.id AND a.subscription_id = s.id)
"""

# Attempts

ATTEMPT_GET = """
SELECT id, event_id, subscription_id, status::text AS status, try_number, trigger, due_at,
       created_at, started_at, finished_at, response_status, response_headers, response_body,
       elapsed_ms, error, batch_id
FROM attempts WHERE id = %(id)s AND application_id = %(application_id)s
"""

ATTEMPT_LIST = sql.SQL("""
SELECT id, event_id, subscription_id, status::text AS status, try_number, trigger, due_at,
       created_at, started_at, finished_at, response_status, response_headers, response_body,
       elapsed_ms, error, batch_id
FROM attempts {where} ORDER BY id DESC LIMIT %(limit)s
""")

ATTEMPTS_OF_EVENT = """
SELECT id, event_id, subscription_id, status::text AS status, try_number, trigger, due_at,
       created_at, started_at, finished_at, response_status, response_headers, response_body,
       elapsed_ms, error, batch_id
FROM attempts WHERE event_id = %(event_id)s ORDER BY id
"""

# A manual retry is one more try of the same event to the same subscription, due now and never
# expiring, with the event's ordering key when the subscription orders per key (locked as in
# EVENTS_INGEST). An open circuit probes at once, as in EVENT_REPLAY; NOTIFY wakes the deliver
# loops, as in EVENTS_INGEST.
ATTEMPT_RETRY = """
WITH created AS (
    INSERT INTO attempts
        (application_id, event_id, subscription_id, try_number, trigger, ordering_key, priority)
    SELECT a.application_id, a.event_id, a.subscription_id,
           (SELECT max(try_number) + 1 FROM attempts p
            WHERE p.event_id = a.event_id AND p.subscription_id = a.subscription_id),
           'manual',
           CASE WHEN s.ordering = 'per_key' THEN coalesce(e.ordering_key, e.event_type) END,
           e.priority
    FROM attempts a
    JOIN subscriptions s ON s.id = a.subscription_id
    JOIN events e ON e.id = a.event_id
    WHERE a.id = %(id)s AND a.application_id = %(application_id)s
    FOR KEY SHARE OF s
    RETURNING id, event_id, subscription_id, status::text AS status, try_number, trigger, due_at,
              created_at, started_at, finished_at, response_status, response_headers,
              response_body, elapsed_ms, error, batch_id
)
SELECT created.* FROM created
CROSS JOIN (SELECT hookpost_deliver_now(array_agg(subscription_id)) FROM created) AS now_due
"""

# Recover: one new attempt, due now, of every event whose last attempt to the subscription
# ended failed, gave_up or expired within [since, until). Attempts finished in the window are
# read through the subscription's index; the latest of each event's attempts to it is found
# through attempts_event_idx. Trigger, ordering key, locks, probe and NOTIFY as in EVENT_REPLAY.
SUBSCRIPTION_RECOVER = """
WITH ended AS (
    SELECT DISTINCT a.event_id
    FROM attempts a
    WHERE a.subscription_id = %(id)s AND a.application_id = %(application_id)s
      AND a.status IN ('failed', 'gave_up', 'expired')
      AND a.finished_at >= %(since)s AND a.finished_at < %(until)s
      AND NOT EXISTS (SELECT FROM attempts n
                      WHERE n.event_id = a.event_id AND n.subscription_id = a.subscription_id
                        AND n.id > a.id)
),
created AS (
    INSERT INTO attempts
        (application_id, event_id, subscription_id, try_number, trigger, ordering_key, priority)
    SELECT s.application_id, e.id, s.id,
           (SELECT max(try_number) + 1 FROM attempts p
            WHERE p.event_id = e.id AND p.subscription_id = s.id),
           'replay',
           CASE WHEN s.ordering = 'per_key' THEN coalesce(e.ordering_key, e.event_type) END,
           e.priority
    FROM subscriptions s
    JOIN ended x ON true
    JOIN events e ON e.id = x.event_id
    WHERE s.id = %(id)s AND s.application_id = %(application_id)s
    FOR KEY SHARE OF s
    RETURNING id, subscription_id
)
SELECT count(*) AS attempts_created FROM created
CROSS JOIN (SELECT hookpost_deliver_now(array_agg(subscription_id)) FROM created) AS now_due
"""

# A test delivery: an event of its own (labelled as the subscription, so a portal scoped to it
# sees it) with one attempt, due now, to this one subscription, whatever its types and labels.
# Probe and NOTIFY as in EVENT_REPLAY: someone is waiting for this one.
SUBSCRIPTION_TEST = """
WITH s AS (
    SELECT id, application_id, labels, ordering FROM subscriptions
    WHERE id = %(id)s AND application_id = %(application_id)s
    FOR KEY SHARE
),
event AS (
    INSERT INTO events
        (id, application_id, event_id, event_type, payload, labels, occurred_at,
         attempts_created)
    SELECT %(event_uuid)s, s.application_id, %(event_uuid)s::text, %(event_type)s, %(payload)s,
           s.labels, now(), 1
    FROM s
    RETURNING id, event_type
),
created AS (
    INSERT INTO attempts (application_id, event_id, subscription_id, trigger, ordering_key)
    SELECT s.application_id, event.id, s.id, 'manual',
           CASE WHEN s.ordering = 'per_key' THEN event.event_type END
    FROM s CROSS JOIN event
    RETURNING id, subscription_id
)
SELECT created.id AS attempt_id FROM created
CROSS JOIN (SELECT hookpost_deliver_now(array_agg(subscription_id)) FROM created) AS now_due
"""

# Portal sessions (hookpost.credentials): tokens and links are looked up by their SHA-256.

PORTAL_SESSION_INSERT = """
INSERT INTO portal_sessions (application_id, labels, token_hash, link_hash, expires_at)
VALUES (%(application_id)s, %(labels)s, %(token_hash)s, %(link_hash)s,
        now() + make_interval(secs => %(ttl_s)s))
RETURNING id, labels, expires_at
"""

PORTAL_SESSION_REVOKE = """
UPDATE portal_sessions SET revoked_at = coalesce(revoked_at, now())
WHERE id = %(id)s AND application_id = %(application_id)s RETURNING id
"""

# The API's token or the console's (after its link was exchanged) of a live session.
PORTAL_SESSION_BY_TOKEN = """
SELECT id, application_id, labels FROM portal_sessions
WHERE (token_hash = %(token_hash)s OR console_token_hash = %(token_hash)s)
  AND revoked_at IS NULL AND expires_at > now()
"""

# A link opens the console once: the first exchange sets the console's token, any later finds
# it set and gets nothing.
PORTAL_SESSION_EXCHANGE = """
UPDATE portal_sessions SET console_token_hash = %(console_token_hash)s
WHERE link_hash = %(link_hash)s AND console_token_hash IS NULL
  AND revoked_at IS NULL AND expires_at > now()
RETURNING id, application_id, labels, expires_at
"""

# What a portal session may reach (hookpost.api.scope): a subscription whose labels include the
# session's, an event carrying them, an attempt to such a subscription.
PORTAL_SUBSCRIPTION_IN_SCOPE = """
SELECT 1 FROM subscriptions
WHERE id = %(id)s AND application_id = %(application_id)s AND labels @> %(scope)s
"""

PORTAL_EVENT_IN_SCOPE = """
SELECT 1 FROM events
WHERE application_id = %(application_id)s AND (id = %(event_uuid)s OR event_id = %(event_ref)s)
  AND labels @> %(scope)s
ORDER BY id IS NOT DISTINCT FROM %(event_uuid)s DESC LIMIT 1
"""

PORTAL_ATTEMPT_IN_SCOPE = """
SELECT 1 FROM attempts a JOIN subscriptions s ON s.id = a.subscription_id
WHERE a.id = %(id)s AND a.application_id = %(application_id)s AND s.labels @> %(scope)s
"""

PORTAL_SUBSCRIPTIONS_IN_SCOPE = """
SELECT id FROM subscriptions WHERE application_id = %(application_id)s AND labels @> %(scope)s
"""

# The dynamic parts, composed with psycopg.sql: the list filters and a PATCH's columns.

# Each list filter is a condition over named parameters, used only when its parameter is given.
LIST_FILTERS = {
    "application_id": sql.SQL("application_id = %(application_id)s"),
    "after_id": sql.SQL("id < %(after_id)s"),
    "after_name": sql.SQL("name > %(after_name)s"),
    "event_type": sql.SQL("event_type = %(event_type)s"),
    # When it was accepted.
    "since": sql.SQL("created_at >= %(since)s"),
    "until": sql.SQL("created_at < %(until)s"),
    # Labels an event (or, for a portal session, a subscription) must carry, as a JSON object.
    "labels": sql.SQL("labels @> %(labels)s"),
    # A portal session's attempts: those to the subscriptions it may reach.
    "scope": sql.SQL(
        "subscription_id IN (SELECT id FROM subscriptions WHERE application_id ="
        " %(application_id)s AND labels @> %(scope)s)"
    ),
    "status": sql.SQL("status = %(status)s::attempt_status"),
    "subscription_id": sql.SQL("subscription_id = %(subscription_id)s"),
    # An attempt's event may be named by its id or by the event_id the client gave it.
    "event_ref": sql.SQL(
        "event_id IN (SELECT id FROM events WHERE application_id = %(application_id)s"
        " AND (id = %(event_uuid)s OR event_id = %(event_ref)s))"
    ),
}


def listing(statement: sql.SQL, params: dict[str, object]) -> sql.Composed:
    """A *_LIST statement with the WHERE clause of the filters whose parameters are set."""
    conditions = [cond for name, cond in LIST_FILTERS.items() if params.get(name) is not None]
    where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    return statement.format(where=where)


def updating(statement: sql.SQL, columns: list[str]) -> sql.Composed:
    """A *_UPDATE statement setting each named column to the parameter of the same name."""
    changes = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in columns
    )
    return statement.format(changes=changes)


# Delivery

# Claims a batch of due attempts for one claim id and leases them: hookpost_claim (migration
# 0006) shares the batch fairly among the subscriptions whose turn it is and honours each one's
# circuit, Retry-After, rate, in-flight cap and key order. Pipelined with it in the same
# transaction, DELIVERY_NEXT_READY says when the next subscription becomes ready, so that a loop
# with nothing to do sleeps exactly until then.
DELIVERY_CLAIM = """
SELECT id, status, try_number, event_id, subscription_id, event_type, waited_ms, payload,
       occurred_at, url, headers, secret, previous_secret, batch_id, event_ref, thin
FROM hookpost_claim(%(claim_id)s, %(limit)s, %(lease_s)s, %(share)s, %(holding)s::jsonb)
"""

DELIVERY_NEXT_READY = """
SELECT extract(epoch FROM min(ready_at) - now()) AS in_s FROM subscription_state
WHERE ready_at IS NOT NULL
"""

# Records a batch of outcomes in one statement (hookpost_record, migration 0006): results, retries,
# 410s, each subscription's circuit, pace and Retry-After, and the operational events raised.
DELIVERY_RECORD = """
SELECT status, count FROM hookpost_record(%(results)s::jsonb, %(circuit)s::jsonb)
"""

# Ends pending attempts whose event expired, held ones included (a claim ends the due ones it
# meets itself), in bounded batches. Served by attempts_pending_expiry_idx.
DELIVERY_EXPIRE = """
WITH due AS MATERIALIZED (
    SELECT id FROM attempts
    WHERE status = 'pending' AND expires_at <= now()
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE attempts SET status = 'expired', finished_at = now(),
    error = 'expired before it could be sent'
WHERE id = ANY(ARRAY(SELECT id FROM due))
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

# Pulls forward the ready_at of every subscription whose earliest pending attempt is due before
# it: the safety net behind the trigger hookpost_attempts_ready, which skips a state row another
# transaction holds. A loose index scan over the subscriptions with pending attempts (one probe
# each of attempts_subscription_due_idx). FOR UPDATE skips rows an attempt is being written for
# (see hookpost_settle_ready: this snapshot cannot see that attempt) and rows held elsewhere;
# both are left to the writer or to the next pass.
DELIVERY_RESYNC_READY = """
WITH RECURSIVE pending AS (
    (SELECT subscription_id, due_at FROM attempts WHERE status = 'pending'
     ORDER BY subscription_id, due_at LIMIT 1)
    UNION ALL
    SELECT next.subscription_id, next.due_at FROM pending
    CROSS JOIN LATERAL (
        SELECT a.subscription_id, a.due_at FROM attempts a
        WHERE a.status = 'pending' AND a.subscription_id > pending.subscription_id
        ORDER BY a.subscription_id, a.due_at LIMIT 1) AS next
),
behind AS (
    SELECT st.subscription_id, p.due_at FROM subscription_state st
    JOIN pending p USING (subscription_id)
    WHERE st.ready_at IS NULL OR st.ready_at > p.due_at
    FOR UPDATE OF st SKIP LOCKED
)
UPDATE subscription_state st SET ready_at = behind.due_at
FROM behind WHERE st.subscription_id = behind.subscription_id
"""

# The channel EVENTS_INGEST, EVENT_REPLAY and ATTEMPT_RETRY notify.
DELIVERY_LISTEN = "LISTEN hookpost_attempts"

# The deliver loop's writes need not wait for the WAL flush (one fsync each): if PostgreSQL
# crashes and loses the last moments of them, the attempts concerned are still pending or in
# flight, and are sent again (delivery is at least once). Events are never written this way.
# set_config rather than SET LOCAL: the same for the rest of the transaction, without SET LOCAL's
# warning in a pipeline's implicit transaction (no BEGIN: one round trip).
DELIVERY_ASYNC_COMMIT = "SELECT set_config('synchronous_commit', 'off', true)"


# Jobs, stats and limits

# Due attempts no deliver loop has claimed yet, counted up to `cap`: a huge backlog costs a
# bounded read of attempts_subscription_due_idx.
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
# history. Buckets that lost all their rows are removed, unchanged ones are not rewritten. Each
# bucket keeps a latency histogram per outcome that has response times (succeeded, failed,
# gave_up: every try sent; a gave_up that never went out has no elapsed_ms). What a write raises
# is added to the running totals of /v1/metrics by stats_hourly's triggers (025_stats_totals.sql).
STATS_REFRESH = """
WITH finished AS MATERIALIZED (
    SELECT application_id, date_trunc('hour', finished_at, 'UTC') AS hour, status, elapsed_ms
    FROM attempts
    WHERE finished_at >= %(lo)s AND finished_at < %(hi)s
      AND status IN ('succeeded', 'failed', 'gave_up', 'superseded', 'expired')
),
attempt_counts AS (
    SELECT application_id, hour,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'gave_up') AS gave_up,
           count(*) FILTER (WHERE status = 'superseded') AS superseded,
           count(*) FILTER (WHERE status = 'expired') AS expired,
           percentile_disc(0.5) WITHIN GROUP (ORDER BY elapsed_ms)
               FILTER (WHERE status = 'succeeded') AS p50_ms,
           percentile_disc(0.95) WITHIN GROUP (ORDER BY elapsed_ms)
               FILTER (WHERE status = 'succeeded') AS p95_ms
    FROM finished GROUP BY application_id, hour
),
histograms AS (
    SELECT application_id, hour,
           coalesce(array_agg(ms ORDER BY ms) FILTER (WHERE status = 'succeeded'), '{}')
               AS latency_ms,
           coalesce(array_agg(n ORDER BY ms) FILTER (WHERE status = 'succeeded'), '{}')
               AS latency_count,
           coalesce(array_agg(ms ORDER BY ms) FILTER (WHERE status = 'failed'), '{}')
               AS failed_latency_ms,
           coalesce(array_agg(n ORDER BY ms) FILTER (WHERE status = 'failed'), '{}')
               AS failed_latency_count,
           coalesce(array_agg(ms ORDER BY ms) FILTER (WHERE status = 'gave_up'), '{}')
               AS gave_up_latency_ms,
           coalesce(array_agg(n ORDER BY ms) FILTER (WHERE status = 'gave_up'), '{}')
               AS gave_up_latency_count
    FROM (SELECT application_id, hour, status, hookpost_latency_bucket(elapsed_ms) AS ms,
                 count(*)::integer AS n
          FROM finished
          WHERE status IN ('succeeded', 'failed', 'gave_up') AND elapsed_ms IS NOT NULL
          GROUP BY 1, 2, 3, 4) AS buckets
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
           coalesce(a.gave_up, 0) AS gave_up, coalesce(a.superseded, 0) AS superseded,
           coalesce(a.expired, 0) AS expired, a.p50_ms, a.p95_ms,
           coalesce(h.latency_ms, '{}') AS latency_ms,
           coalesce(h.latency_count, '{}') AS latency_count,
           coalesce(h.failed_latency_ms, '{}') AS failed_latency_ms,
           coalesce(h.failed_latency_count, '{}') AS failed_latency_count,
           coalesce(h.gave_up_latency_ms, '{}') AS gave_up_latency_ms,
           coalesce(h.gave_up_latency_count, '{}') AS gave_up_latency_count
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
                                   superseded, expired, p50_ms, p95_ms, latency_ms,
                                   latency_count, failed_latency_ms, failed_latency_count,
                                   gave_up_latency_ms, gave_up_latency_count)
    SELECT application_id, hour, events, succeeded, failed, gave_up, superseded, expired,
           p50_ms, p95_ms, latency_ms, latency_count, failed_latency_ms, failed_latency_count,
           gave_up_latency_ms, gave_up_latency_count
    FROM fresh
    ON CONFLICT ON CONSTRAINT stats_hourly_pkey DO UPDATE
    SET events = excluded.events, succeeded = excluded.succeeded, failed = excluded.failed,
        gave_up = excluded.gave_up, superseded = excluded.superseded,
        expired = excluded.expired, p50_ms = excluded.p50_ms, p95_ms = excluded.p95_ms,
        latency_ms = excluded.latency_ms, latency_count = excluded.latency_count,
        failed_latency_ms = excluded.failed_latency_ms,
        failed_latency_count = excluded.failed_latency_count,
        gave_up_latency_ms = excluded.gave_up_latency_ms,
        gave_up_latency_count = excluded.gave_up_latency_count
    WHERE (s.events, s.succeeded, s.failed, s.gave_up, s.superseded, s.expired, s.p50_ms,
           s.p95_ms, s.latency_ms, s.latency_count, s.failed_latency_ms,
           s.failed_latency_count, s.gave_up_latency_ms, s.gave_up_latency_count)
          IS DISTINCT FROM (excluded.events, excluded.succeeded, excluded.failed,
                            excluded.gave_up, excluded.superseded, excluded.expired,
                            excluded.p50_ms, excluded.p95_ms, excluded.latency_ms,
                            excluded.latency_count, excluded.failed_latency_ms,
                            excluded.failed_latency_count, excluded.gave_up_latency_ms,
                            excluded.gave_up_latency_count)
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
       coalesce(s.failed, 0) AS failed, coalesce(s.gave_up, 0) AS gave_up,
       coalesce(s.superseded, 0) AS superseded, coalesce(s.expired, 0) AS expired,
       s.p50_ms, s.p95_ms
FROM unnest(%(starts)s::timestamptz[]) AS b(start)
LEFT JOIN stats_hourly s ON s.application_id = %(application_id)s AND s.hour = b.start
ORDER BY b.start
"""

# One application's days at the given starts: the hours summed, and their latency histograms
# merged (the day's percentiles are read off the merged histogram by the caller).
STATS_DAYS = """
WITH hours AS (
    SELECT date_trunc('day', hour, 'UTC') AS start, events, succeeded, failed, gave_up,
           superseded, expired, latency_ms, latency_count
    FROM stats_hourly
    WHERE application_id = %(application_id)s AND hour >= %(lo)s AND hour < %(hi)s
),
totals AS (
    SELECT start, sum(events) AS events, sum(succeeded) AS succeeded, sum(failed) AS failed,
           sum(gave_up) AS gave_up, sum(superseded) AS superseded, sum(expired) AS expired
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
       coalesce(t.superseded, 0) AS superseded, coalesce(t.expired, 0) AS expired,
       coalesce(l.latency_ms, '{}') AS latency_ms, coalesce(l.latency_count, '{}') AS latency_count
FROM unnest(%(starts)s::timestamptz[]) AS b(start)
LEFT JOIN totals t USING (start)
LEFT JOIN latency l USING (start)
ORDER BY b.start
"""

# GET /v1/metrics, one row per application: its attempts pending (and how many of them are due,
# and since when the first one is) and in flight, its open circuits, and its running totals of
# events and tries by outcome. Each part is read where it is small: the pending and the in-flight
# attempts through their partial indexes (attempts_subscription_due_idx,
# attempts_in_flight_lease_idx), never the finished history; circuits from the delivery state
# tables (a row per subscription); the counts from stats_totals (a row per application).
METRICS_APPLICATIONS = """
WITH pending AS (
    SELECT application_id, count(*) AS pending, count(*) FILTER (WHERE due_at <= now()) AS due,
           min(due_at) AS first_due_at
    FROM attempts WHERE status = 'pending'
    GROUP BY application_id
),
in_flight AS (
    SELECT application_id, count(*) AS in_flight
    FROM attempts WHERE status = 'in_flight'
    GROUP BY application_id
),
circuits AS (
    SELECT st.application_id, count(*) AS open
    FROM subscription_health h JOIN subscription_state st USING (subscription_id)
    WHERE h.circuit = 'open'
    GROUP BY st.application_id
)
SELECT a.id, a.name, coalesce(p.pending, 0) AS pending, coalesce(f.in_flight, 0) AS in_flight,
       coalesce(p.due, 0) AS due,
       CASE WHEN p.first_due_at <= now()
            THEN extract(epoch FROM now() - p.first_due_at)::float8 ELSE 0 END AS oldest_due_s,
       coalesce(c.open, 0) AS circuits_open, coalesce(t.events, 0) AS events,
       coalesce(t.succeeded, 0) AS succeeded, coalesce(t.failed, 0) AS failed,
       coalesce(t.gave_up, 0) AS gave_up
FROM applications a
LEFT JOIN pending p ON p.application_id = a.id
LEFT JOIN in_flight f ON f.application_id = a.id
LEFT JOIN circuits c ON c.application_id = a.id
LEFT JOIN stats_totals t ON t.application_id = a.id
ORDER BY a.id
"""

# GET /v1/metrics: the running latency histograms by outcome, every application's together
# (stats_latency_totals: a few hundred keys per outcome at most, see hookpost_latency_bucket),
# with when the rollup was last refreshed.
METRICS_LATENCY = """
SELECT (SELECT refreshed_at FROM stats_refresh) AS refreshed_at,
       coalesce(array_agg(outcome ORDER BY outcome, ms), '{}') AS latency_outcome,
       coalesce(array_agg(ms ORDER BY outcome, ms), '{}') AS latency_ms,
       coalesce(array_agg(n ORDER BY outcome, ms), '{}') AS latency_count
FROM stats_latency_totals
"""

# Events past their application's retention with no attempt pending or in flight, one batch of
# them locked. Ids are UUIDv7, so an id bound finds an application's old events in a range of
# events_application_idx; the bound is written as a row comparison on that index's columns,
# which only that index can serve (planned on the bare id, the primary key looked cheaper and
# read every application's old events). created_at decides. SKIP LOCKED passes over an event
# another transaction holds, such as one inserting an attempt for it (its foreign-key check
# takes a share lock). CLEANUP_COUNT_DUE_EVENTS reads the same events.
CLEANUP_LOCK_DUE_EVENTS = """
SELECT e.id
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
    ORDER BY e.id LIMIT %(limit)s FOR UPDATE OF e SKIP LOCKED
) AS e
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

# What a cleanup would delete (HOOKPOST_CLEANUP_DRY_RUN): the events CLEANUP_LOCK_DUE_EVENTS
# finds, all of them, unlocked.
CLEANUP_COUNT_DUE_EVENTS = """
SELECT count(*) AS events,
       coalesce(sum((SELECT count(*) FROM attempts t WHERE t.event_id = e.id)), 0)::bigint
           AS attempts
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
) AS e
"""

# A rotated-out secret stops signing after its expiry (the claim checks the time); clearing it
# keeps it from lingering in the database.
CLEANUP_EXPIRED_SECRETS = """
UPDATE subscriptions SET previous_secret = NULL, previous_secret_expires_at = NULL
WHERE previous_secret_expires_at <= now()
"""

CLEANUP_COUNT_EXPIRED_SECRETS = """
SELECT count(*) AS secrets FROM subscriptions WHERE previous_secret_expires_at <= now()
"""

# A portal session past its expiry opens nothing (PORTAL_SESSION_BY_TOKEN checks the time), revoked
# or not: its hashes have no more use. Sessions live a day at most, so the table stays small.
CLEANUP_EXPIRED_PORTAL_SESSIONS = "DELETE FROM portal_sessions WHERE expires_at <= now()"

CLEANUP_COUNT_EXPIRED_PORTAL_SESSIONS = """
SELECT count(*) AS sessions FROM portal_sessions WHERE expires_at <= now()
"""

# An API key past its expiry answers 401 (API_KEY_APPLICATION, hookpost_ingest checks the time);
# kept a day for its listing to show why it stopped working, then deleted. A small table: a
# sequential scan.
CLEANUP_EXPIRED_API_KEYS = """
DELETE FROM api_keys WHERE expires_at <= now() - interval '1 day'
"""

CLEANUP_COUNT_EXPIRED_API_KEYS = """
SELECT count(*) AS api_keys FROM api_keys WHERE expires_at <= now() - interval '1 day'
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

# The application's database role (hookpost.db.roles), made by the migrating master user: it
# logs in with the password of its own secret and may only read and write the rows, call the
# functions and draw from the sequences, never change the schema. Role and password are known
# per deploy, so they are composed (sql.Identifier, sql.Literal): a utility statement takes no
# parameters.
APPLICATION_ROLE_EXISTS = "SELECT 1 FROM pg_roles WHERE rolname = %(name)s"
APPLICATION_ROLE_CREATE = sql.SQL("CREATE ROLE {role} WITH LOGIN PASSWORD {password}")
APPLICATION_ROLE_PASSWORD = sql.SQL("ALTER ROLE {role} WITH LOGIN PASSWORD {password}")
APPLICATION_ROLE_GRANTS = [
    sql.SQL("GRANT CONNECT ON DATABASE {database} TO {role}"),
    sql.SQL("GRANT USAGE ON SCHEMA public TO {role}"),
    sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
    sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}"),
    sql.SQL("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {role}"),
]
