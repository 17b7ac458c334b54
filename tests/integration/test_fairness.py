"""Fair shares on real services: engine slots are shared between clients by weight and cost, not
by arrival; a client's batch jobs never delay its normal ones; the running cap holds; a cheap
client waiting for its first slot starts at once in an interactive slot while another client's
deadline-length jobs hold the normal ones; the interactive allowance holds.

Assertions are about order (who started before whom ended), counts and shares, never speed:
every test's own lane has a single worker process, so "started before the other's run ended"
can only mean a free slot was used as the model says."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import pytest

from devstack.imagegen import encode, photo
from infra.policy import ClientPolicy
from infra.repo import ClientRepo
from tests.integration.conftest import Stack, Tenant, wait_status
from tests.integration.test_every_start_runs import upload
from tests.integration.test_lifecycle import SLOW, TERMINAL, lane, seconds

pytestmark = pytest.mark.integration

SMALL = {"version": 1, "pipeline": [{"id": "s", "action": "resize", "width": 64, "format": "jpeg"}]}
MEDIUM = {"version": 1, "pipeline": [{"id": "m", "action": "resize", "width": 600, "format": "webp"}]}
UNLIMITED = {"rate_limit_per_minute": "100000", "rate_limit_burst": "10000"}


async def set_policy(stack: Stack, t: Tenant, **fields: int) -> None:
    from infra.db import open_pool

    pool = await open_pool(stack.env["PIXELFLOW_DATABASE_URL"], max_size=1)
    try:
        await ClientRepo(pool).set_policy(t.client_id, ClientPolicy(**fields))
    finally:
        await pool.close()


async def started(t: Tenant, body: dict, data: bytes) -> str:
    job_id = await upload(t, body, data)
    r = await t.http.post(f"/v1/jobs/{job_id}/start")
    assert r.status_code == 202, r.text
    return job_id


async def finals(t: Tenant, ids: list[str], timeout: float = 120) -> list[dict]:
    return [await wait_status(t, i, TERMINAL, timeout=timeout) for i in ids]


async def test_a_cheap_client_starts_while_another_holds_every_normal_slot(stack: Stack) -> None:
    """Client A queues deadline-length jobs, five times the slots; client B's small jobs each
    start while an A job is still running (in the worker's interactive slot) and succeed, and A
    loses nothing but the CPU B used."""
    settings = {
        "worker_concurrency": "1",
        "interactive_slots": "1",
        "deadline_seconds": "5",
        "interactive_deadline_seconds": "1",
        **UNLIMITED,
    }
    async with lane(stack, "cheap", **settings) as ln:
        a, b = await ln.tenant(), await ln.tenant()
        heavy = encode(photo(800, 600, seed=9), ".jpg")  # AVIF effort 9: far past 5 s
        small = encode(photo(320, 240, seed=10), ".jpg")
        a_ids = [await started(a, SLOW, heavy) for _ in range(6)]
        # A's first job may take the interactive slot (A had nothing running): it moves to the
        # normal slot after the interactive deadline, and A (now running) is not eligible again
        await asyncio.sleep(2)
        b_jobs = []
        for _ in range(4):
            job_id = await started(b, SMALL, small)
            b_jobs.append(await wait_status(b, job_id, TERMINAL, timeout=60))
        a_final = await finals(a, a_ids, timeout=120)
        for job in b_jobs:
            assert job["status"] == "succeeded", job
            # an A run was in progress from before B's job was queued until after it started
            overlapping = [
                j for j in a_final if j["started_at"] and seconds(j["started_at"], job["queued_at"]) > 0
                and j["finished_at"] and seconds(job["started_at"], j["finished_at"]) > 0
            ]  # fmt: skip
            assert overlapping, f"B's job {job['id']} waited for A's run to end"
        assert {j["error"]["code"] for j in a_final} == {"deadline_exceeded"}  # every A job ran and ended


async def test_weights_share_the_slots(stack: Stack) -> None:
    """Three clients with weights 1, 1 and 2 queue work on one slot, in the worst order for
    fairness (all of the first client's, then the second's, then the third's): while all three
    still have jobs waiting, the slot's runs split about 1:1:2."""
    settings = {"worker_concurrency": "1", "interactive_slots": "0", "deadline_seconds": "60", **UNLIMITED}
    async with lane(stack, "weights", **settings) as ln:
        holder, *clients = [await ln.tenant() for _ in range(4)]
        await set_policy(stack, clients[2], scheduling_weight=2)
        data = encode(photo(1200, 900, seed=12), ".jpg")
        uploaded = {c.name: [await upload(c, MEDIUM, data) for _ in range(16)] for c in clients}
        # the slot is held while every job is started, so none runs by arrival; then freed
        hold = await started(holder, SLOW, encode(photo(800, 600, seed=6), ".jpg"))
        await wait_status(holder, hold, {"processing"}, timeout=30)
        for c in clients:
            for job_id in uploaded[c.name]:
                assert (await c.http.post(f"/v1/jobs/{job_id}/start")).status_code == 202
        assert (await holder.http.post(f"/v1/jobs/{hold}/cancel")).status_code == 200
        held = await wait_status(holder, hold, TERMINAL, timeout=60)
        done = {c.name: await finals(c, uploaded[c.name]) for c in clients}
        assert all(j["status"] == "succeeded" for jobs in done.values() for j in jobs)
        last_queued = max(j["queued_at"] for jobs in done.values() for j in jobs)
        assert seconds(last_queued, held["finished_at"]) > 0, "the slot freed before every job was queued"
        # the window in which every client still had queued work: until the first one ran out
        window_end = min(max(j["started_at"] for j in jobs) for jobs in done.values())
        share = Counter(name for name, jobs in done.items() for j in jobs if j["started_at"] <= window_end)
        counts = [share[c.name] for c in clients]
        print(f"\n[weights 1:1:2, one slot] runs while all had work: {counts}")
        total = sum(counts)
        expected = [total / 4, total / 4, total / 2]
        # a run's rounding per client, and the first run's provisional charge settling
        assert all(abs(c - e) <= max(2, 0.2 * e) for c, e in zip(counts, expected, strict=True)), (counts, expected)


async def test_batch_jobs_wait_for_the_same_clients_normal_ones(stack: Stack) -> None:
    """A client's normal job is claimed before its batch jobs queued earlier."""
    settings = {"worker_concurrency": "1", "interactive_slots": "0", "deadline_seconds": "60", **UNLIMITED}
    async with lane(stack, "batch", **settings) as ln:
        holder, t = await ln.tenant(), await ln.tenant()
        # another client holds the slot while the jobs are started, so none runs by arrival (a
        # loaded machine starts them slower than the slot runs them); then it is freed
        hold = await started(holder, SLOW, encode(photo(800, 600, seed=6), ".jpg"))
        await wait_status(holder, hold, {"processing"}, timeout=30)
        data = encode(photo(1200, 900, seed=13), ".jpg")
        batch = [await started(t, {**MEDIUM, "priority": "batch"}, data) for _ in range(6)]
        normal = await started(t, MEDIUM, data)
        assert (await holder.http.post(f"/v1/jobs/{hold}/cancel")).status_code == 200
        held = await wait_status(holder, hold, TERMINAL, timeout=60)
        jobs = await finals(t, [*batch, normal])
        assert seconds(max(j["queued_at"] for j in jobs), held["finished_at"]) > 0, "freed before all were queued"
        order = [j["id"] for j in sorted(jobs, key=lambda j: j["started_at"])]
        assert order[0] == normal, order
        assert jobs[-1]["priority"] == "normal" and jobs[0]["priority"] == "batch"


async def test_the_running_cap_holds_across_slots(stack: Stack) -> None:
    settings = {"worker_concurrency": "2", "interactive_slots": "0", **UNLIMITED}
    async with lane(stack, "cap", **settings) as ln:
        t = await ln.tenant()
        await set_policy(stack, t, max_running_jobs_per_client=1)
        data = encode(photo(1200, 900, seed=14), ".jpg")
        jobs = await finals(t, [await started(t, MEDIUM, data) for _ in range(6)])
        spans = sorted((j["started_at"], j["finished_at"]) for j in jobs)
        assert all(j["status"] == "succeeded" for j in jobs)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert seconds(end, start) >= 0, f"two runs overlapped: {spans}"


async def test_the_interactive_allowance_holds(stack: Stack) -> None:
    settings = {"interactive_jobs_per_client": "2", **UNLIMITED}
    async with lane(stack, "allowance", workers=0, **settings) as ln:  # nobody runs them: they stay queued
        t = await ln.tenant()
        data = encode(photo(64, 48, seed=15), ".png")
        ids = [await started(t, {**SMALL, "priority": "interactive"}, data) for _ in range(3)]
        views = [(await t.http.get(f"/v1/jobs/{i}")).json() for i in ids]
        assert [v["priority"] for v in views] == ["interactive", "interactive", "normal"]
        assert all(v["status"] == "queued" for v in views)
        await t.http.post(f"/v1/jobs/{ids[0]}/cancel")  # one fewer active: the allowance frees up
        again = await started(t, {**SMALL, "priority": "interactive"}, data)
        assert (await t.http.get(f"/v1/jobs/{again}")).json()["priority"] == "interactive"
