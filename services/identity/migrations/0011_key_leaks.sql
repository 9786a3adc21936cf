-- Where a key revoked as leaked was found (a secret-scanning report's URL).
ALTER TABLE api_keys ADD COLUMN leak_url TEXT;
