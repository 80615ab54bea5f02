-- API keys may expire: past `expires_at` a key answers 401 on its next request, as a revoked one
-- does (the key checks compare it with now() in their one lookup by key_hash). NULL: the key
-- never expires, which is what every key made before this release keeps. A nullable column
-- without a default: the ALTER changes only the catalog, no row is rewritten.
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz;
