"""Finding the job a request names: only among the caller's client's own jobs, so a job of
another client is as unknown as one that never existed."""

from __future__ import annotations

import uuid

from control_plane.auth.principal import Principal
from control_plane.deps import ApiDeps
from control_plane.problems import NotFound
from infra.repo import Job

__all__ = ["owned_job"]


async def owned_job(deps: ApiDeps, principal: Principal, job_id: uuid.UUID) -> Job:
    """The client's job; 404 for any other."""
    job = await deps.jobs.get(job_id, principal.client.id)
    if job is None:
        raise NotFound("no such job")
    return job
