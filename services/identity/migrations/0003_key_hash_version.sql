-- Which server secret keyed a key's stored digest (HMAC-SHA-256), so that the secret can rotate:
-- keys are found under every configured version and re-keyed to the current one on use.
-- 0 is the unkeyed SHA-256 of the first release.
ALTER TABLE api_keys ADD COLUMN hash_version BIGINT NOT NULL DEFAULT 0;
