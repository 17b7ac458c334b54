"""Fault injection on real services, bounded in time: Redis restarted (its queue lost), PostgreSQL
restarted, S3 frozen, webhook receiver down. Every job must end succeeded, none lost, none
processed into two different results, each webhook event delivered. Figures are printed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from devstack.backing_services import free_port
from devstack.imagegen import encode, photo
from devstack.receiver import WebhookReceiver
from tests.integration.conftest import ApiServer, Stack, Tenant, WorkerProcess, make_tenant, wait_status
from tests.integration.test_webhooks import deliveries

pytestmark = pytest.mark.integration

SPEC = {
    "version": 1,
    "pipeline": [
        {"id": "a", "steps": [{"op": "resize", "width": 300, "fit": "inside"}], "format": "webp"},
        {"id": "b", "action": "resize", "width": 100, "height": 100, "format": "jpeg"},
    ],
}
JOBS = 6


@contextlib.asynccontextmanager
async def isolated(stack: Stack, name: str, **overrides: str) -> AsyncIterator[tuple[Tenant, list[WorkerProcess]]]:
    """An API and two workers on a queue of their own, so faults touch only this test's jobs."""
    queue = f"pixelflow:fault-{name}-{uuid.uuid4().hex[:6]}"
    settings = {"queue_name": queue, **overrides}
    env = {**stack.env, **{f"PIXELFLOW_{k.upper()}": v for k, v in settings.items()}}
    api = ApiServer(stack.settings(**settings), free_port()).start()
    workers = [WorkerProcess(env, stack.workdir / f"fault-{name}-{i}.log").start() for i in range(2)]
    try:
        yield await make_tenant(stack, api), workers
    except BaseException:
        for w in workers:  # what the workers saw, for whoever reads the failure
            print(f"--- {w.log.name} (last 40 lines)")
            print("\n".join(w.log.read_text(errors="replace").splitlines()[-40:]))
        raise
    finally:
        for w in workers:
            w.stop()
        api.stop()


async def retrying(call: Callable, attempts: int = 60) -> httpx.Response:
    """Clients retry while a dependency is down (the API answers 503 + Retry-After then, never hangs)."""
    for _ in range(attempts):
        try:
            r = await call()
            if r.status_code < 500:
                return r
            assert r.status_code == 503 and r.headers.get("retry-after"), (r.status_code, r.text)
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.5)
    raise AssertionError("the API did not recover")


async def submit(t: Tenant, webhook: str | None, data: bytes) -> str:
    body = {**SPEC, **({"webhook_url": webhook} if webhook else {})}
    job = (await retrying(lambda: t.http.post("/v1/jobs", json=body))).json()
    async with httpx.AsyncClient() as plain:
        await retrying(lambda: plain.put(job["upload"]["put"]["url"], content=data))
    r = await retrying(lambda: t.http.post(f"/v1/jobs/{job['id']}/start"))
    assert r.status_code == 202, r.text
    return job["id"]


async def settle(t: Tenant, ids: list[str], fault: str, timeout: float = 120) -> None:
    finals = [await wait_status(t, i, {"succeeded", "failed", "canceled"}, timeout=timeout) for i in ids]
    done = sum(f["status"] == "succeeded" for f in finals)
    print(f"\n[{fault}] jobs submitted={len(ids)} succeeded={done} failed={len(ids) - done} lost=0")
    assert [f["status"] for f in finals] == ["succeeded"] * len(ids), [f.get("error") for f in finals]
    for f in finals:  # exactly the spec's variants, one result each
        assert sorted(v["id"] for v in f["variants"]) == ["a", "b"]
        assert {(v["id"], v["width"], v["height"]) for v in f["variants"]} == {("a", 300, 225), ("b", 100, 100)}


@pytest.fixture(scope="module")
def source() -> bytes:
    return encode(photo(800, 600, seed=21), ".jpg")


async def test_redis_restart_loses_the_queue_but_no_job(stack: Stack, source: bytes) -> None:
    async with isolated(stack, "redis") as (t, workers):
        # running workers ride out a Redis restart
        stack.redis.restart()
        await asyncio.sleep(2)
        assert all(w.proc is not None and w.proc.poll() is None for w in workers), "a worker died with Redis"
        ids = [await submit(t, None, source) for _ in range(JOBS // 2)]
        await settle(t, ids, "redis restart under running workers", timeout=60)
        # queue jobs while no worker can run them, then lose Redis' memory
        for w in workers:
            w.stop()
        ids = [await submit(t, None, source) for _ in range(JOBS)]
        stack.redis.restart()  # no persistence: every queue entry is gone
        for w in workers:
            w.start()
        await settle(t, ids, "redis restart, queue wiped", timeout=90)  # the sweeper re-queues them
        await t.http.aclose()


async def test_postgres_restart_mid_run(stack: Stack, source: bytes) -> None:
    async with isolated(stack, "pg") as (t, _workers):
        ids = [await submit(t, None, source) for _ in range(JOBS // 2)]
        stack.postgres.restart()
        ids += [await submit(t, None, source) for _ in range(JOBS // 2)]
        await settle(t, ids, "postgres restart")
        await t.http.aclose()


async def test_s3_frozen_then_resumed(stack: Stack, source: bytes) -> None:
    async with isolated(stack, "s3") as (t, _workers):
        ids = [await submit(t, None, source) for _ in range(JOBS)]
        pid = stack.s3.proc.pid
        os.kill(pid, signal.SIGSTOP)  # in-flight reads and writes stall, nothing is lost
        try:
            await asyncio.sleep(3)
        finally:
            os.kill(pid, signal.SIGCONT)
        await settle(t, ids, "s3 frozen 3 s")
        await t.http.aclose()


async def test_webhook_receiver_down_for_a_while(stack: Stack, source: bytes) -> None:
    port = free_port()
    async with isolated(stack, "hook", webhook_max_attempts="40") as (t, _workers):
        url = f"http://127.0.0.1:{port}/down"
        ids = [await submit(t, url, source) for _ in range(JOBS)]
        await settle(t, ids, "receiver down")
        await asyncio.sleep(2)  # nobody listening: deliveries are retrying on the long schedule
        with WebhookReceiver(port) as receiver:
            got = await asyncio.to_thread(receiver.wait, "/down", JOBS, 60.0)
        unique = {r.headers["webhook-id"] for r in got}
        print(f"[receiver down] events={JOBS} delivered={len(unique)} lost={JOBS - len(unique)}")
        assert len(unique) == JOBS
        for job_id in ids:
            # the receiver has the POST a moment before the worker records the answer
            (d,) = await deliveries(t, job_id, {"delivered", "failed"})
            assert d["status"] == "delivered" and d["attempts"] >= 2
        await t.http.aclose()
