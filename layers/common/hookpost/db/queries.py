"""Every SQL statement Hookpost runs, by name. Parameters are named (`%(name)s`).

Lists are newest first and keyed by the time-ordered id, so a cursor is the last id seen; the
optional filters are composed in `listing` so every plan can use its index.
"""

from __future__ import annotations

from psycopg import sql

HEALTH_CHECK = "SELECT 1 AS ok"

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
# back by EVENTS_BY_KEY).
EVENTS_INGEST = """
WITH input AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset(%(events)s::jsonb) AS t(
        ord integer, id uuid, event_id text, event_type text, payload jsonb, labels jsonb,
        occurred_at timestamptz)
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
    FROM input i ORDER BY i.ord
    ON CONFLICT ON CONSTRAINT events_idempotency_key DO NOTHING
    RETURNING id, event_id, event_type, attempts_created
),
fanned_out AS (
    INSERT INTO attempts (application_id, event_id, subscription_id)
    SELECT %(application_id)s, ins.id, m.subscription_id
    FROM inserted ins JOIN input i ON i.id = ins.id JOIN matched m ON m.ord = i.ord
)
SELECT id, event_id, event_type, attempts_created FROM inserted
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
EVENT_REPLAY = """
INSERT INTO attempts (application_id, event_id, subscription_id, trigger)
SELECT e.application_id, e.id, s.id, 'replay'
FROM events e
JOIN subscriptions s ON s.application_id = e.application_id AND s.enabled
WHERE e.id = %(id)s AND e.application_id = %(application_id)s
  AND CASE WHEN %(subscription_ids)s::uuid[] IS NULL
           THEN s.event_types && ARRAY[e.event_type, '*'] AND e.labels @> s.labels
           ELSE s.id = ANY(%(subscription_ids)s::uuid[]) END
RETURNING id
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

# A manual retry is one more try of the same event to the same subscription, due now.
ATTEMPT_RETRY = f"""
INSERT INTO attempts (application_id, event_id, subscription_id, try_number, trigger)
SELECT a.application_id, a.event_id, a.subscription_id,
       (SELECT max(try_number) + 1 FROM attempts p
        WHERE p.event_id = a.event_id AND p.subscription_id = a.subscription_id),
       'manual'
FROM attempts a WHERE a.id = %(id)s AND a.application_id = %(application_id)s
RETURNING {_ATTEMPT_COLUMNS}
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
