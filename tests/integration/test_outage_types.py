"""What a Redis restart raises through the calls the API makes on it, on a real Redis: every
exception must be one ``infra.outages.TRANSIENT`` names, or the API answers 500 where clients
are promised 503 + Retry-After (found by the chaos test: redis-py raises WatchError, not
ConnectionError, when the connection drops inside arq's WATCH)."""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from pathlib import Path

import pytest

from control_plane.auth.ratelimit import RateLimiter
from devstack.backing_services import RedisServer
from infra.outages import TRANSIENT
from infra.queue import dispatch_job, open_queue
from tests.timing import SLACK

pytestmark = pytest.mark.integration

RESTARTS = 6


async def test_redis_restarts_raise_only_transient_errors(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    queue = await open_queue(server.url, f"pixelflow:outage-{uuid.uuid4().hex[:6]}")
    limiter = RateLimiter(queue, per_minute=1_000_000, burst=1_000_000)
    seen: collections.Counter[str] = collections.Counter()
    foreign: list[BaseException] = []
    stop = asyncio.Event()

    async def hammer() -> None:
        calls = (lambda: dispatch_job(queue, uuid.uuid4(), uuid.uuid4()), lambda: limiter.hit("k"))
        while not stop.is_set():
            for call in calls:
                try:
                    await call()
                    seen["ok"] += 1
                except TRANSIENT as exc:
                    seen[type(exc).__name__] += 1
                except Exception as exc:
                    foreign.append(exc)
            await asyncio.sleep(0.001)

    async def served(calls: int) -> None:
        """Until ``calls`` more calls went through: Redis is up and answering (the bound only stops a hung test)."""
        target, end = seen["ok"] + calls, time.monotonic() + 3 * SLACK
        while seen["ok"] < target:
            assert time.monotonic() < end, f"calls stopped going through: {dict(seen)}"
            await asyncio.sleep(0.01)

    workers = [asyncio.create_task(hammer()) for _ in range(10)]
    try:
        for _ in range(RESTARTS):
            await served(20)  # calls are in flight when Redis goes away
            await asyncio.to_thread(server.restart)
        await served(20)  # and they go through again after the last restart
    finally:
        stop.set()
        await asyncio.gather(*workers)
        await queue.aclose()
        server.stop()
    print(f"\n[redis restarts] {dict(seen)}")
    assert not foreign, [f"{type(e).__module__}.{type(e).__qualname__}: {e}" for e in foreign[:5]]
    assert sum(seen.values()) - seen["ok"] > 0, "the restarts should have interrupted calls"
