-- A key may carry its own job-creation limit, below its client's: a request passes both the
-- client's bucket (shared by all its keys) and the key's. NULL: only the client's applies.
ALTER TABLE api_keys ADD COLUMN rate_limit_per_minute integer CHECK (rate_limit_per_minute >= 1);
