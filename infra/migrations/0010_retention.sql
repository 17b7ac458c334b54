-- Stored-data lifecycle (#16). Per client: how many days after a job ended its original and its
-- variants are kept (NULL: PIXELFLOW_RETAIN_*_DAYS), and where its variants go under outputs/
-- (NULL: PIXELFLOW_OUTPUT_KEY_TEMPLATE). Per job: when the retention sweeper deleted them; the
-- expiry itself is not stored but computed from finished_at and the retention in force now.
ALTER TABLE client_policies
    ADD COLUMN retain_originals_days integer CHECK (retain_originals_days >= 1),
    ADD COLUMN retain_outputs_days   integer CHECK (retain_outputs_days >= 1),
    ADD COLUMN output_key_template   text;
ALTER TABLE jobs
    ADD COLUMN original_deleted_at timestamptz,
    ADD COLUMN outputs_deleted_at  timestamptz;
-- What the sweeper scans each tick: finished jobs that still hold something.
CREATE INDEX jobs_retention_due ON jobs (finished_at)
    WHERE deleted_at IS NULL AND finished_at IS NOT NULL
      AND (original_deleted_at IS NULL OR outputs_deleted_at IS NULL);
