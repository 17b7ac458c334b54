"""Usage metering: what each client used, per UTC day. The one home for usage facts: the API's
``GET /v1/usage``, the dashboard, ``pixelflow clients usage`` and the daily quotas (source
megapixels, engine CPU seconds) all read these tables.

Each job is counted once, by the transaction that ends it (``JobRepo.succeed``/``fail``/
``cancel`` call ``record_job``), on the UTC day it ended; each webhook HTTP attempt once, by the
transaction that logs it (``DeliveryRepo.record_attempt`` calls ``count_attempt``), on the UTC
day it was made. Rows have no foreign key to jobs or deliveries: deleting a job keeps its usage.

Engine CPU is charged whatever the job's outcome, for every run: each run adds what it spent to
the job's ``engine_cpu_seconds`` when it ends (``charge_run``, or the hand-back or terminal
transition itself), and ``record_job`` bills the job's sum on the day it ended. A run that ends
after its job did (canceled while the engine ran) adds to that day's row. Only a run whose worker
died outright (SIGKILL, a lost host) goes unmeasured: its engine died with it.

A signed image URL's render is a job like any other (origin ``url``), counted the same way and
also apart (``url_renders``). What the derived cache served is counted by the API process in
memory and added here in batches (``add_served``, one UPSERT per client and day; see
control_plane/delivery/served.py): a crashed API process loses at most one flush interval of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from infra.lifecycle import TERMINAL, JobStatus
from infra.repo._sql import Db, execute, fetch_all, fetch_one
from pipeline.errors import DeadlineExceeded

__all__ = [
    "DEFAULT_DAYS",
    "MAX_REPORT_DAYS",
    "RangeError",
    "SpentToday",
    "UsageDay",
    "UsageRepo",
    "UsageReport",
    "UsageTotals",
    "add_served",
    "build_report",
    "charge_run",
    "count_attempt",
    "pixels_today",
    "record_job",
    "report_range",
    "spent_today",
]

_DEADLINE = DeadlineExceeded.code  # the failure a client is told about: engine time spent for nothing
MAX_REPORT_DAYS = 366  # a leap year: one report covers any calendar year
DEFAULT_DAYS = 30
_TODAY = "(now() AT TIME ZONE 'UTC')::date"


class UsageTotals(msgspec.Struct, frozen=True, kw_only=True):
    """What a client used over a range of days, or one day."""

    jobs: int  # jobs that ended: succeeded + failed + canceled
    succeeded: int
    failed: int
    canceled: int
    failed_by_code: dict[str, int]  # the failed jobs per error code
    deadline_exceeded: int  # failed jobs killed at their deadline (also in failed_by_code)
    deadline_exceeded_cpu_seconds: float  # the engine CPU those jobs spent (also in engine_cpu_seconds)
    source_megapixels: float  # width x height of each succeeded job's source, / 1e6
    output_bytes: dict[str, int]  # bytes written per output format
    output_bytes_total: int
    engine_cpu_seconds: float  # engine CPU of every run of the jobs, whatever their outcome
    webhook_attempts: int  # HTTP attempts, retries and redeliveries included
    webhooks_delivered: int  # attempts answered 2xx
    # signed image URLs (docs/delivery.md)
    url_renders: int  # renders that ended, whatever their outcome (also in jobs)
    url_render_cpu_seconds: float  # their engine CPU (also in engine_cpu_seconds)
    url_render_source_megapixels: float  # the sources of those that succeeded (also in source_megapixels)
    url_cache_hits: int  # requests answered from the derived cache, 304s included
    url_bytes_served: int  # image bytes sent: hits and renders (a 304 sends none)


class UsageDay(UsageTotals, frozen=True, kw_only=True):
    """What a client used on one UTC day: jobs that ended that day, webhook attempts made that day."""

    day: date  # UTC


class UsageReport(msgspec.Struct, frozen=True, kw_only=True):
    """A client's usage from ``from`` to ``to`` (UTC days, both included)."""

    start: date = msgspec.field(name="from")
    end: date = msgspec.field(name="to")
    total: UsageTotals
    days: list[UsageDay]  # oldest first; days without any usage are left out


