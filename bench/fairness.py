"""Fair shares between clients, measured on loopback against real Redis, PostgreSQL, LocalStack S3,
the API and one worker process at production settings (2 normal + 1 interactive slot).

    .venv/bin/python -m bench.fairness              # full run (about 6 minutes)
    .venv/bin/python -m bench.fairness --quick      # smoke (about 2 minutes)

1. A small client submits 1 MP, 3-variant jobs at a steady rate (one every 0.5 s), alone and
   while a heavy client keeps deadline-length jobs queued (5x the slots; AVIF at effort 9, cut by
   a 5 s deadline): the small client's start-to-webhook p50/p95, and the heavy client's
   throughput alone and contended.
2. Three clients with weights 1, 1 and 2 queue about a minute of 1 MP jobs: each one's share of
   the jobs finished while all three had work queued, against its weight's.
3. A 1,000-job batch backfill (`"priority": "batch"`, small jobs) runs while another client
   sends interactive jobs: their latency against an idle pool.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

from bench.service import SPEC, make_key, pct, spawn
from bench.stack import bench_stack
from devstack.backing_services import free_port, wait_for
from devstack.receiver import WebhookReceiver

PIXELFLOW = str(Path(sys.executable).with_name("pixelflow"))
HEAVY = {"version": 1, "pipeline": [{"id": "a", "steps": [], "format": "avif", "effort": 9}]}
TINY = {"version": 1, "pipeline": [{"id": "t", "action": "resize", "width": 64, "format": "jpeg"}]}
DEADLINE = 5.0
WEIGHTS = (1, 1, 2)


class Client:
    def __init__(self, api: str, key: str, receiver: WebhookReceiver, name: str) -> None:
        self.http = httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        self.plain = httpx.AsyncClient(timeout=60)
        self.receiver, self.name, self.n = receiver, name, 0

    async def submit(self, body: dict, data: bytes) -> tuple[str, float]:
        """Create, upload, start; the webhook path and the time of ``/start``."""
        self.n += 1
        path = f"/{self.name}/{self.n}"
        job = (await self.http.post("/v1/jobs", json={**body, "webhook_url": self.receiver.url(path)})).json()
        (await self.plain.put(job["upload"]["put"]["url"], content=data)).raise_for_status()
        at = time.time()
        (await self.http.post(f"/v1/jobs/{job['id']}/start")).raise_for_status()
        return path, at

    async def latency(self, body: dict, data: bytes) -> float:
        path, at = await self.submit(body, data)
        (got,) = await self.receiver.arrived(path)
        return got.at - at

    async def close(self) -> None:
        await self.http.aclose()
        await self.plain.aclose()


async def steady(client: Client, body: dict, data: bytes, count: int, every: float) -> list[float]:
    """``count`` jobs, one started every ``every`` seconds (not waiting for the previous)."""

    async def one(i: int) -> float:
        await asyncio.sleep(i * every)
        return await client.latency(body, data)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def scenario_contention(api: str, keys: list[str], receiver: WebhookReceiver, quick: bool) -> dict:
    from devstack.imagegen import encode, photo

    small_src = encode(photo(1200, 830, seed=3), ".jpg", Q=85)
    heavy_src = encode(photo(800, 600, seed=9), ".jpg")
    count = 12 if quick else 30
    small, heavy = Client(api, keys[0], receiver, "small"), Client(api, keys[1], receiver, "heavy")
    try:
        idle = await steady(small, SPEC, small_src, count, 0.5)
        heavy_jobs = 10  # 5x the two normal slots
        began = time.time()
        await asyncio.gather(*(heavy.latency(HEAVY, heavy_src) for _ in range(heavy_jobs)))
        alone = heavy_jobs / (time.time() - began)
        began = time.time()
        heavy_task = asyncio.gather(*(heavy.latency(HEAVY, heavy_src) for _ in range(heavy_jobs)))
        await asyncio.sleep(1.0)  # the heavy client's jobs hold the slots before the small one starts
        contended = await steady(small, SPEC, small_src, count, 0.5)
        await heavy_task
        heavy_time = time.time() - began
    finally:
        await small.close()
        await heavy.close()
    return {
        "idle": idle,
        "contended": contended,
        "heavy_alone_jobs_per_s": alone,
        "heavy_contended_jobs_per_s": heavy_jobs / heavy_time,
    }


async def scenario_weights(api: str, keys: list[str], receiver: WebhookReceiver, quick: bool) -> dict:
    """Every client's jobs uploaded first, then all started (so the bench client's own submission
    speed cannot ration anyone), in proportion to the weights; shares counted while every client
    still had work queued: until the first one's last job ended."""
    from devstack.imagegen import encode, photo

    src = encode(photo(1200, 830, seed=4), ".jpg", Q=85)
    unit = 40 if quick else 210  # jobs per unit of weight: about a minute of work in all
    clients = [Client(api, k, receiver, f"w{i}") for i, k in enumerate(keys)]
    sem = asyncio.Semaphore(16)
    try:

        async def uploaded(c: Client) -> tuple[Client, str, str]:
            async with sem:
                c.n += 1
                path = f"/{c.name}/{c.n}"
                job = (await c.http.post("/v1/jobs", json={**SPEC, "webhook_url": receiver.url(path)})).json()
                (await c.plain.put(job["upload"]["put"]["url"], content=src)).raise_for_status()
                return c, job["id"], path

        jobs = await asyncio.gather(
            *(uploaded(c) for c, weight in zip(clients, WEIGHTS, strict=True) for _ in range(unit * weight))
        )

        async def start(c: Client, job_id: str) -> None:
            async with sem:
                (await c.http.post(f"/v1/jobs/{job_id}/start")).raise_for_status()

        await asyncio.gather(*(start(c, job_id) for c, job_id, _ in jobs))
        opened = time.time()
        ended = {c.name: [] for c in clients}
        for c, _, path in jobs:
            (got,) = await receiver.arrived(path, timeout=900.0)
            ended[c.name].append(got.at)
    finally:
        for c in clients:
            await c.close()
    closed = min(max(times) for times in ended.values())
    return {
        "seconds": closed - opened,
        "finished": [sum(1 for t in ended[c.name] if opened <= t <= closed) for c in clients],
    }


