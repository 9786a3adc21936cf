-- The networks a key may be used from, as comma-separated CIDR blocks; empty: anywhere.
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '';