async def record_job(
    conn: Db,
    job_id: uuid.UUID,
    outcome: JobStatus,
    *,
    source_pixels: int = 0,
    cpu_seconds: float = 0.0,
    outputs: Iterable[tuple[str, int]] = (),
) -> None:
    """Count a job that just ended, inside the transaction that ended it (its day is that
    transaction's UTC date, as ``finished_at``; a failed job's code is the one that transaction
    set). ``cpu_seconds``: the engine time of the run that ended it, billed with what the job's
    earlier runs spent. ``outputs``: (format, bytes) per variant."""
    assert outcome in TERMINAL, outcome
    by_format: dict[str, int] = {}
    for fmt, size in outputs:
        by_format[fmt] = by_format.get(fmt, 0) + size
    await execute(
        conn,
        "WITH j AS (UPDATE jobs SET engine_cpu_seconds = engine_cpu_seconds + %s WHERE id = %s"
        " RETURNING id, client_id, engine_cpu_seconds, error_code, origin)"
        " INSERT INTO job_usage (job_id, client_id, day, outcome, source_pixels, engine_cpu_seconds, output_bytes,"
        f" error_code, origin) SELECT id, client_id, {_TODAY}, %s, %s, engine_cpu_seconds, %s,"
        " CASE WHEN %s = 'failed' THEN error_code END, origin FROM j ON CONFLICT (job_id) DO NOTHING",
        (max(0.0, cpu_seconds), job_id, outcome, source_pixels, Jsonb(by_format), outcome),
    )


async def charge_run(conn: AsyncConnection, job_id: uuid.UUID, cpu_seconds: float) -> None:
    """Charge the engine CPU of a run that did not end its job (``conn`` not in a transaction):
    canceled while it ran, handed on after its lease lapsed, or handed back by an outage. The job
    row's lock orders this against the transition that ends the job: before it, the CPU waits in
    the job's sum for ``record_job``; after it, it is added to the row that transition wrote."""
    if cpu_seconds <= 0:
        return
    async with conn.transaction():
        row = await fetch_one(conn, "SELECT status FROM jobs WHERE id = %s FOR UPDATE", (job_id,))
        if row is None:
            return
        await execute(
            conn, "UPDATE jobs SET engine_cpu_seconds = engine_cpu_seconds + %s WHERE id = %s", (cpu_seconds, job_id)
        )
        if JobStatus(row["status"]) in TERMINAL:
            await execute(
                conn,
                "UPDATE job_usage SET engine_cpu_seconds = engine_cpu_seconds + %s WHERE job_id = %s",
                (cpu_seconds, job_id),
            )


async def count_attempt(conn: Db, delivery_id: uuid.UUID, *, delivered: bool) -> None:
    """Count one webhook HTTP attempt, inside the transaction that logs it."""
    await execute(
        conn,
        f"INSERT INTO webhook_usage (client_id, day, attempts, delivered)"
        f" SELECT j.client_id, {_TODAY}, 1, %s FROM webhook_deliveries d JOIN jobs j ON j.id = d.job_id"
        f" WHERE d.id = %s ON CONFLICT (client_id, day) DO UPDATE SET attempts = webhook_usage.attempts + 1,"
        f" delivered = webhook_usage.delivered + excluded.delivered",
        (int(delivered), delivery_id),
    )


async def add_served(conn: Db, counts: dict[tuple[uuid.UUID, date], tuple[int, int]]) -> None:
    """Add what an API process's derived cache served, {(client, UTC day): (hits, bytes)}: one
    UPSERT per client and day, all in one statement. A client deleted meanwhile is skipped."""
    if not counts:
        return
    clients, days, hits, sent = zip(*((c, d, h, b) for (c, d), (h, b) in counts.items()), strict=True)
    await execute(
        conn,
        "INSERT INTO url_usage (client_id, day, cache_hits, bytes_served)"
        " SELECT n.c, n.d, n.h, n.b FROM unnest(%s::uuid[], %s::date[], %s::bigint[], %s::bigint[]) AS n(c, d, h, b)"
        " WHERE n.c IN (SELECT id FROM clients) ON CONFLICT (client_id, day) DO UPDATE SET"
        " cache_hits = url_usage.cache_hits + excluded.cache_hits,"
        " bytes_served = url_usage.bytes_served + excluded.bytes_served",
        (list(clients), list(days), list(hits), list(sent)),
    )


async def pixels_today(conn: Db, client_id: uuid.UUID) -> int:
    """Source pixels the client's jobs used today (UTC): what its daily quota has spent."""
    row = await fetch_one(
        conn,
        f"SELECT coalesce(sum(source_pixels), 0)::bigint AS n FROM job_usage WHERE client_id = %s AND day = {_TODAY}",
        (client_id,),
    )
    assert row is not None
    return int(row["n"])


