-- Usage metering (#16). Billing data: no foreign key to jobs or deliveries, so a deleted job
-- (tombstone) or an erased delivery history keeps what it used.

-- One row per job, written in the transaction of its terminal transition (infra/repo/jobs.py):
-- a job ends once, so a re-run, a re-delivered queue message or a repeated cancel adds nothing;
-- the primary key makes that a property of the table as well.
CREATE TABLE job_usage (
    job_id              uuid PRIMARY KEY,
    client_id           uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    day                 date NOT NULL,  -- the UTC day the job ended
    outcome             text NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'canceled')),
    source_pixels       bigint NOT NULL DEFAULT 0 CHECK (source_pixels >= 0),  -- width x height of a read source
    engine_cpu_seconds  double precision NOT NULL DEFAULT 0 CHECK (engine_cpu_seconds >= 0),
    output_bytes        jsonb NOT NULL DEFAULT '{}'::jsonb,  -- {"webp": 123456, "jpeg": 7890}
    recorded_at         timestamptz NOT NULL DEFAULT now()
);
-- The report's range scan, and the daily quota's sum (index-only).
CREATE INDEX job_usage_client_day ON job_usage (client_id, day) INCLUDE (source_pixels);

-- Webhook HTTP attempts per client and UTC day of the attempt, counted in the transaction that
-- logs the attempt (infra/repo/deliveries.py).
CREATE TABLE webhook_usage (
    client_id   uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    day         date NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    delivered   integer NOT NULL DEFAULT 0,  -- attempts the receiver answered 2xx
    PRIMARY KEY (client_id, day)
);

-- The jobs and attempts before metering existed, from what their rows kept (no CPU time).
INSERT INTO job_usage (job_id, client_id, day, outcome, source_pixels, output_bytes)
SELECT j.id, j.client_id, (coalesce(j.finished_at, j.updated_at) AT TIME ZONE 'UTC')::date, j.status,
       CASE WHEN j.status = 'succeeded' THEN coalesce(j.source_width::bigint * j.source_height, 0) ELSE 0 END,
       coalesce((SELECT jsonb_object_agg(f.format, f.bytes)
                 FROM (SELECT v.format, sum(v.bytes)::bigint AS bytes FROM variants v
                       WHERE v.job_id = j.id GROUP BY v.format) f), '{}'::jsonb)
FROM jobs j WHERE j.status IN ('succeeded', 'failed', 'canceled');

INSERT INTO webhook_usage (client_id, day, attempts, delivered)
SELECT j.client_id, (a.at AT TIME ZONE 'UTC')::date, count(*),
       count(*) FILTER (WHERE a.response_status BETWEEN 200 AND 299)
FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id JOIN jobs j ON j.id = d.job_id
GROUP BY 1, 2;

-- A client's daily quota of source megapixels (PIXELFLOW_DAILY_SOURCE_MEGAPIXELS; NULL: the global).
ALTER TABLE client_policies
    ADD COLUMN daily_source_megapixels integer CHECK (daily_source_megapixels >= 1);
