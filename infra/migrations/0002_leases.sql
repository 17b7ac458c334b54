-- Every job ends: a running job holds a lease its worker renews; each queue message carries a
-- dispatch token, and only the message holding the job's current token may claim it. Handing a
-- job back (transient error, drain, lapsed lease) issues a new token, so stale or duplicated
-- queue entries cannot run it twice, and a worker that lost its lease cannot commit results.
ALTER TABLE jobs ADD COLUMN dispatch uuid;
ALTER TABLE jobs ADD COLUMN lease_expires_at timestamptz;
-- The queue a job was dispatched to: each worker pool's sweeper tends only its own queue's jobs.
ALTER TABLE jobs ADD COLUMN queue text;
UPDATE jobs SET dispatch = gen_random_uuid() WHERE status IN ('queued', 'processing');
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE status = 'processing';
CREATE INDEX jobs_queued ON jobs (updated_at) WHERE status = 'queued';

-- Standard Webhooks: webhook-id identifies the message, so a redelivery keeps it and receivers
-- can deduplicate. A delivery row is one sending of a message.
ALTER TABLE webhook_deliveries ADD COLUMN message_id uuid;
UPDATE webhook_deliveries SET message_id = id;
ALTER TABLE webhook_deliveries ALTER COLUMN message_id SET NOT NULL;