async def scenario_backfill(api: str, keys: list[str], receiver: WebhookReceiver, quick: bool) -> dict:
    from devstack.imagegen import encode, photo

    tiny = encode(photo(320, 240, seed=5), ".jpg")
    small_src = encode(photo(1200, 830, seed=3), ".jpg", Q=85)
    backfill_jobs = 200 if quick else 1000
    count = 10 if quick else 20
    user, backfill = Client(api, keys[0], receiver, "user"), Client(api, keys[1], receiver, "backfill")
    interactive = {**SPEC, "priority": "interactive"}
    try:
        idle = await steady(user, interactive, small_src, count, 0.5)
        sem = asyncio.Semaphore(16)

        async def one() -> str:
            async with sem:
                path, _ = await backfill.submit({**TINY, "priority": "batch"}, tiny)
                return path

        paths = await asyncio.gather(*(one() for _ in range(backfill_jobs)))
        busy = await steady(user, interactive, small_src, count, 0.5)
        pending = sum(1 for p in paths if not receiver.at(p))
        for p in paths:
            await receiver.arrived(p, timeout=600.0)
    finally:
        await user.close()
        await backfill.close()
    return {"idle": idle, "busy": busy, "backfill_jobs": backfill_jobs, "backfill_pending_after": pending}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    results: dict = {}
    with bench_stack("pixelflow-fair-") as stack:
        env = stack.env("fair", max_concurrent_jobs_per_client="100000", deadline_seconds=str(DEADLINE))
        port = free_port()
        stack.procs.append(spawn([PIXELFLOW, "api", "--port", str(port)], env, stack.work / "api.log"))
        stack.procs.append(spawn([PIXELFLOW, "worker"], env, stack.work / "worker.log"))
        api = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{api}/readyz", timeout=1).status_code == 200, timeout=60, what="API")
        time.sleep(3)
        with WebhookReceiver() as receiver:
            keys = [asyncio.run(make_key(env))[0] for _ in range(2)]
            results["contention"] = asyncio.run(scenario_contention(api, keys, receiver, args.quick))
            weighted = [asyncio.run(make_key(env))[0] for _ in range(3)]
            subprocess_limits(env, weight=2)
            results["weights"] = asyncio.run(scenario_weights(api, weighted, receiver, args.quick))
            keys = [asyncio.run(make_key(env))[0] for _ in range(2)]
            results["backfill"] = asyncio.run(scenario_backfill(api, keys, receiver, args.quick))
    print(render(results))
    return 0


