-- Rotation: the key that replaced this one, the one this one replaced, and when a rotated key
-- stops working (the end of its grace period). Past that moment the key reads as revoked with
-- reason `rotated`.
ALTER TABLE api_keys ADD COLUMN rotated_to TEXT;
ALTER TABLE api_keys ADD COLUMN rotated_from TEXT;
ALTER TABLE api_keys ADD COLUMN retires_at BIGINT;
