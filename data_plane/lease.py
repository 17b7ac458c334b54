"""A running job's lease. The worker renews it every third of its length while the run lasts;
a run that finds the job no longer its own (canceled, or handed to another run after the lease
lapsed) stops the engine at once. The sweeper re-queues jobs whose lease lapsed (their worker
died), so no job stays ``processing`` longer than ``lease_seconds + sweep_interval_seconds``
after its worker is gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from types import TracebackType

from infra.outages import TRANSIENT
from infra.repo import JobRepo

__all__ = ["Lease"]

log = logging.getLogger("pixelflow.worker")


class Lease:
    def __init__(
        self, jobs: JobRepo, job_id: uuid.UUID, dispatch: uuid.UUID, seconds: float, *, on_lost: Callable[[], object]
    ) -> None:
        self._jobs, self._job_id, self._dispatch, self._seconds = jobs, job_id, dispatch, seconds
        self._on_lost = on_lost
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Lease:
        self._task = asyncio.create_task(self._renew())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._seconds / 3)
            try:
                held = await self._jobs.renew(self._job_id, self._dispatch, lease_seconds=self._seconds)
            except TRANSIENT as exc:
                # Keep working: if the database stays away past the lease, the sweeper re-queues
                # the job and this run's writes are refused (they are conditional on the dispatch).
                log.warning("lease renewal failed", extra={"job_id": str(self._job_id), "error": type(exc).__name__})
                continue
            if not held:
                log.info("job no longer held by this run; stopping it", extra={"job_id": str(self._job_id)})
                self._on_lost()
                return