def subprocess_limits(env: dict[str, str], *, weight: int) -> None:
    """Give the newest bench client (the third of the weights scenario) its weight, as an operator would."""
    import subprocess

    import psycopg

    with psycopg.connect(env["PIXELFLOW_DATABASE_URL"]) as conn:
        name = conn.execute("SELECT name FROM clients ORDER BY created_at DESC LIMIT 1").fetchone()[0]
    subprocess.run([PIXELFLOW, "clients", "limits", name, "--scheduling-weight", str(weight)],
                   env={**os.environ, **env}, check=True, capture_output=True)  # fmt: skip


def _ms(values: list[float], p: float) -> str:
    return f"{pct(values, p) * 1000:.0f}"


def render(r: dict) -> str:
    c, w, b = r["contention"], r["weights"], r["backfill"]
    small_run = statistics.median(c["idle"])
    bound = 2 * pct(c["idle"], 95) + small_run
    lines = [
        f"### Two clients: a small one at a steady rate, a heavy one with {DEADLINE:g} s jobs queued (5x the slots)",
        "",
        "| small client | jobs | p50 ms | p95 ms |",
        "|---|---|---|---|",
        f"| idle pool | {len(c['idle'])} | {_ms(c['idle'], 50)} | {_ms(c['idle'], 95)} |",
        f"| heavy client saturating | {len(c['contended'])} | {_ms(c['contended'], 50)} | {_ms(c['contended'], 95)} |",
        "",
        f"contended p95 / (2 x idle p95 + one small job) = {pct(c['contended'], 95) / bound:.2f} (≤ 1 meets the target)",
        "",
        "| heavy client | jobs/s |",
        "|---|---|",
        f"| alone | {c['heavy_alone_jobs_per_s']:.3f} |",
        f"| beside the small client | {c['heavy_contended_jobs_per_s']:.3f} "
        f"({c['heavy_contended_jobs_per_s'] / c['heavy_alone_jobs_per_s']:.2f}x alone) |",
        "",
        f"### Weights 1:1:2: jobs queued in proportion, shares over the {w['seconds']:.0f} s all had work",
        "",
        "| client | weight | jobs finished | share | target |",
        "|---|---|---|---|---|",
    ]
    total = sum(w["finished"]) or 1
    for i, (n, weight) in enumerate(zip(w["finished"], WEIGHTS, strict=True)):
        lines.append(f"| w{i} | {weight} | {n} | {n / total:.1%} | {weight / 4:.1%} |")
    lines += [
        "",
        f"### Interactive jobs while a {b['backfill_jobs']}-job batch backfill runs",
        "",
        "| interactive client | jobs | p50 ms | p95 ms |",
        "|---|---|---|---|",
        f"| idle pool | {len(b['idle'])} | {_ms(b['idle'], 50)} | {_ms(b['idle'], 95)} |",
        f"| backfill running ({b['backfill_pending_after']} of its jobs still waiting after) | {len(b['busy'])} "
        f"| {_ms(b['busy'], 50)} | {_ms(b['busy'], 95)} |",
        "",
        f"p50 ratio {pct(b['busy'], 50) / pct(b['idle'], 50):.2f}x idle, p95 ratio {pct(b['busy'], 95) / pct(b['idle'], 95):.2f}x",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
