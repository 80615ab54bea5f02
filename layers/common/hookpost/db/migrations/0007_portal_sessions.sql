-- Portal sessions: one of an application's own customers, scoped by labels, for a while. Only
-- SHA-256 hashes are kept: of the `hpp_` token the API answered with, of the one-time link in
-- its `url`, and of the token the console got for that link (set when it was exchanged).
CREATE TABLE portal_sessions (
    id                 uuid PRIMARY KEY DEFAULT hookpost_uuid7(),
    application_id     uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    labels             jsonb NOT NULL CHECK (jsonb_typeof(labels) = 'object' AND labels <> '{}'),
    token_hash         bytea NOT NULL CONSTRAINT portal_sessions_token_hash_key UNIQUE,
    link_hash          bytea NOT NULL CONSTRAINT portal_sessions_link_hash_key UNIQUE,
    console_token_hash bytea CONSTRAINT portal_sessions_console_token_hash_key UNIQUE,
    expires_at         timestamptz NOT NULL,
    revoked_at         timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX portal_sessions_application_idx ON portal_sessions (application_id, id);
