-- When a key stops working (unix ms); NULL: it never expires.
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
