from __future__ import annotations

import builtins  # `list` inside the repository classes is their list() method
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from infra.lifecycle import ACTIVE, CANCELABLE, TERMINAL, JobStatus, Priority, sql_set
from infra.objects import source_key
from infra.repo._sql import execute, fetch_all, fetch_one
from infra.repo.usage import pixels_today, record_job, spent_today

__all__ = [
    "Claim",
    "CreatedJob",
    "Ended",
    "Ending",
    "ExpiredObjects",
    "Job",
    "JobPage",
    "JobRepo",
    "NewDelivery",
    "Start",
    "Started",
    "VariantRecord",
]

_ACTIVE, _TERMINAL, _CANCELABLE = sql_set(ACTIVE), sql_set(TERMINAL), sql_set(CANCELABLE)
# The shortest retention in force anywhere: no job that ended later can be due, so the sweep reads
# only the older end of the jobs_retention_due index (and nothing at all when no retention is set).
_SHORTEST = (
    "(SELECT min(d) FROM (VALUES (%(originals)s::integer), (%(outputs)s::integer),"
    " ((SELECT min(retain_originals_days) FROM client_policies)),"
    " ((SELECT min(retain_outputs_days) FROM client_policies))) AS r(d))"
)
# Still stored and past its retention: the client's days, else the global ones (NULL days: never).
_DUE = (
    "j.{deleted} IS NULL AND j.finished_at + make_interval(days => coalesce(p.{days}, %({param})s::integer)) <= now()"
)


class VariantRecord(msgspec.Struct, frozen=True):
    variant_id: str
    format: str
    content_type: str
    width: int
    height: int
    bytes: int
    object_key: str
    quality: int | None = None  # a lossy encoder's quality (with `max_bytes`: the one chosen)
    frames: int = 1  # an animation's frames; 1 for a still image


# The variants table's columns are the struct's fields: read, written and upserted by this one list.
_VARIANT_COLUMNS = tuple(f.name for f in msgspec.structs.fields(VariantRecord))
_VARIANT_UPSERT = (
    f"INSERT INTO variants (job_id, {', '.join(_VARIANT_COLUMNS)}) VALUES (%s{', %s' * len(_VARIANT_COLUMNS)})"
    " ON CONFLICT (job_id, variant_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _VARIANT_COLUMNS if c != "variant_id")
)


class Job(msgspec.Struct, frozen=True):
    id: uuid.UUID
    client_id: uuid.UUID
    status: JobStatus
    spec: dict[str, Any]
    spec_sha256: bytes
    idempotency_key: str | None
    source_key: str
    source_bytes: int | None
    source_format: str | None
    source_width: int | None
    source_height: int | None
    attempts: int
    error_code: str | None
    error_message: str | None
    trace_context: dict[str, str] | None
    dispatch: uuid.UUID | None
    lease_expires_at: datetime | None
    queue: str | None
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    template_name: str | None = None  # the template (and version) its spec was resolved from
    template_version: int | None = None
    deleted_at: datetime | None = None  # a tombstone: see erase(); the API no longer shows it
    variants: tuple[VariantRecord, ...] = ()
    source_info: dict[str, Any] | None = None  # pipeline.details.SourceDetails, when the spec asks
    original_deleted_at: datetime | None = None  # removed by the retention sweeper (the job stays)
    outputs_deleted_at: datetime | None = None
    priority: int = Priority.NORMAL.rank  # infra.lifecycle.Priority's rank
    not_before: datetime | None = None  # handed back with a backoff: not claimable before this
    origin: str = "api"  # `url`: rendered for a signed image URL (not listed, no webhook)
    render_key: str | None = None  # a URL render's one variant goes here (infra/objects.py: derived/)


class CreatedJob(msgspec.Struct, frozen=True):
    """What ``create`` stored: the job, and whether this call made it (``new``) or found the one
    an earlier request made with the same idempotency key."""

    job: Job
    new: bool


