-- Per-client overrides of the global limits (PIXELFLOW_* settings of the same names); NULL keeps
-- the global value. Set with `pixelflow clients limits`; clients read theirs at GET /v1/limits.
CREATE TABLE client_policies (
    client_id                       uuid PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
    rate_limit_per_minute           integer CHECK (rate_limit_per_minute >= 1),
    rate_limit_burst                integer CHECK (rate_limit_burst >= 1),
    max_concurrent_jobs_per_client  integer CHECK (max_concurrent_jobs_per_client >= 1),
    max_source_pixels               bigint CHECK (max_source_pixels >= 1),
    max_job_cost                    integer CHECK (max_job_cost >= 1),
    updated_at                      timestamptz NOT NULL DEFAULT now()
);
