-- Ids and timestamps: UUIDv7 (time-ordered, so primary-key order is creation order) and RFC 3339.

CREATE OR REPLACE FUNCTION hookpost_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
            PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
            FROM 1 FOR 6), 52, 1), 53, 1),
        'hex')::uuid
$$;

-- The smallest UUIDv7 of a given instant: ids below it were made before it, so a range scan of
-- an (application_id, id) index finds an application's old rows.
CREATE OR REPLACE FUNCTION hookpost_uuid7_floor(at timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT encode(substring(int8send((extract(epoch FROM at) * 1000)::bigint) FROM 3)
                  || '\x00000000000000000000'::bytea, 'hex')::uuid
$$;

-- RFC 3339 in UTC with a Z, as the API writes timestamps (for operational event payloads).
CREATE OR REPLACE FUNCTION hookpost_rfc3339(at timestamptz) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
