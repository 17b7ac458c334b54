-- Deleting a job (DELETE /v1/jobs/{id}, e.g. for a GDPR erasure request) removes its objects, its
-- spec and metadata and its webhook deliveries; the row stays as a tombstone for audit: id,
-- client, status, timestamps, and the variants' formats and sizes (usage reports count them).
ALTER TABLE jobs ADD COLUMN deleted_at timestamptz;