class Start(StrEnum):
    """How a ``start`` ended."""

    QUEUED = "queued"
    BUSY = "busy"  # the client has its maximum of jobs queued or processing
    OVER_QUOTA = "over_quota"  # its daily source-pixel quota is spent
    OVER_CPU_QUOTA = "over_cpu_quota"  # its daily engine CPU quota is spent
    NOT_CREATED = "not_created"  # the job is no longer `created`: another request started or canceled it


class Started(msgspec.Struct, frozen=True):
    """What ``start`` did (``kind``). Queued: ``job`` as queued, and ``alone``: its client had no
    other job queued or running, so it may run in an interactive slot (``claim_next``) and is worth
    a ticket there."""

    kind: Start
    job: Job | None = None
    alone: bool = False


class Ending(StrEnum):
    """How ``succeed``, ``fail`` or ``cancel`` ended."""

    RECORDED = "recorded"  # the job ended as asked
    TOO_LATE = "too_late"  # it had ended already, or another run holds it now: nothing written
    OVER_QUOTA = "over_quota"  # (succeed) its source would pass the daily pixel quota: nothing written


class Ended(msgspec.Struct, frozen=True):
    """What ``succeed``, ``fail`` or ``cancel`` did (``kind``), and the webhook delivery recorded
    with the ending, for the caller to queue (None: the job has no webhook, or nothing ended)."""

    kind: Ending
    delivery: uuid.UUID | None = None


_TOO_LATE = Ended(Ending.TOO_LATE)


class Claim(msgspec.Struct, frozen=True):
    """A job a worker took, and what its client was charged for it up front (``settle`` trues it
    up to what the run really spent)."""

    job: Job
    queue: str
    charge: float  # cost units (~CPU-ms) added to the client's service, before weighting
    weight: int


# What a run of a client with no history is charged up front: about one CPU-second.
_FIRST_CHARGE = 1000.0
# How much of a client's provisional charge the latest run sets (the rest is its history).
_RECENT = 0.3


class ExpiredObjects(msgspec.Struct, frozen=True):
    """A finished job whose original and/or variants are past their retention (``JobRepo.expired``)."""

    job_id: uuid.UUID
    client_id: uuid.UUID
    original: bool  # the original is due
    outputs: bool  # the variants are due
    output_keys: tuple[str, ...]  # the recorded keys of its variants


class JobPage(msgspec.Struct, frozen=True):
    jobs: list[Job]
    next_cursor: tuple[datetime, uuid.UUID] | None


class NewDelivery(msgspec.Struct, frozen=True):
    event: str
    url: str
    payload: dict[str, Any]


_JOB = msgspec.structs.fields(Job)
_COLUMNS = ", ".join(f.name for f in _JOB if f.name != "variants")


def _job(row: dict[str, Any], variants: list[dict[str, Any]] | None = None) -> Job:
    return Job(**row, variants=tuple(VariantRecord(**v) for v in variants or ()))


# The fair pick (claim_next): each client's next claimable job straight off jobs_fair_queued, and
# the client whose weighted service is least. A client with nothing running restarts at the clock
# if it is behind it (it was idle: no banked credit); one with runs in progress keeps its own
# service, which a settle may have lowered below the clock (flooring it there would take more
# from the clients with the smallest steps, the heaviest weights: 45 % instead of 50 % measured).
_PICK = f"""
WITH clock AS (SELECT coalesce(max(vtime), 0) AS v FROM fair_clocks WHERE queue = %(queue)s),
running AS (
    SELECT client_id, count(*) AS n FROM jobs WHERE status = 'processing' AND queue = %(queue)s GROUP BY client_id
),
heads AS (
    SELECT DISTINCT ON (client_id) id, client_id, priority, queued_at FROM jobs
    WHERE status = 'queued' AND queue = %(queue)s AND (not_before IS NULL OR not_before <= now())
    ORDER BY client_id, priority, queued_at, id
)
SELECT h.id, h.client_id,
       CASE WHEN coalesce(r.n, 0) = 0 THEN greatest(coalesce(s.vtime, 0), c.v) ELSE s.vtime END AS vt,
       coalesce(p.scheduling_weight, %(weight)s) AS weight,
       coalesce(s.mean_cost, 0) AS mean_cost, coalesce(s.runs, 0) AS runs
FROM heads h CROSS JOIN clock c
LEFT JOIN running r ON r.client_id = h.client_id
LEFT JOIN client_policies p ON p.client_id = h.client_id
LEFT JOIN fair_shares s ON s.queue = %(queue)s AND s.client_id = h.client_id
WHERE coalesce(r.n, 0) < coalesce(p.max_running_jobs_per_client, %(max_running)s)
  AND (NOT %(interactive)s OR h.priority = {Priority.INTERACTIVE.rank}
       OR (coalesce(r.n, 0) = 0 AND coalesce(s.mean_cost, 0) <= %(max_cost)s))
ORDER BY h.priority = {Priority.INTERACTIVE.rank} DESC, vt, h.queued_at, h.id
LIMIT 1
"""


