"""Prometheus metrics shared by the API and the worker. Defining them registers them in the
default registry (no I/O); each process exposes its own ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ENGINE_MEMORY",
    "ENGINE_RESTARTS",
    "JOBS_CREATED",
    "JOBS_FINISHED",
    "JOBS_STARTED",
    "JOB_DURATION",
    "OUTPUT_BYTES",
    "QUEUE_DEPTH",
    "QUEUE_WAIT",
    "RATE_LIMITED",
    "RETENTION_DELETED",
    "URL_RENDER_SECONDS",
    "URL_REQUESTS",
    "VARIANTS",
    "WEBHOOK_DELIVERIES",
]

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

JOBS_CREATED = Counter("pixelflow_jobs_created", "Jobs created through the API")
JOBS_STARTED = Counter("pixelflow_jobs_started", "Jobs queued by /start")
JOBS_FINISHED = Counter("pixelflow_jobs_finished", "Jobs finished by workers", ["status", "reason"])
# status: the job's status after the run (succeeded, failed, canceled; queued when handed back;
# skipped when the message could not claim the job), so slow failures and fast successes separate.
JOB_DURATION = Histogram(
    "pixelflow_job_duration_seconds", "Worker time per job run, by outcome", ["status"], buckets=_SECONDS
)
QUEUE_WAIT = Histogram("pixelflow_queue_wait_seconds", "From queued to picked up by a worker", buckets=_SECONDS)
# Gauges say how values from several processes combine in prometheus_client's multiprocess mode
# (control_plane/api/metrics.py): every worker measures the same queue, so the latest reading wins;
# engine memory is per process, and a dead process's slots must drop out.
QUEUE_DEPTH = Gauge(
    "pixelflow_queue_depth",
    "Entries in a queue (waiting, deferred and running)",
    ["queue"],
    multiprocess_mode="mostrecent",
)
VARIANTS = Counter("pixelflow_variants", "Variants written", ["format"])
OUTPUT_BYTES = Counter("pixelflow_output_bytes", "Bytes of variants written", ["format"])
WEBHOOK_DELIVERIES = Counter("pixelflow_webhook_attempts", "Webhook HTTP attempts by outcome", ["outcome"])
# `client` is the client's id (a UUID the operator's `clients create` made), never its name: one
# series per client that has been rate-limited, so cardinality is bounded by the client count.
RATE_LIMITED = Counter(
    "pixelflow_rate_limited", "Job creations refused by the rate limit (per client, or a key's own)", ["client"]
)
# One series per engine slot (bounded by PIXELFLOW_WORKER_CONCURRENCY).
ENGINE_MEMORY = Gauge(
    "pixelflow_engine_rss_bytes", "Resident memory of each engine child process", ["slot"], multiprocess_mode="liveall"
)
ENGINE_RESTARTS = Counter(
    "pixelflow_engine_restarts", "Engine children replaced, by why", ["reason"]
)  # reason: deadline, memory, canceled, crashed, recycled
# what: original or outputs; one count per job whose objects the retention sweeper deleted.
RETENTION_DELETED = Counter(
    "pixelflow_retention_deleted", "Jobs whose original or variants the retention sweeper deleted", ["what"]
)
# Signed image URLs (docs/delivery.md). result: hit (served from the derived cache), miss (this
# request started the render), coalesced (it waited for a render another request started), error.
URL_REQUESTS = Counter("pixelflow_url_requests", "Signed image URL requests by result", ["result"])
URL_RENDER_SECONDS = Histogram(
    "pixelflow_url_render_seconds", "From a cache miss to its rendered image, as the request waited", buckets=_SECONDS
)
