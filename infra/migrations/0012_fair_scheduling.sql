-- Fair scheduling between clients (#24). Workers no longer take queued jobs in arrival order:
-- each claim picks the client with the least weighted service so far (fair_shares.vtime, in cost
-- units of about one CPU-ms divided by the client's weight), then that client's most urgent job
-- (priority: 0 interactive, 1 normal, 2 batch), then its oldest. fair_clocks.vtime is the
-- service level of the last pick in a queue: a client that comes back after idling starts there,
-- so it cannot bank credit while away. not_before: a job handed back with a backoff is not
-- claimable before it.
ALTER TABLE jobs
    ADD COLUMN priority   smallint NOT NULL DEFAULT 1 CHECK (priority BETWEEN 0 AND 2),
    ADD COLUMN not_before timestamptz;

CREATE TABLE fair_shares (
    queue     text NOT NULL,
    client_id uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    vtime     double precision NOT NULL DEFAULT 0,
    mean_cost double precision NOT NULL DEFAULT 0,  -- recent runs' engine CPU-ms (EWMA): the next run's provisional charge
    runs      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, client_id)
);

CREATE TABLE fair_clocks (
    queue text PRIMARY KEY,
    vtime double precision NOT NULL DEFAULT 0
);

ALTER TABLE client_policies
    ADD COLUMN scheduling_weight           integer CHECK (scheduling_weight >= 1),
    ADD COLUMN max_running_jobs_per_client integer CHECK (max_running_jobs_per_client >= 1),
    ADD COLUMN interactive_jobs_per_client integer CHECK (interactive_jobs_per_client >= 1);

-- Each client's next job, straight off the index; and who is running how much.
CREATE INDEX jobs_fair_queued ON jobs (queue, client_id, priority, queued_at, id) WHERE status = 'queued';
CREATE INDEX jobs_fair_running ON jobs (queue, client_id) WHERE status = 'processing';
