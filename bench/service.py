"""Service benchmarks on loopback, against real Redis, PostgreSQL and LocalStack S3.

    .venv/bin/python -m bench.service            # full run (about 2 minutes)
    .venv/bin/python -m bench.service --quick    # smoke

1. ``POST /v1/jobs`` under a bounded load (concurrency 32 for 10 s) against a floor measured in the
   same run: a bare Litestar endpoint doing one INSERT and one arq enqueue.
2. End to end: create -> PUT to S3 -> start -> worker -> signed webhook, for a 1 MP source and
   three variants, with 1 and 2 worker processes: latency from ``start`` to webhook received one
   job at a time (idle machine), and throughput with jobs in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from devstack.backing_services import LocalStackS3, PostgresServer, RedisServer, free_port, wait_for
from devstack.demo import create_client_with_key
from devstack.receiver import WebhookReceiver

ROOT = Path(__file__).resolve().parents[1]
PIXELFLOW = str(Path(sys.executable).with_name("pixelflow"))
SPEC = {
    "version": 1,
    "pipeline": [
        {"id": "large", "steps": [{"op": "resize", "width": 1024, "fit": "inside"}], "format": "webp", "quality": 80},
        {"id": "medium", "steps": [{"op": "resize", "width": 600, "fit": "inside"}], "format": "jpeg", "quality": 75},
        {"id": "thumb", "action": "resize", "width": 150, "height": 150, "format": "webp", "quality": 70},
    ],
}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def load(url: str, body: dict, headers: dict, *, concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as http:

        async def user() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t = time.perf_counter()
                r = await http.post(url, json=body)
                if r.status_code >= 300:
                    errors += 1
                latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
    }


def bench_env(database_url: str, redis: RedisServer, s3: LocalStackS3, *, bucket: str) -> dict[str, str]:
    """Settings for a benchmark stack: no rate limits in the way, one job per worker process."""
    return {
        "PIXELFLOW_DATABASE_URL": database_url,
        "PIXELFLOW_REDIS_URL": redis.url,
        "PIXELFLOW_S3_ENDPOINT": s3.endpoint,
        "PIXELFLOW_S3_ACCESS_KEY": s3.access_key,
        "PIXELFLOW_S3_SECRET_KEY": s3.secret_key,
        "PIXELFLOW_S3_BUCKET": bucket,
        "PIXELFLOW_WEBHOOK_ALLOW_PRIVATE": "true",
        "PIXELFLOW_RATE_LIMIT_PER_MINUTE": "10000000",
        "PIXELFLOW_RATE_LIMIT_BURST": "1000000",
        "PIXELFLOW_MAX_CONCURRENT_JOBS_PER_CLIENT": "100000",
        "PIXELFLOW_WORKER_CONCURRENCY": "1",
        "PIXELFLOW_WORKER_POLL_DELAY": "0.01",
        "PIXELFLOW_LOG_LEVEL": "WARNING",
    }


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log.open("ab"), cwd=ROOT)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


async def make_key(env: dict[str, str]) -> tuple[str, str]:
    _, _, key, secret = await create_client_with_key(env["PIXELFLOW_DATABASE_URL"], f"bench-{time.time_ns()}")
    return key, secret


async def end_to_end(
    api: str, key: str, receiver: WebhookReceiver, source: bytes, *, jobs: int, in_flight: int
) -> dict:
    latencies: list[float] = []
    sem = asyncio.Semaphore(in_flight)
    tag = f"/e2e/{time.time_ns()}"
    async with (
        httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        httpx.AsyncClient(timeout=60) as plain,
    ):

        async def one(i: int) -> None:
            async with sem:
                path = f"{tag}/{i}"
                job = (await http.post("/v1/jobs", json={**SPEC, "webhook_url": receiver.url(path)})).json()
                (await plain.put(job["upload"]["put"]["url"], content=source)).raise_for_status()
                t = time.time()
                (await http.post(f"/v1/jobs/{job['id']}/start")).raise_for_status()
                (got,) = await receiver.arrived(path, timeout=120.0)
                latencies.append(got.at - t)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(jobs)))
        elapsed = time.perf_counter() - started
    return {
        "jobs": jobs,
        "in_flight": in_flight,
        "jobs_per_s": jobs / elapsed,
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    seconds, e2e_jobs, seq_jobs = (2.0, 10, 5) if args.quick else (10.0, 200, 40)

    from devstack.imagegen import encode, photo

    source = encode(photo(1200, 830, seed=3), ".jpg", Q=85)  # ~1 MP
    work = Path(tempfile.mkdtemp(prefix="pixelflow-bench-"))
    os.chmod(work, 0o755)
    redis, pg, s3 = RedisServer(work / "redis"), PostgresServer(work / "pg"), LocalStackS3(work / "s3")
    procs: list[subprocess.Popen] = []
    results: dict = {}
    try:
        redis.start()
        pg.start()
        s3.start()
        from infra.db import migrate

        migrate(pg.url)
        api_port, floor_port = free_port(), free_port()
        env = bench_env(pg.url, redis, s3, bucket="bench")
        procs.append(spawn([PIXELFLOW, "api", "--port", str(api_port)], env, work / "api.log"))
        procs.append(spawn([sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--port", str(floor_port),
                            "--log-level", "warning"], env, work / "floor.log"))  # fmt: skip
        api, floor = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{floor_port}"
        wait_for(lambda: httpx.get(f"{api}/readyz", timeout=1).status_code == 200, timeout=60, what="API")
        wait_for(lambda: httpx.post(f"{floor}/floor", json={}, timeout=1).status_code == 201, timeout=60, what="floor")
        key, _secret = asyncio.run(make_key(env))
        auth = {"Authorization": f"Bearer {key}"}

        # 1. API throughput: alternate floor and PixelFlow so both see the same machine state
        runs: dict[str, list[dict]] = {"floor": [], "pixelflow": []}
        for _ in range(1 if args.quick else 2):
            runs["floor"].append(asyncio.run(load(f"{floor}/floor", SPEC, {}, concurrency=32, seconds=seconds / 2)))
            runs["pixelflow"].append(
                asyncio.run(load(f"{api}/v1/jobs", SPEC, auth, concurrency=32, seconds=seconds / 2))
            )
        results["api"] = {
            name: {
                "rps": statistics.median(r["rps"] for r in rs),
                "p50_ms": statistics.median(r["p50_ms"] for r in rs),
                "p99_ms": statistics.median(r["p99_ms"] for r in rs),
                "errors": sum(r["errors"] for r in rs),
                "requests": sum(r["requests"] for r in rs),
            }
            for name, rs in runs.items()
        }

        # 2. end to end with 1 and 2 worker processes
        results["e2e"] = {}
        with WebhookReceiver() as receiver:
            for workers in (1, 2):
                ws = [spawn([PIXELFLOW, "worker"], env, work / f"worker{i}.log") for i in range(workers)]
                time.sleep(2)
                asyncio.run(end_to_end(api, key, receiver, source, jobs=3, in_flight=1))  # warm-up
                seq = asyncio.run(end_to_end(api, key, receiver, source, jobs=seq_jobs, in_flight=1))
                par = asyncio.run(end_to_end(api, key, receiver, source, jobs=e2e_jobs, in_flight=8))
                results["e2e"][workers] = {"sequential": seq, "loaded": par}
                for w in ws:
                    stop(w)
    finally:
        for p in procs:
            stop(p)
        s3.stop()
        pg.stop()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(render(results))
    return 0


def render(r: dict) -> str:
    f, p = r["api"]["floor"], r["api"]["pixelflow"]
    lines = [
        "### `POST /v1/jobs` (concurrency 32)",
        "",
        "| endpoint | requests/s | p50 ms | p99 ms | errors | ratio to floor |",
        "|---|---|---|---|---|---|",
        f"| floor (INSERT + enqueue) | {f['rps']:.0f} | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} | {f['errors']} | 1.00 |",
        f"| PixelFlow create | {p['rps']:.0f} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {p['errors']} | {p['rps'] / f['rps']:.2f} |",
        "",
        "### End to end: `start` to webhook received (1 MP JPEG, 3 variants)",
        "",
        "| workers | mode | jobs | jobs/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for workers, modes in r["e2e"].items():
        for mode, m in modes.items():
            label = "one at a time" if mode == "sequential" else f"{m['in_flight']} in flight"
            lines.append(
                f"| {workers} | {label} | {m['jobs']} | {m['jobs_per_s']:.2f} | {m['p50_ms']:.0f} | {m['p99_ms']:.0f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