class JobRepo:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create(
        self,
        *,
        client_id: uuid.UUID,
        spec: bytes,
        spec_sha256: bytes,
        idempotency_key: str | None,
        trace_context: dict[str, str] | None = None,
        template: tuple[str, int] | None = None,
        render: tuple[str | None, str] | None = None,
    ) -> CreatedJob:
        """Insert a job; with an idempotency key already used by this client, return that job instead.
        ``render``: a signed URL's render, reading the stored original at its first key (None: the
        job's own, where a fetched URL source goes) and writing its one variant to the second
        (origin ``url``)."""
        job_id = uuid.uuid4()
        source, render_key = render or (None, None)
        source = source or source_key(client_id, job_id)
        async with self.pool.connection() as conn:
            row = await fetch_one(
                conn,
                f"INSERT INTO jobs (id, client_id, status, spec, spec_sha256, idempotency_key, source_key, trace_context,"
                f" template_name, template_version, origin, render_key)"
                f" VALUES (%s, %s, 'created', %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s)"
                f" ON CONFLICT (client_id, idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
                (
                    job_id,
                    client_id,
                    spec.decode(),
                    spec_sha256,
                    idempotency_key,
                    source,
                    Jsonb(trace_context),
                    *(template or (None, None)),
                    "api" if render is None else "url",
                    render_key,
                ),
            )
            if row is not None:
                return CreatedJob(_job(row), new=True)
            row = await fetch_one(
                conn,
                f"SELECT {_COLUMNS} FROM jobs WHERE client_id = %s AND idempotency_key = %s",
                (client_id, idempotency_key),
            )
        assert row is not None
        return CreatedJob(_job(row), new=False)

    async def release_key(self, job_id: uuid.UUID) -> None:
        """Free a finished job's idempotency key, so the next create with it makes a new job (a URL
        render whose result is gone, or whose failure is old enough to try again)."""
        await execute(
            self.pool,
            f"UPDATE jobs SET idempotency_key = NULL WHERE id = %s AND status IN {_TERMINAL}",
            (job_id,),
        )

    async def get(self, job_id: uuid.UUID, client_id: uuid.UUID | None = None) -> Job | None:
        async with self.pool.connection() as conn:
            return await self._get(conn, job_id, client_id)

    async def _get(self, conn: AsyncConnection, job_id: uuid.UUID, client_id: uuid.UUID | None = None) -> Job | None:
        row = await fetch_one(
            conn,
            f"SELECT {_COLUMNS} FROM jobs WHERE id = %(id)s AND (%(client)s::uuid IS NULL OR client_id = %(client)s)"
            " AND deleted_at IS NULL",
            {"id": job_id, "client": client_id},
        )
        if row is None:
            return None
        variants = await fetch_all(
            conn,
            f"SELECT {', '.join(_VARIANT_COLUMNS)} FROM variants WHERE job_id = %s ORDER BY created_at, variant_id",
            (job_id,),
        )
        return _job(row, variants)

    async def list(
        self,
        client_id: uuid.UUID,
        *,
        status: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        after: tuple[datetime, uuid.UUID] | None = None,
        limit: int = 50,
    ) -> JobPage:
        """Newest first; keyset pagination on (created_at, id) so pages stay stable under inserts."""
        params: dict[str, Any] = {
            "client": client_id,
            "status": status,
            "after_ts": after[0] if after else None,
            "after_id": after[1] if after else None,
            "created_after": created_after,
            "created_before": created_before,
            "limit": limit + 1,
        }
        rows = await fetch_all(
            self.pool,
            f"SELECT {_COLUMNS} FROM jobs WHERE client_id = %(client)s AND deleted_at IS NULL AND origin = 'api'"
            " AND (%(status)s::text IS NULL OR status = %(status)s)"
            " AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s)"
            " AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s)"
            " AND (%(after_ts)s::timestamptz IS NULL OR (created_at, id) < (%(after_ts)s, %(after_id)s::uuid))"
            " ORDER BY created_at DESC, id DESC LIMIT %(limit)s",
            params,
        )
        rows, more = rows[:limit], len(rows) > limit
        # Each listed job shows its variants, as the job itself does: one query for the page.
        variants: dict[uuid.UUID, list[dict[str, Any]]] = {r["id"]: [] for r in rows}
        for v in await fetch_all(
            self.pool,
            f"SELECT job_id, {', '.join(_VARIANT_COLUMNS)} FROM variants WHERE job_id = ANY(%s)"
            " ORDER BY created_at, variant_id",
            (list(variants),),
        ):
            variants[v.pop("job_id")].append(v)
        jobs = [_job(r, variants[r["id"]]) for r in rows]
        return JobPage(jobs, (jobs[-1].created_at, jobs[-1].id) if more and jobs else None)

    async def start(
        self,
        job_id: uuid.UUID,
        client_id: uuid.UUID,
        *,
        max_active: int,
        source_bytes: int | None,
        source_format: str | None,
        queue: str,
        priority: Priority = Priority.NORMAL,
        interactive_allowance: int = 0,
        daily_pixels: int | None = None,
        daily_cpu_seconds: int | None = None,
    ) -> Started:
        """``created`` -> ``queued`` under a new dispatch token, committed before this returns:
        the caller sends the queue message only then (``infra.queue.dispatch_job``), so no worker
        can take a message whose job it cannot yet see. If that send fails, the job is ``queued``
        without a message and the sweeper sends it.

        Runs under a lock on the client row so concurrent starts cannot exceed ``max_active``, nor
        ``interactive_allowance`` (the client's interactive jobs active at once: past it, an
        interactive job is queued as a normal one).
        ``OVER_QUOTA`` when ``daily_pixels`` (the client's daily source-pixel quota) is spent today,
        ``OVER_CPU_QUOTA`` when ``daily_cpu_seconds`` (its daily engine CPU quota) is;
        ``NOT_CREATED`` when the job is not in ``created`` (the caller reports its current state).
        """
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM clients WHERE id = %s FOR UPDATE", (client_id,))
            active = await fetch_one(
                conn, f"SELECT count(*) AS n FROM jobs WHERE client_id = %s AND status IN {_ACTIVE}", (client_id,)
            )
            assert active is not None
            if active["n"] >= max_active:
                return Started(Start.BUSY)
            if daily_pixels is not None or daily_cpu_seconds is not None:
                spent = await spent_today(conn, client_id)  # both quotas, one read
                if daily_pixels is not None and spent.source_pixels >= daily_pixels:
                    return Started(Start.OVER_QUOTA)
                if daily_cpu_seconds is not None and spent.cpu_seconds >= daily_cpu_seconds:
                    return Started(Start.OVER_CPU_QUOTA)
            if priority == Priority.INTERACTIVE:
                urgent = await fetch_one(
                    conn,
                    f"SELECT count(*) AS n FROM jobs WHERE client_id = %s AND status IN {_ACTIVE} AND priority = %s",
                    (client_id, Priority.INTERACTIVE.rank),
                )
                assert urgent is not None
                if urgent["n"] >= interactive_allowance:
                    priority = Priority.NORMAL
            row = await fetch_one(
                conn,
                f"UPDATE jobs SET status = 'queued', queued_at = now(), updated_at = now(), source_bytes = %s,"
                f" source_format = %s, dispatch = %s, queue = %s, priority = %s WHERE id = %s AND client_id = %s"
                f" AND status = 'created' RETURNING {_COLUMNS}",
                (source_bytes, source_format, uuid.uuid4(), queue, priority.rank, job_id, client_id),
            )
            if row is None:
                return Started(Start.NOT_CREATED)
        return Started(Start.QUEUED, _job(row), alone=active["n"] == 0)

    async def record_source(self, job_id: uuid.UUID, source_bytes: int, source_format: str) -> None:
        """Size and format of an original the worker fetched (an upload's are recorded by start())."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE jobs SET source_bytes = %s, source_format = %s, updated_at = now() WHERE id = %s",
                (source_bytes, source_format, job_id),
            )

    async def fail(
        self,
        job_id: uuid.UUID,
        code: str,
        message: str,
        delivery: NewDelivery | None = None,
        *,
        dispatch: uuid.UUID | None = None,
        cpu_seconds: float = 0.0,
    ) -> Ended:
        """Mark a non-terminal job failed (``TOO_LATE``: it was already terminal), with its webhook
        delivery when it has one. With
        ``dispatch``, only while that run still holds the job (a worker's view). ``cpu_seconds``:
        the engine time of the run that failed it, for usage."""
        async with self.pool.connection() as conn, conn.transaction():
            changed = await execute(
                conn,
                f"UPDATE jobs SET status = 'failed', error_code = %s, error_message = %s, finished_at = now(),"
                f" updated_at = now(), lease_expires_at = NULL WHERE id = %s AND status NOT IN {_TERMINAL}"
                f" AND (%s::uuid IS NULL OR (dispatch = %s AND status = 'processing'))",
                (code, message, job_id, dispatch, dispatch),
            )
            if changed != 1:
                return _TOO_LATE
            await record_job(conn, job_id, JobStatus.FAILED, cpu_seconds=cpu_seconds)
            return await _announce(conn, job_id, delivery)

    async def cancel(self, job_id: uuid.UUID, client_id: uuid.UUID, delivery: NewDelivery | None = None) -> Ended:
        """Cancel a job that has not finished (``TOO_LATE``: it had); its delivery as ``fail``'s."""
        async with self.pool.connection() as conn, conn.transaction():
            changed = await execute(
                conn,
                f"UPDATE jobs SET status = 'canceled', finished_at = now(), updated_at = now(),"
                f" lease_expires_at = NULL WHERE id = %s AND client_id = %s AND status IN {_CANCELABLE}",
                (job_id, client_id),
            )
            if changed != 1:
                return _TOO_LATE
            await record_job(conn, job_id, JobStatus.CANCELED)
            return await _announce(conn, job_id, delivery)

    async def erase(self, job_id: uuid.UUID, client_id: uuid.UUID) -> bool:
        """Turn a finished job into a tombstone: its spec (metadata, webhook URL), idempotency key,
        error message, trace context, the described source (camera, perhaps where the photo was
        taken) and webhook deliveries (whose payloads echo the metadata) go;
        id, client, status, timestamps, template and the variants' sizes stay. False unless the
        job is this client's, finished and not yet erased. The caller deletes the objects first."""
        async with self.pool.connection() as conn, conn.transaction():
            changed = await execute(
                conn,
                f"UPDATE jobs SET spec = '{{}}'::jsonb, spec_sha256 = ''::bytea, idempotency_key = NULL,"
                f" error_message = NULL, trace_context = NULL, source_info = NULL, deleted_at = now(), updated_at = now()"
                f" WHERE id = %s AND client_id = %s AND status IN {_TERMINAL} AND deleted_at IS NULL",
                (job_id, client_id),
            )
            if changed != 1:
                return False
            await conn.execute("DELETE FROM webhook_deliveries WHERE job_id = %s", (job_id,))
            return True

    @asynccontextmanager
    async def expired(
        self, queue: str, *, originals_days: int | None, outputs_days: int | None
    ) -> AsyncIterator[ExpiredObjects | None]:
        """The oldest finished job of ``queue`` (or never queued) holding an original or variants
        past its client's retention (its policy's days, else the given global ones; None: kept),
        locked for the caller, who deletes the objects inside the ``async with``; on a clean exit
        they are recorded deleted. ``SKIP LOCKED``: several workers sweep different jobs; an error
        (a store outage) records nothing, so the job comes back next time. Jobs still running never
        qualify. Per queue, as the lease sweeper: each deployment applies its own global retention
        to its own jobs."""
        originals = _DUE.format(deleted="original_deleted_at", days="retain_originals_days", param="originals")
        outputs = _DUE.format(deleted="outputs_deleted_at", days="retain_outputs_days", param="outputs")
        async with self.pool.connection() as conn, conn.transaction():
            row = await fetch_one(
                conn,
                f"SELECT j.id, j.client_id, coalesce(({originals}), false) AS original,"
                f" coalesce(({outputs}), false) AS outputs"
                f" FROM jobs j LEFT JOIN client_policies p ON p.client_id = j.client_id"
                f" WHERE j.status IN {_TERMINAL} AND j.deleted_at IS NULL AND j.finished_at IS NOT NULL"
                f" AND (j.queue = %(queue)s OR j.queue IS NULL)"
                f" AND (({originals}) OR ({outputs})) AND j.finished_at <= now() - make_interval(days => {_SHORTEST})"
                f" ORDER BY j.finished_at LIMIT 1 FOR UPDATE OF j SKIP LOCKED",
                {"originals": originals_days, "outputs": outputs_days, "queue": queue},
            )
            if row is None:
                yield None
                return
            keys = await fetch_all(conn, "SELECT object_key FROM variants WHERE job_id = %s", (row["id"],))
            yield ExpiredObjects(
                row["id"], row["client_id"], row["original"], row["outputs"], tuple(k["object_key"] for k in keys)
            )
            await conn.execute(
                "UPDATE jobs SET original_deleted_at = CASE WHEN %s THEN now() ELSE original_deleted_at END,"
                " outputs_deleted_at = CASE WHEN %s THEN now() ELSE outputs_deleted_at END WHERE id = %s",
                (row["original"], row["outputs"], row["id"]),
            )

    async def claim_next(
        self,
        queue: str,
        *,
        lease_seconds: float,
        interactive: bool = False,
        weight: int = 1,
        max_running: int = 1_000_000,
        interactive_max_cost: float = 0.0,
    ) -> Claim | None:
        """Take the next job of ``queue`` for one run, fairly between clients: the client with the
        least weighted service so far (its ``vtime``, never below the queue's clock), its most
        urgent job, then its oldest; interactive jobs before all others. Clients at their running
        cap are passed over. An ``interactive`` slot takes only interactive jobs and jobs of clients
        with nothing running whose recent runs averaged at most ``interactive_max_cost``. The
        client is charged its recent runs' mean cost up front (``settle`` corrects it), so its next
        job waits behind the others' at once. ``weight`` and ``max_running``: the global values
        (a client's policy overrides them). None when nothing is claimable."""
        for _ in range(8):  # another worker may take the job we picked first
            async with self.pool.connection() as conn, conn.transaction():
                pick = await fetch_one(conn, _PICK, {
                    "queue": queue, "weight": weight, "max_running": max_running,
                    "interactive": interactive, "max_cost": interactive_max_cost,
                })  # fmt: skip
                if pick is None:
                    return None
                row = await fetch_one(
                    conn,
                    f"UPDATE jobs SET status = 'processing', attempts = attempts + 1, not_before = NULL,"
                    f" started_at = coalesce(started_at, now()), updated_at = now(),"
                    f" lease_expires_at = now() + make_interval(secs => %s)"
                    f" WHERE id = %s AND status = 'queued' RETURNING {_COLUMNS}",
                    (lease_seconds, pick["id"]),
                )
                if row is None:
                    continue
                charge = pick["mean_cost"] if pick["runs"] else _FIRST_CHARGE
                await conn.execute(
                    "INSERT INTO fair_shares AS s (queue, client_id, vtime) VALUES (%(queue)s, %(client)s, %(vt)s + %(add)s)"
                    " ON CONFLICT (queue, client_id) DO UPDATE SET vtime = greatest(s.vtime, %(vt)s) + %(add)s",
                    {"queue": queue, "client": pick["client_id"], "vt": pick["vt"], "add": charge / pick["weight"]},
                )
                await conn.execute(
                    "INSERT INTO fair_clocks AS c (queue, vtime) VALUES (%s, %s)"
                    " ON CONFLICT (queue) DO UPDATE SET vtime = greatest(c.vtime, excluded.vtime)",
                    (queue, pick["vt"]),
                )
                return Claim(_job(row), queue, charge, pick["weight"])
        return None

    async def settle(self, claim: Claim, spent: float) -> None:
        """True up a claim's charge to what its run spent (engine CPU-ms; 0 when the engine never
        ran), and fold it into the client's recent mean, the next run's charge."""
        await execute(
            self.pool,
            "UPDATE fair_shares SET vtime = vtime + (%(spent)s - %(charge)s) / %(weight)s, runs = runs + 1,"
            " mean_cost = CASE WHEN runs = 0 THEN %(spent)s ELSE (1 - %(recent)s) * mean_cost + %(recent)s * %(spent)s END"
            " WHERE queue = %(queue)s AND client_id = %(client)s",
            {
                "spent": spent, "charge": claim.charge, "weight": claim.weight, "recent": _RECENT,
                "queue": claim.queue, "client": claim.job.client_id,
            },
        )  # fmt: skip

    async def renew(self, job_id: uuid.UUID, dispatch: uuid.UUID, *, lease_seconds: float) -> bool:
        """Extend the lease; False once the run no longer holds the job (canceled, or handed to another run)."""
        changed = await execute(
            self.pool,
            "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %s)"
            " WHERE id = %s AND dispatch = %s AND status = 'processing'",
            (lease_seconds, job_id, dispatch),
        )
        return changed == 1

    async def hand_back(
        self,
        job_id: uuid.UUID,
        dispatch: uuid.UUID | None,
        *,
        defer: float | None = None,
        demote: bool = False,
        cpu_seconds: float = 0.0,
    ) -> Job | None:
        """``processing`` -> ``queued`` under a new dispatch, for another run; only while the run
        ``dispatch`` still holds it (None: whichever run did, for a lapsed lease seen with none).
        The run that was handed back still counts against ``job_max_tries``, and the engine CPU
        it spent (``cpu_seconds``) is added to the job's, billed when the job ends. ``defer``:
        seconds before it may be claimed again; ``demote``: an interactive job comes back as a
        normal one. It keeps its place in its client's line (``queued_at``)."""
        row = await fetch_one(
            self.pool,
            f"UPDATE jobs SET status = 'queued', dispatch = %s, lease_expires_at = NULL, updated_at = now(),"
            f" engine_cpu_seconds = engine_cpu_seconds + %s,"
            f" not_before = CASE WHEN %s::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => %s::float8) END,"
            f" priority = CASE WHEN %s THEN greatest(priority, {Priority.NORMAL.rank}) ELSE priority END"
            f" WHERE id = %s AND status = 'processing' AND (%s::uuid IS NULL OR dispatch = %s) RETURNING {_COLUMNS}",
            (uuid.uuid4(), max(0.0, cpu_seconds), defer, defer, demote, job_id, dispatch, dispatch),
        )
        return _job(row) if row else None

    async def lapsed(self, queue: str, *, grace_seconds: float = 0, limit: int = 100) -> builtins.list[Job]:
        """Processing jobs of ``queue`` whose lease ran out: their worker died or lost the database.
        Per queue, so worker pools on different queues never take each other's jobs."""
        rows = await fetch_all(
            self.pool,
            f"SELECT {_COLUMNS} FROM jobs WHERE status = 'processing' AND (queue = %s OR queue IS NULL)"
            " AND coalesce(lease_expires_at, updated_at) < now() - make_interval(secs => %s)"
            " ORDER BY lease_expires_at LIMIT %s",
            (queue, grace_seconds, limit),
        )
        return [_job(r) for r in rows]

    async def stalled(self, queue: str, *, older_than_seconds: float, limit: int = 100) -> builtins.list[Job]:
        """Queued jobs of ``queue`` untouched for a while: their queue entry may have been lost
        (Redis restarted)."""
        rows = await fetch_all(
            self.pool,
            f"SELECT {_COLUMNS} FROM jobs WHERE status = 'queued' AND (queue = %s OR queue IS NULL)"
            " AND updated_at < now() - make_interval(secs => %s) ORDER BY updated_at LIMIT %s",
            (queue, older_than_seconds, limit),
        )
        return [_job(r) for r in rows]

    async def succeed(
        self,
        job_id: uuid.UUID,
        dispatch: uuid.UUID,
        variants: builtins.list[VariantRecord],
        *,
        source: tuple[str, int, int],
        delivery: NewDelivery | None,
        source_info: dict[str, Any] | None = None,
        cpu_seconds: float = 0.0,
        daily_pixels: int | None = None,
    ) -> Ended:
        """Record variants and mark succeeded in one transaction, only while this run holds the
        job, and count its usage. ``TOO_LATE`` if it was canceled or handed on meanwhile (nothing
        is written; the caller charges the run's CPU, ``UsageRepo.charge_run``); ``OVER_QUOTA``
        (nothing written) if its source would take the client past ``daily_pixels`` today."""
        pixels = source[1] * source[2]
        async with self.pool.connection() as conn, conn.transaction():
            if daily_pixels is not None:
                # Under the client row's lock (as /start takes it), so two jobs finishing at once
                # cannot both fit in what is left of the quota.
                row = await fetch_one(
                    conn,
                    "SELECT c.id FROM jobs j JOIN clients c ON c.id = j.client_id WHERE j.id = %s FOR UPDATE OF c",
                    (job_id,),
                )
                if row is not None and await pixels_today(conn, row["id"]) + pixels > daily_pixels:
                    return Ended(Ending.OVER_QUOTA)
            changed = await execute(
                conn,
                "UPDATE jobs SET status = 'succeeded', finished_at = now(), updated_at = now(), error_code = NULL,"
                " error_message = NULL, lease_expires_at = NULL, source_format = %s, source_width = %s,"
                " source_height = %s, source_info = %s WHERE id = %s AND dispatch = %s AND status = 'processing'",
                (*source, Jsonb(source_info) if source_info is not None else None, job_id, dispatch),
            )
            if changed != 1:
                return _TOO_LATE
            async with conn.cursor() as c:
                await c.executemany(_VARIANT_UPSERT, [(job_id, *msgspec.structs.astuple(v)) for v in variants])
            outputs = [(v.format, v.bytes) for v in variants]
            await record_job(
                conn, job_id, JobStatus.SUCCEEDED, source_pixels=pixels, cpu_seconds=cpu_seconds, outputs=outputs
            )
            return await _announce(conn, job_id, delivery)


async def _announce(conn: AsyncConnection, job_id: uuid.UUID, d: NewDelivery | None) -> Ended:
    """Record the webhook delivery of a job's terminal transition (none without a webhook)."""
    if d is None:
        return Ended(Ending.RECORDED)
    delivery_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO webhook_deliveries (id, message_id, job_id, event, url, payload, status, next_attempt_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'pending', now())",
        (delivery_id, delivery_id, job_id, d.event, d.url, Jsonb(d.payload)),
    )
    return Ended(Ending.RECORDED, delivery_id)