class SpentToday(msgspec.Struct, frozen=True, kw_only=True):
    """What a client's jobs that ended today (UTC) used of its daily quotas, as usage counts them."""

    source_pixels: int
    cpu_seconds: float
    deadline_exceeded: int  # failed jobs killed at their deadline


async def spent_today(conn: Db, client_id: uuid.UUID) -> SpentToday:
    row = await fetch_one(
        conn,
        "SELECT coalesce(sum(source_pixels), 0)::bigint AS pixels, coalesce(sum(engine_cpu_seconds), 0) AS cpu,"
        f" count(*) FILTER (WHERE error_code = '{_DEADLINE}') AS deadline"
        f" FROM job_usage WHERE client_id = %s AND day = {_TODAY}",
        (client_id,),
    )
    assert row is not None
    return SpentToday(
        source_pixels=int(row["pixels"]), cpu_seconds=float(row["cpu"]), deadline_exceeded=row["deadline"]
    )


class RangeError(ValueError):
    """A report's ``from`` or ``to`` is not usable: ``field`` says which, ``message`` why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def report_range(start: str | None, end: str | None, *, today: date | None = None) -> tuple[date, date]:
    """The days a report covers, both included: ``to`` defaults to today (UTC), ``from`` to the
    29 days before it; at most ``MAX_REPORT_DAYS``. Raises ``RangeError``."""
    last = _day("to", end) if end is not None else (today or datetime.now(UTC).date())
    first = _day("from", start) if start is not None else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise RangeError("from", f"must not be after `to` ({last.isoformat()})")
    if (last - first).days + 1 > MAX_REPORT_DAYS:
        raise RangeError("from", f"a report covers at most {MAX_REPORT_DAYS} days; `to` is {last.isoformat()}")
    return first, last


def _day(name: str, value: str) -> date:
    # Parsed here, not by Litestar, so a bad value is a 400 naming its field like every other.
    try:
        return msgspec.convert(value, date)
    except msgspec.ValidationError:
        raise RangeError(name, f"expected a day as YYYY-MM-DD, got {value!r}") from None


class UsageRepo:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def spent_today(self, client_id: uuid.UUID) -> SpentToday:
        return await spent_today(self.pool, client_id)

    async def charge_run(self, job_id: uuid.UUID, cpu_seconds: float) -> None:
        """``charge_run`` on a connection of its own."""
        if cpu_seconds > 0:
            async with self.pool.connection() as conn:
                await charge_run(conn, job_id, cpu_seconds)

    async def report(self, client_id: uuid.UUID, start: date, end: date) -> UsageReport:
        """The client's usage from ``start`` to ``end`` (UTC days, both included)."""
        params = {"client": client_id, "start": start, "end": end}
        async with self.pool.connection() as conn, conn.transaction():  # one snapshot for all three
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            jobs = await fetch_all(
                conn,
                "SELECT day, count(*) AS jobs, count(*) FILTER (WHERE outcome = 'succeeded') AS succeeded,"
                " count(*) FILTER (WHERE outcome = 'failed') AS failed,"
                " count(*) FILTER (WHERE outcome = 'canceled') AS canceled,"
                " sum(source_pixels)::bigint AS source_pixels, sum(engine_cpu_seconds) AS engine_cpu_seconds,"
                " count(*) FILTER (WHERE origin = 'url') AS url_renders,"
                " sum(source_pixels) FILTER (WHERE origin = 'url')::bigint AS url_source_pixels,"
                " sum(engine_cpu_seconds) FILTER (WHERE origin = 'url') AS url_cpu_seconds"
                " FROM job_usage WHERE client_id = %(client)s AND day BETWEEN %(start)s AND %(end)s GROUP BY day",
                params,
            )
            failures = await fetch_all(
                conn,
                "SELECT day, coalesce(error_code, 'unknown') AS code, count(*) AS jobs,"
                " sum(engine_cpu_seconds) AS engine_cpu_seconds FROM job_usage"
                " WHERE client_id = %(client)s AND day BETWEEN %(start)s AND %(end)s AND outcome = 'failed'"
                " GROUP BY 1, 2",
                params,
            )
            outputs = await fetch_all(
                conn,
                "SELECT u.day, b.key AS format, sum(b.value::bigint)::bigint AS bytes"
                " FROM job_usage u, jsonb_each_text(u.output_bytes) b"
                " WHERE u.client_id = %(client)s AND u.day BETWEEN %(start)s AND %(end)s GROUP BY 1, 2",
                params,
            )
            hooks = await fetch_all(
                conn,
                "SELECT day, attempts, delivered FROM webhook_usage"
                " WHERE client_id = %(client)s AND day BETWEEN %(start)s AND %(end)s",
                params,
            )
            served = await fetch_all(
                conn,
                "SELECT day, cache_hits, bytes_served FROM url_usage"
                " WHERE client_id = %(client)s AND day BETWEEN %(start)s AND %(end)s",
                params,
            )
        return build_report(start, end, jobs, outputs, hooks, failures, served)


