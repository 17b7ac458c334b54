-- Charge what is spent (#24): engine CPU seconds of every run, whatever the job's outcome, and a
-- daily quota of them next to the megapixel one.

-- The engine CPU all of a job's runs spent so far. A run adds its own when it ends: a run handed
-- back (an outage, a drain) or stopped after losing its lease in the UPDATE that hands the job on
-- or later; the run that ends the job in the transaction of its terminal status, which copies the
-- sum into job_usage (infra/repo/usage.py). A run that ends after the job did (canceled while it
-- ran) adds to both. So for an ended job, job_usage.engine_cpu_seconds = jobs.engine_cpu_seconds.
ALTER TABLE jobs
    ADD COLUMN engine_cpu_seconds double precision NOT NULL DEFAULT 0 CHECK (engine_cpu_seconds >= 0);

-- Why a failed job failed, so usage reports failures by code (deadline_exceeded above all).
ALTER TABLE job_usage ADD COLUMN error_code text;
UPDATE job_usage u SET error_code = j.error_code FROM jobs j WHERE j.id = u.job_id AND u.outcome = 'failed';

-- The daily quotas' sums read the index only.
CREATE INDEX job_usage_client_day_spend ON job_usage (client_id, day) INCLUDE (source_pixels, engine_cpu_seconds);
DROP INDEX job_usage_client_day;

-- A client's daily quota of engine CPU seconds (PIXELFLOW_DAILY_ENGINE_CPU_SECONDS; NULL: the global).
ALTER TABLE client_policies
    ADD COLUMN daily_engine_cpu_seconds integer CHECK (daily_engine_cpu_seconds >= 1);
