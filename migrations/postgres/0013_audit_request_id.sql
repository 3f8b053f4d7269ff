-- The id of the request behind each audit entry (its X-Request-Id), to
-- find the entry's log lines and the answer the client saw.
ALTER TABLE audit_log ADD COLUMN request_id TEXT;