def build_report(
    start: date,
    end: date,
    jobs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    hooks: list[dict[str, Any]],
    failures: Iterable[dict[str, Any]] = (),
    served: Iterable[dict[str, Any]] = (),
) -> UsageReport:
    """Fold the per-day rows of jobs, output bytes, webhook attempts, failures by code and what
    the derived cache served into days and a total."""
    days: dict[date, _Tally] = {}
    for r in jobs:
        t = days.setdefault(r["day"], _Tally())
        t.jobs, t.succeeded, t.failed, t.canceled = r["jobs"], r["succeeded"], r["failed"], r["canceled"]
        t.pixels, t.cpu = int(r["source_pixels"] or 0), float(r["engine_cpu_seconds"] or 0)
        t.renders = r.get("url_renders") or 0
        t.render_pixels, t.render_cpu = int(r.get("url_source_pixels") or 0), float(r.get("url_cpu_seconds") or 0)
    for r in failures:
        t = days.setdefault(r["day"], _Tally())
        t.codes[r["code"]] = t.codes.get(r["code"], 0) + int(r["jobs"])
        if r["code"] == _DEADLINE:
            t.deadline += int(r["jobs"])
            t.deadline_cpu += float(r["engine_cpu_seconds"] or 0)
    for r in outputs:
        days.setdefault(r["day"], _Tally()).bytes[r["format"]] = int(r["bytes"])
    for r in hooks:
        t = days.setdefault(r["day"], _Tally())
        t.attempts, t.delivered = r["attempts"], r["delivered"]
    for r in served:
        t = days.setdefault(r["day"], _Tally())
        t.hits, t.served = int(r["cache_hits"]), int(r["bytes_served"])
    total = _Tally()
    for t in days.values():
        total.add(t)
    return UsageReport(
        start=start,
        end=end,
        total=total.totals(),
        days=[UsageDay(day=d, **msgspec.structs.asdict(days[d].totals())) for d in sorted(days)],
    )


@dataclass
class _Tally:
    jobs: int = 0
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0
    pixels: int = 0
    cpu: float = 0.0
    bytes: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    delivered: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    deadline: int = 0
    deadline_cpu: float = 0.0
    renders: int = 0
    render_pixels: int = 0
    render_cpu: float = 0.0
    hits: int = 0
    served: int = 0

    def add(self, other: _Tally) -> None:
        for name in (
            "jobs", "succeeded", "failed", "canceled", "pixels", "cpu", "attempts", "delivered", "deadline",
            "deadline_cpu", "renders", "render_pixels", "render_cpu", "hits", "served",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for fmt, n in other.bytes.items():
            self.bytes[fmt] = self.bytes.get(fmt, 0) + n
        for code, n in other.codes.items():
            self.codes[code] = self.codes.get(code, 0) + n

    def totals(self) -> UsageTotals:
        return UsageTotals(
            jobs=self.jobs,
            succeeded=self.succeeded,
            failed=self.failed,
            canceled=self.canceled,
            failed_by_code=dict(sorted(self.codes.items())),
            deadline_exceeded=self.deadline,
            deadline_exceeded_cpu_seconds=round(self.deadline_cpu, 3),
            source_megapixels=round(self.pixels / 1e6, 6),  # six places: exact to the pixel
            output_bytes=dict(sorted(self.bytes.items())),
            output_bytes_total=sum(self.bytes.values()),
            engine_cpu_seconds=round(self.cpu, 3),
            webhook_attempts=self.attempts,
            webhooks_delivered=self.delivered,
            url_renders=self.renders,
            url_render_cpu_seconds=round(self.render_cpu, 3),
            url_render_source_megapixels=round(self.render_pixels / 1e6, 6),
            url_cache_hits=self.hits,
            url_bytes_served=self.served,
        )
