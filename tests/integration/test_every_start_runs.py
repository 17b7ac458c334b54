"""Every started job runs: `/start` hands a job to the queue only once its `queued` row is
committed, and no record a worker leaves in Redis can block a later hand-off of the same job.

Before this held, an idle worker took the message within milliseconds, before `/start`'s
transaction committed; its claim matched no row, arq kept that "skipped" run's result under the
job's message id for an hour, and the sweeper's re-sends were refused meanwhile: about one start
in 150-500 stayed `queued` for an hour, and every start did with 300 ms of commit latency.

These tests run their own API and workers on a queue of their own with the default poll delay
and the longest sweep interval (60 s), so a job that only the sweeper could rescue fails the
bounded wait instead of passing late. The number of starts is TEST_STARTS (default
500: 300 plain, 200 with injected commit latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest

from devstack.imagegen import encode, photo
from devstack.receiver import WebhookReceiver
from tests.integration.conftest import Stack, Tenant, wait_status
from tests.integration.test_faults import isolated, retrying
from tests.integration.test_webhooks import deliveries

pytestmark = pytest.mark.integration

STARTS = int(os.environ.get("TEST_STARTS", "500"))
SPEC = {"version": 1, "pipeline": [{"id": "t", "action": "resize", "width": 16, "format": "png"}]}
# A pickup takes milliseconds on an idle pool; this bound only separates "picked up" from
# "stranded until the sweeper's first tick" (120 s with a 60 s interval), whatever the load.
PICKUP_BOUND = 45.0
IDLE_POOL = {
    "worker_poll_delay": "0.05",  # the production default
    "sweep_interval_seconds": "60",
    "rate_limit_per_minute": "100000",
    "rate_limit_burst": "10000",
}


@pytest.fixture(scope="module")
def tiny() -> bytes:
    return encode(photo(32, 24, seed=5), ".png")


async def upload(t: Tenant, body: dict, data: bytes) -> str:
    job = (await retrying(lambda: t.http.post("/v1/jobs", json=body))).json()
    async with httpx.AsyncClient() as plain:
        r = await retrying(lambda: plain.put(job["upload"]["put"]["url"], content=data))
    assert r.status_code == 200, r.text
    return job["id"]


async def start_and_finish(t: Tenant, data: bytes) -> dict:
    job_id = await upload(t, SPEC, data)
    r = await t.http.post(f"/v1/jobs/{job_id}/start")
    assert r.status_code == 202, r.text
    return await wait_status(t, job_id, {"succeeded", "failed", "canceled"}, timeout=PICKUP_BOUND)


@contextlib.asynccontextmanager
async def commit_latency(stack: Stack, t: Tenant, ms: int) -> AsyncIterator[None]:
    """Every commit that makes one of this tenant's jobs `queued` waits ``ms`` first: a deferred
    trigger runs inside COMMIT, before the row becomes visible to other sessions."""
    url = stack.env["PIXELFLOW_DATABASE_URL"]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS test_commit_latency (client_id uuid PRIMARY KEY, ms int)")
        await conn.execute(
            "CREATE OR REPLACE FUNCTION test_slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN PERFORM pg_sleep(ms / 1000.0) FROM test_commit_latency WHERE client_id = NEW.client_id;"
            " RETURN NULL; END $$"
        )
        await conn.execute("DROP TRIGGER IF EXISTS test_slow_commit ON jobs")
        await conn.execute(
            "CREATE CONSTRAINT TRIGGER test_slow_commit AFTER UPDATE ON jobs DEFERRABLE INITIALLY DEFERRED"
            " FOR EACH ROW WHEN (OLD.status = 'created' AND NEW.status = 'queued') EXECUTE FUNCTION test_slow_commit()"
        )
        await conn.execute("INSERT INTO test_commit_latency VALUES (%s, %s)", (t.client_id, ms))
        try:
            yield
        finally:
            await conn.execute("DELETE FROM test_commit_latency WHERE client_id = %s", (t.client_id,))


def ended_once(job: dict) -> None:
    assert job["status"] == "succeeded", job.get("error")
    assert job["attempts"] == 1, job


async def test_idle_pool_runs_every_start(stack: Stack, tiny: bytes) -> None:
    plain = STARTS - STARTS * 2 // 5
    async with isolated(stack, "idle", **IDLE_POOL) as (t, _workers):
        for i in range(plain):
            job = await start_and_finish(t, tiny)
            ended_once(job)
            if i % 50 == 49:
                await asyncio.sleep(0.3)  # let both workers sit idle in their poll sleep again
        print(f"\n[idle pool] {plain} starts one at a time: {plain} succeeded, 0 stranded")


async def test_idle_pool_runs_every_start_with_slow_commits(stack: Stack, tiny: bytes) -> None:
    slow = STARTS * 2 // 5
    async with isolated(stack, "slowcommit", **IDLE_POOL) as (t, _workers):
        async with commit_latency(stack, t, 300):
            for _ in range(slow // 4):
                ended_once(await start_and_finish(t, tiny))
        async with commit_latency(stack, t, 60):  # about one poll delay: the racy middle
            for _ in range(slow - slow // 4):
                ended_once(await start_and_finish(t, tiny))
        print(f"\n[idle pool, commit latency 300/60 ms] {slow} starts: {slow} succeeded, 0 stranded")


async def test_redis_restart_between_start_and_pickup(stack: Stack, tiny: bytes) -> None:
    """The message is lost with Redis (no persistence) after `/start` answered: the sweeper sends
    it again, within three sweep intervals, whatever Redis holds."""
    rounds = 6
    async with isolated(stack, "lostmsg", sweep_interval_seconds="1", worker_poll_delay="0.05") as (t, workers):
        pids = [w.proc.pid for w in workers if w.proc is not None]
        for _ in range(rounds):
            job_id = await upload(t, SPEC, tiny)
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)  # no pickup until Redis has lost the message
            try:
                r = await t.http.post(f"/v1/jobs/{job_id}/start")
                assert r.status_code == 202, r.text
                stack.redis.restart()
            finally:
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
            ended_once(await wait_status(t, job_id, {"succeeded", "failed", "canceled"}, timeout=PICKUP_BOUND))
        print(f"\n[redis restart between start and pickup] {rounds} of {rounds} jobs ran")


async def test_busy_pool_takes_jobs_in_start_order(stack: Stack, tiny: bytes) -> None:
    """Two workers of one slot each, 12 jobs started at once: every job is picked up by its first
    message, in the order of its start."""
    data = encode(photo(1600, 1200, seed=8), ".jpg")
    body = {"version": 1, "pipeline": [{"id": "w", "action": "resize", "width": 1200, "format": "webp"}]}
    async with isolated(stack, "busy", worker_concurrency="1", **IDLE_POOL) as (t, _workers):
        ids = [await upload(t, body, data) for _ in range(12)]
        for job_id in ids:  # one at a time, so the order of starts is known
            assert (await t.http.post(f"/v1/jobs/{job_id}/start")).status_code == 202
        jobs = [await wait_status(t, i, {"succeeded", "failed", "canceled"}, timeout=120) for i in ids]
        for job in jobs:
            ended_once(job)
        # arq takes the oldest message first; two slots may swap neighbours, nothing more
        picked = sorted(range(len(jobs)), key=lambda i: jobs[i]["started_at"])
        assert all(abs(rank - i) <= 1 for rank, i in enumerate(picked)), picked


async def test_concurrent_starts_never_fail(stack: Stack, tiny: bytes) -> None:
    """Two `/start` calls at once on one job, 200 times: 202 for at least one, 202 or 409 for
    the other, never a 500 (the second used to find the upload already moved)."""
    overrides = {"rate_limit_per_minute": "100000", "rate_limit_burst": "10000"}
    async with isolated(stack, "concurrent", **overrides) as (t, _workers):
        seen: dict[int, int] = {}
        for _ in range(200):
            job_id = await upload(t, SPEC, tiny)
            both = await asyncio.gather(*(t.http.post(f"/v1/jobs/{job_id}/start") for _ in range(2)))
            codes = sorted(r.status_code for r in both)
            for code in codes:
                seen[code] = seen.get(code, 0) + 1
            assert 202 in codes and set(codes) <= {202, 409}, [(r.status_code, r.text) for r in both]
            ended_once(await wait_status(t, job_id, {"succeeded", "failed", "canceled"}, timeout=PICKUP_BOUND))
        print(f"\n[concurrent starts] 400 calls: {seen}")


async def test_retry_after_ends_the_quick_round(stack: Stack, tiny: bytes) -> None:
    """A receiver answering 503 + Retry-After: 5 gets no second request before 5 s (the quick
    retries used to knock three times in about a second)."""
    with WebhookReceiver() as receiver:
        path = "/busy"
        receiver.respond(path, (503, {"Retry-After": "5"}))
        async with isolated(stack, "retryafter", webhook_backoff_max_seconds="30") as (t, _workers):
            job_id = await upload(t, {**SPEC, "webhook_url": receiver.url(path)}, tiny)
            assert (await t.http.post(f"/v1/jobs/{job_id}/start")).status_code == 202
            got = receiver.wait(path, 2, timeout=60)
            gap = got[1].at - got[0].at
            assert gap >= 5.0, f"a second request came {gap:.2f} s after Retry-After: 5"
            (delivery,) = await deliveries(t, job_id, {"delivered"})  # recorded just after the answer
            assert [a["response_status"] for a in delivery["history"]] == [503, 200]


async def test_upload_refused_at_start_sends_job_failed(stack: Stack) -> None:
    """A job `/start` ends (its upload is not an image) gets its `job.failed` webhook like any
    other failed job."""
    with WebhookReceiver() as receiver:
        async with isolated(stack, "refused") as (t, _workers):
            job_id = await upload(t, {**SPEC, "webhook_url": receiver.url("/refused")}, b"%PDF-1.7 not an image" * 20)
            r = await t.http.post(f"/v1/jobs/{job_id}/start")
            assert r.status_code == 415, r.text
            (got,) = receiver.wait("/refused", 1, timeout=60)
            event = json.loads(got.body)
            assert event["type"] == "job.failed"
            assert event["data"]["job_id"] == job_id
            assert event["data"]["error"]["code"] == "unsupported_format"
            assert (await t.http.get(f"/v1/jobs/{job_id}")).json()["status"] == "failed"
