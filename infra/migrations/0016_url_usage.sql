-- Signed image URLs in the usage report (#26): renders told apart from API jobs, and what the
-- derived cache served.

-- A job's origin, copied by the transaction that counts it (infra/repo/usage.py, record_job):
-- `url` for a signed image URL's render, so the report counts renders apart from API jobs.
ALTER TABLE job_usage ADD COLUMN origin text NOT NULL DEFAULT 'api' CHECK (origin IN ('api', 'url'));
UPDATE job_usage u SET origin = 'url' FROM jobs j WHERE j.id = u.job_id AND j.origin = 'url';

-- Cache hits and bytes served per client and UTC day of the request. Each API process counts
-- them in memory and adds its counts here every PIXELFLOW_URL_USAGE_FLUSH_SECONDS and when it
-- stops (control_plane/delivery/served.py): a hit costs no database write.
CREATE TABLE url_usage (
    client_id     uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    day           date NOT NULL,
    cache_hits    bigint NOT NULL DEFAULT 0 CHECK (cache_hits >= 0),
    bytes_served  bigint NOT NULL DEFAULT 0 CHECK (bytes_served >= 0),
    PRIMARY KEY (client_id, day)
);
