-- The whole contract's schema. Ids are UUIDv7 (time-ordered) so that primary-key order is
-- creation order: list cursors and the claim index ride on it.

CREATE FUNCTION hookpost_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
            PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
            FROM 1 FOR 6), 52, 1), 53, 1),
        'hex')::uuid
$$;

CREATE TABLE applications (
    id             uuid PRIMARY KEY DEFAULT hookpost_uuid7(),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    retention_days integer NOT NULL DEFAULT 30 CHECK (retention_days BETWEEN 1 AND 3650),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a key is kept; the key itself is shown once, at creation.
CREATE TABLE api_keys (
    id             uuid PRIMARY KEY DEFAULT hookpost_uuid7(),
    application_id uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    key_hash       bytea NOT NULL CONSTRAINT api_keys_key_hash_key UNIQUE,
    key_prefix     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);
CREATE INDEX api_keys_application_idx ON api_keys (application_id, id);

CREATE TABLE event_types (
    application_id uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    name           text NOT NULL,
    description    text,
    schema         jsonb,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT event_types_pkey PRIMARY KEY (application_id, name)
);

CREATE TABLE subscriptions (
    id                         uuid PRIMARY KEY DEFAULT hookpost_uuid7(),
    application_id             uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    url                        text NOT NULL,
    event_types                text[] NOT NULL,
    labels                     jsonb NOT NULL DEFAULT '{}',
    headers                    jsonb NOT NULL DEFAULT '{}',
    description                text,
    enabled                    boolean NOT NULL DEFAULT true,
    disabled_reason            text,
    secret                     text NOT NULL,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_application_idx ON subscriptions (application_id, id);
-- Fan-out reads the enabled subscriptions of one application on every ingest.
CREATE INDEX subscriptions_fanout_idx ON subscriptions (application_id) WHERE enabled;

CREATE TABLE events (
    id               uuid PRIMARY KEY DEFAULT hookpost_uuid7(),
    application_id   uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    payload          jsonb NOT NULL,
    labels           jsonb NOT NULL DEFAULT '{}',
    occurred_at      timestamptz NOT NULL,
    attempts_created integer NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_idempotency_key UNIQUE (application_id, event_id)
);
CREATE INDEX events_application_idx ON events (application_id, id);
CREATE INDEX events_type_idx ON events (application_id, event_type, id);

CREATE TYPE attempt_status AS ENUM ('pending', 'in_flight', 'succeeded', 'failed', 'gave_up');

-- One row per try. A failed try stays 'failed' and its retry is a new row.
CREATE TABLE attempts (
    id               uuid PRIMARY KEY DEFAULT hookpost_uuid7(),
    application_id   uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    event_id         uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    subscription_id  uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    status           attempt_status NOT NULL DEFAULT 'pending',
    try_number       integer NOT NULL DEFAULT 1 CHECK (try_number >= 1),
    trigger          text NOT NULL DEFAULT 'event'
                     CHECK (trigger IN ('event', 'retry', 'replay', 'manual')),
    due_at           timestamptz NOT NULL DEFAULT now(),
    claimed_by       uuid,
    lease_expires_at timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    response_status  integer,
    response_headers jsonb,
    response_body    text,
    elapsed_ms       integer,
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
-- The claim path: due pending attempts in due order, and nothing else, in the index.
CREATE INDEX attempts_pending_due_idx ON attempts (due_at) WHERE status = 'pending';
-- Lease recovery scans only what is in flight.
CREATE INDEX attempts_in_flight_lease_idx ON attempts (lease_expires_at)
    WHERE status = 'in_flight';
-- List filters, newest first.
CREATE INDEX attempts_application_idx ON attempts (application_id, id);
CREATE INDEX attempts_status_idx ON attempts (application_id, status, id);
CREATE INDEX attempts_subscription_idx ON attempts (subscription_id, id);
CREATE INDEX attempts_event_idx ON attempts (event_id, id);
