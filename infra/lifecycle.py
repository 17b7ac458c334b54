"""The job lifecycle: its states, the named sets every query and route uses, the transitions
allowed between them, and the reasons a worker ends a job with.

```
created --start--> queued --claim--> processing --> succeeded | failed
   |                 ^                   |
   |                 +---- hand back ----+   (transient error, drain, lapsed lease)
   +--------- cancel / fail (any non-terminal state) ---------> canceled | failed
```
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ACTIVE",
    "CANCELABLE",
    "TERMINAL",
    "JobStatus",
    "Priority",
    "Reason",
    "sql_set",
]


class JobStatus(StrEnum):
    CREATED = "created"
    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class Priority(StrEnum):
    """A job's urgency (the spec's `priority`). Stored as its rank, so the queue index orders it:
    interactive jobs may use the interactive slots; within a client, lower ranks go first."""

    INTERACTIVE = "interactive"
    NORMAL = "normal"
    BATCH = "batch"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @classmethod
    def of_rank(cls, rank: int) -> Priority:
        return _BY_RANK[rank]


_RANKS = {Priority.INTERACTIVE: 0, Priority.NORMAL: 1, Priority.BATCH: 2}
_BY_RANK = {rank: p for p, rank in _RANKS.items()}


# Counted against a client's concurrent-job cap; a worker may be (about to be) running them.
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.PROCESSING})
TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})
CANCELABLE = frozenset({JobStatus.CREATED, JobStatus.QUEUED, JobStatus.PROCESSING})


class Reason(StrEnum):
    """Failure codes the service adds to the engine's own (``pipeline.errors``)."""

    SOURCE_MISSING = "source_missing"
    SOURCE_TOO_LARGE = "source_too_large"
    # a URL source (data_plane/sources.py)
    SOURCE_BLOCKED = "source_blocked"  # the URL, a redirect or its DNS answer is a non-public address
    SOURCE_TIMEOUT = "source_timeout"  # the origin did not send the whole body in time
    SOURCE_UNREACHABLE = "source_unreachable"  # no connection, an error status, or too many redirects
    INFRASTRUCTURE_ERROR = "infrastructure_error"  # storage or database stayed down through every try
    WORKER_LOST = "worker_lost"  # the worker stopped renewing its lease, `job_max_tries` times
    DAILY_QUOTA_EXCEEDED = "daily_quota_exceeded"  # the client's source megapixels for today (UTC) are spent
    DAILY_CPU_QUOTA_EXCEEDED = "daily_cpu_quota_exceeded"  # the client's engine CPU seconds for today are spent


def sql_set(states: frozenset[JobStatus]) -> str:
    """``('a', 'b')`` for an SQL ``IN``: statuses are constants of this module, never input."""
    return "(" + ", ".join(f"'{s.value}'" for s in sorted(states)) + ")"
