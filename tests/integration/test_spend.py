"""Charge what is spent (#24), on real services: engine CPU is billed whatever the job's outcome
(killed at its deadline, canceled while running, a run handed back by a draining worker), usage
tells a client how many of its jobs the deadline killed, and the daily quota of engine CPU
seconds refuses `/start` (429 + Retry-After, the job stays `created`) and fails a job that waited
in the queue while it ran out, before the engine runs. CPU is compared with what the engine
child's own counters show, never with wall-clock time."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from typing import Any

import psycopg
import pytest
from pixelflow_client import Client, QuotaExceeded

from devstack.imagegen import encode, photo
from infra.policy import quota_resets_in
from tests.integration.conftest import Stack, Tenant, WorkerProcess, wait_status
from tests.integration.test_cli_admin import cli, cli_json
from tests.integration.test_flow import create_and_upload
from tests.integration.test_lifecycle import QUICK, SLOW, TERMINAL, busy_engine, cpu_ticks, lane
from tests.integration.test_usage import usage

pytestmark = pytest.mark.integration

# AVIF at effort 9 of 1600x1200: over a minute of one core, so every run here ends by a kill.
BIG = encode(photo(1600, 1200, seed=24), ".jpg")
SMALL = encode(photo(160, 120, seed=25), ".jpg")


async def started(t: Tenant, body: dict[str, Any], data: bytes) -> str:
    job = await create_and_upload(t, body, data)
    r = await t.http.post(f"/v1/jobs/{job['id']}/start")
    assert r.status_code == 202, r.text
    return job["id"]


async def burn(engine: int, ticks: int) -> None:
    """Wait until the engine child ``engine`` has used ``ticks`` more CPU (1/100 s each)."""
    start = cpu_ticks(engine)
    end = time.monotonic() + 60
    while cpu_ticks(engine) - start < ticks:
        assert time.monotonic() < end, "the engine stopped using CPU"
        await asyncio.sleep(0.05)


def job_cpu(stack: Stack, job_id: str) -> float:
    """What the job's runs spent so far (jobs.engine_cpu_seconds)."""
    with psycopg.connect(stack.env["PIXELFLOW_DATABASE_URL"]) as c:
        row = c.execute("SELECT engine_cpu_seconds FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return float(row[0])


async def test_the_cpu_quota_is_spent_by_a_job_killed_at_its_deadline(stack: Stack) -> None:
    """A client allowed 1 engine CPU second a day: a job killed at its 12 s deadline spends it (and
    is in usage with its CPU); the job queued behind it fails before its engine runs; the next
    /start is 429 `daily_cpu_quota_exceeded` with Retry-After to midnight UTC and the job stays
    `created`. GET /v1/limits and the CLI show the quota, today's CPU and the deadline kill;
    clearing the override (the global quota of 1000 s applies again) lets it start."""
    # 12 s: a quarter of a core on a loaded machine still spends the 1 s quota before the kill
    async with lane(stack, "cpuquota", deadline_seconds="12", worker_concurrency="1", interactive_slots="0",
                    daily_engine_cpu_seconds="1000") as ln:  # fmt: skip
        t, other = await ln.tenant(), await ln.tenant()
        shown = cli_json(stack, "clients", "limits", t.name, "--daily-engine-cpu-seconds", "1")
        assert shown["daily_engine_cpu_seconds"] == 1 and "daily_engine_cpu_seconds" in shown["overridden"]
        limits = (await t.http.get("/v1/limits")).json()
        assert (limits["daily_engine_cpu_seconds"], limits["engine_cpu_seconds_today"]) == (1, 0.0)
        assert limits["deadline_exceeded_today"] == 0 and "daily_engine_cpu_seconds" in limits["overridden"]
        limits = (await other.http.get("/v1/limits")).json()
        assert limits["daily_engine_cpu_seconds"] == 1000 and "daily_engine_cpu_seconds" not in limits["overridden"]

        # one slot, no interactive one: `waiting` is queued (the quota is not spent yet) and runs after `slow`
        slow = await started(t, SLOW, BIG)
        waiting = await started(t, QUICK, SMALL)
        killed = await wait_status(t, slow, TERMINAL, timeout=60)
        assert (killed["status"], killed["error"]["code"]) == ("failed", "deadline_exceeded"), killed
        refused_in_queue = await wait_status(t, waiting, TERMINAL, timeout=30)
        assert (refused_in_queue["status"], refused_in_queue["error"]["code"]) == (
            "failed", "daily_cpu_quota_exceeded"), refused_in_queue  # fmt: skip
        assert "1 engine CPU seconds" in refused_in_queue["error"]["message"]
        assert refused_in_queue["variants"] == [] and job_cpu(stack, waiting) == 0.0  # its engine never ran

        (day,) = (await usage(t))["days"]
        assert (day["failed"], day["deadline_exceeded"]) == (2, 1)
        assert day["failed_by_code"] == {"daily_cpu_quota_exceeded": 1, "deadline_exceeded": 1}
        spent = day["engine_cpu_seconds"]
        assert spent >= 1, day  # 12 s of an encoder that keeps a core busy, or a quarter of one
        assert day["deadline_exceeded_cpu_seconds"] == spent  # all of it: the refused job spent nothing
        assert abs(job_cpu(stack, slow) - spent) < 0.001  # the job's sum is what usage billed

        refused_job = (await create_and_upload(t, QUICK, SMALL))["id"]
        before = quota_resets_in()
        r = await t.http.post(f"/v1/jobs/{refused_job}/start")
        assert r.status_code == 429 and r.json()["code"] == "daily_cpu_quota_exceeded", r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert before - 5 <= int(r.headers["Retry-After"]) <= before
        assert "1 engine CPU seconds" in r.json()["detail"]
        assert (await t.http.get(f"/v1/jobs/{refused_job}")).json()["status"] == "created"
        with Client(ln.api.url, t.key) as pf:  # the SDK raises it at once, as the megapixel quota
            with pytest.raises(QuotaExceeded) as err:
                pf.start(refused_job)
            assert err.value.code == "daily_cpu_quota_exceeded" and (err.value.retry_after or 0) > 0

        limits = (await t.http.get("/v1/limits")).json()
        assert (limits["engine_cpu_seconds_today"], limits["deadline_exceeded_today"]) == (spent, 1)
        shown = cli_json(stack, "clients", "limits", t.name)
        assert {k: v for k, v in shown.items() if k != "client"} == limits
        text = cli(stack, "clients", "limits", t.name)
        assert text.returncode == 0 and "deadline_exceeded_today" in text.stdout, text
        # the other client spent nothing
        assert (await other.http.get("/v1/limits")).json()["engine_cpu_seconds_today"] == 0.0

        # cleared: the global 1000 s applies, and the refused job starts
        cleared = cli_json(stack, "clients", "limits", t.name, "--daily-engine-cpu-seconds", "0")
        assert "daily_engine_cpu_seconds" not in cleared["overridden"]
        limits = (await t.http.get("/v1/limits")).json()  # the lane's API has the global quota; the CLI's env none
        assert limits["daily_engine_cpu_seconds"] == 1000 and "daily_engine_cpu_seconds" not in limits["overridden"]
        assert (await t.http.post(f"/v1/jobs/{refused_job}/start")).status_code == 202
        assert (await wait_status(t, refused_job, TERMINAL))["status"] == "succeeded"
        for t_ in (t, other):
            await t_.http.aclose()


async def test_handed_back_and_canceled_runs_are_billed(stack: Stack) -> None:
    """A run stopped by a draining worker is handed back with its CPU, which waits in the job
    (nothing billed while the job has not ended); the next run is canceled while its engine
    works; the canceled job is billed both runs."""
    # one engine child per worker: the busy one is this job's
    async with lane(
        stack,
        "spend-runs",
        deadline_seconds="60",
        worker_drain_seconds="0.2",
        worker_concurrency="1",
        interactive_slots="0",
    ) as ln:
        t = await ln.tenant()
        job = await started(t, SLOW, BIG)
        await wait_status(t, job, {"processing"}, timeout=30)
        first = ln.workers[0]
        engine = await busy_engine(first)
        await burn(engine, 100)  # at least 1 s of engine CPU in this run
        first.stop()  # SIGTERM: the drain waits 0.2 s, kills the engine and hands the job back
        queued = await wait_status(t, job, {"queued"} | TERMINAL, timeout=30)
        assert (queued["status"], queued["attempts"]) == ("queued", 1), queued
        handed_back = job_cpu(stack, job)
        assert handed_back >= 1.0, handed_back
        assert (await usage(t))["days"] == []  # billed when the job ends

        second = WorkerProcess(ln.env, stack.workdir / "spend-runs-2.log").start()
        ln.workers.append(second)
        await wait_status(t, job, {"processing"}, timeout=30)
        engine = await busy_engine(second, timeout=30)
        await burn(engine, 50)
        r = await t.http.post(f"/v1/jobs/{job}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "canceled"
        # the cancel bills what the job had; the worker adds its run's CPU once its engine is gone
        end = time.monotonic() + 20
        while True:
            total = (await usage(t))["total"]
            if total["engine_cpu_seconds"] >= handed_back + 0.5 or time.monotonic() > end:
                break
            await asyncio.sleep(0.2)
        assert (total["jobs"], total["canceled"], total["failed"]) == (1, 1, 0), total
        assert total["engine_cpu_seconds"] >= handed_back + 0.5, (total, handed_back)
        assert abs(job_cpu(stack, job) - total["engine_cpu_seconds"]) < 0.01
        await t.http.aclose()


async def test_crashed_out_of_memory_and_worker_lost_jobs_are_billed(stack: Stack) -> None:
    """The engine's other deaths are billed as the deadline is: a child killed by a signal
    (`engine_crashed`) and one over its memory cap (`out_of_memory`) with what they used; a job
    drained on every run until it ends `worker_lost` with the CPU of each run handed back."""
    import pyvips

    async with lane(stack, "spend-deaths", deadline_seconds="30", engine_memory_limit_mb="150",
                    engine_recycle_rss_mb="120", worker_concurrency="1", interactive_slots="0", worker_drain_seconds="0",
                    job_max_tries="2") as ln:  # fmt: skip
        t = await ln.tenant()
        crashed = await started(t, SLOW, BIG)
        await wait_status(t, crashed, {"processing"}, timeout=30)
        engine = await busy_engine(ln.workers[0])
        await burn(engine, 50)
        os.kill(engine, signal.SIGSEGV)
        retry = await busy_engine(ln.workers[0], besides=engine)  # a dead child's job runs once more
        await burn(retry, 50)
        os.kill(retry, signal.SIGSEGV)
        final = await wait_status(t, crashed, TERMINAL, timeout=20)
        assert (final["status"], final["error"]["code"]) == ("failed", "engine_crashed"), final
        assert job_cpu(stack, crashed) >= 0.5

        # 49 MP of flat colour in a few KB; rotating it needs ~150 MB for the source alone
        flat = pyvips.Image.black(7000, 7000, bands=3).copy(interpretation="srgb").pngsave_buffer(compression=9)
        rotate = {"version": 1, "pipeline": [{"id": "r", "steps": [{"op": "rotate", "angle": 33}], "format": "png"}]}
        oom = await started(t, rotate, flat)
        final = await wait_status(t, oom, TERMINAL, timeout=30)
        assert (final["status"], final["error"]["code"]) == ("failed", "out_of_memory"), final
        assert job_cpu(stack, oom) > 0

        drained = await started(t, SLOW, BIG)
        runs = 0.0
        for i in range(2):
            w = ln.workers[-1]
            await wait_status(t, drained, {"processing"}, timeout=30)
            engine = await busy_engine(w, timeout=30)
            await burn(engine, 50)
            assert w.proc is not None
            w.proc.send_signal(signal.SIGTERM)
            w.proc.wait(timeout=15)
            assert job_cpu(stack, drained) >= runs + 0.5  # the run's CPU went into the job at the hand-back
            runs = job_cpu(stack, drained)
            ln.workers.append(ln.worker(i + 1).start())
        final = await wait_status(t, drained, TERMINAL, timeout=60)
        assert (final["status"], final["error"]["code"]) == ("failed", "worker_lost"), final

        (day,) = (await usage(t))["days"]
        assert day["failed_by_code"] == {"engine_crashed": 1, "out_of_memory": 1, "worker_lost": 1}, day
        assert (day["deadline_exceeded"], day["deadline_exceeded_cpu_seconds"]) == (0, 0.0)
        billed = sum(job_cpu(stack, j) for j in (crashed, oom, drained))
        assert abs(day["engine_cpu_seconds"] - billed) < 0.01 and job_cpu(stack, drained) == runs, (day, billed)
        await t.http.aclose()


def test_the_migration_gives_earlier_failures_their_code(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """0014 copies the error code of jobs that failed before it into their usage rows, so the
    report's failures by code cover them; what they spent stays as 0008 counted it."""
    import infra.db as db
    from devstack.backing_services import PostgresServer

    every = db._migrations()
    pg = PostgresServer(stack.workdir / "pg-0014")
    pg.start()
    try:
        monkeypatch.setattr(db, "_migrations", lambda: [m for m in every if m[0] < "0014"])
        db.migrate(pg.url)
        client, killed, ok = (str(uuid.uuid4()) for _ in range(3))
        with psycopg.connect(pg.url, autocommit=True) as c:
            c.execute("INSERT INTO clients (id, name) VALUES (%s, 'before')", (client,))
            for job, status, code in ((killed, "failed", "deadline_exceeded"), (ok, "succeeded", None)):
                c.execute(
                    "INSERT INTO jobs (id, client_id, status, spec, spec_sha256, source_key, error_code,"
                    " finished_at) VALUES (%s, %s, %s, '{}', '', 'k', %s, now())",
                    (job, client, status, code),
                )
                c.execute("INSERT INTO job_usage (job_id, client_id, day, outcome, engine_cpu_seconds)"
                          " VALUES (%s, %s, current_date, %s, 2.5)", (job, client, status))  # fmt: skip
        monkeypatch.setattr(db, "_migrations", lambda: every)
        assert db.migrate(pg.url) == [m[0] for m in every if m[0] >= "0014"]
        with psycopg.connect(pg.url) as c:
            rows = c.execute(
                "SELECT outcome, error_code, engine_cpu_seconds FROM job_usage ORDER BY outcome"
            ).fetchall()
            assert rows == [("failed", "deadline_exceeded", 2.5), ("succeeded", None, 2.5)]
            assert c.execute("SELECT DISTINCT engine_cpu_seconds FROM jobs").fetchall() == [(0.0,)]
    finally:
        pg.stop()
