"""Peak resident memory of each PixelFlow process, under load, for sizing container limits
(compose.yaml's ``mem_limit``s come from this run).

    .venv/bin/python -m bench.memory            # about 2 minutes
    .venv/bin/python -m bench.memory --quick    # smoke

Real Redis, PostgreSQL and LocalStack S3 on loopback; one ``pixelflow api`` process and one
``pixelflow worker`` with concurrency 2 (what compose.yaml runs on a 2-core host). Each process
tree (the worker with its engine children) is sampled every 50 ms from /proc:

1. the API under job creation at concurrency 32, then job reads;
2. the worker through photo-like sources of 24 and 64 megapixels, each to four variants (WebP,
   JPEG, AVIF, PNG), two jobs at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.service import PIXELFLOW, bench_env, load, make_key, spawn, stop
from devstack.backing_services import LocalStackS3, PostgresServer, RedisServer, free_port, wait_for
from devstack.receiver import WebhookReceiver

SPEC = {
    "version": 1,
    "pipeline": [
        {"id": "large", "steps": [{"op": "resize", "width": 2560, "fit": "inside"}], "format": "webp"},
        {"id": "card", "action": "resize", "width": 1200, "height": 800, "format": "jpeg", "quality": 80},
        {"id": "hero", "action": "resize", "width": 1600, "format": "avif"},
        {"id": "thumb", "action": "resize", "width": 320, "height": 320, "format": "png"},
    ],
}


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
    return total


class PeakSampler:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, tree_rss(self.pid))

    def __enter__(self) -> PeakSampler:
        self.peak = tree_rss(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def run_jobs(api: str, key: str, receiver: WebhookReceiver, source: bytes, *, jobs: int) -> list[str]:
    tag = f"/mem/{time.time_ns()}"
    sem = asyncio.Semaphore(2)
    async with (
        httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http,
        httpx.AsyncClient(timeout=120) as plain,
    ):

        async def one(i: int) -> str:
            async with sem:
                path = f"{tag}/{i}"
                job = (await http.post("/v1/jobs", json={**SPEC, "webhook_url": receiver.url(path)})).json()
                (await plain.put(job["upload"]["put"]["url"], content=source)).raise_for_status()
                (await http.post(f"/v1/jobs/{job['id']}/start")).raise_for_status()
                (got,) = await asyncio.to_thread(receiver.wait, path, 1, 300.0)
                import json

                return json.loads(got.body)["type"]

        return await asyncio.gather(*(one(i) for i in range(jobs)))


def mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    from devstack.imagegen import encode, photo

    sizes = [(6000, 4000)] if args.quick else [(6000, 4000), (9800, 6530)]
    jobs = 2 if args.quick else 6
    work = Path(tempfile.mkdtemp(prefix="pixelflow-mem-"))
    os.chmod(work, 0o755)
    redis, pg, s3 = RedisServer(work / "redis"), PostgresServer(work / "pg"), LocalStackS3(work / "s3")
    procs: list[subprocess.Popen] = []
    rows: list[tuple[str, str]] = []
    try:
        redis.start()
        pg.start()
        s3.start()
        from infra.db import migrate

        migrate(pg.url)
        port = free_port()
        env = bench_env(pg.url, redis, s3, bucket="mem") | {
            "PIXELFLOW_WORKER_CONCURRENCY": "2",
            "PIXELFLOW_MAX_SOURCE_BYTES": str(200 * 2**20),
            "PIXELFLOW_MAX_JOB_COST": "100000000",
            "PIXELFLOW_DEADLINE_SECONDS": "600",
        }
        api_proc = spawn([PIXELFLOW, "api", "--port", str(port)], env, work / "api.log")
        worker_proc = spawn([PIXELFLOW, "worker"], env, work / "worker.log")
        procs += [api_proc, worker_proc]
        api = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{api}/readyz", timeout=1).status_code == 200, timeout=60, what="API")
        time.sleep(2)
        key, _ = asyncio.run(make_key(env))
        rows.append(("api, idle", mb(tree_rss(api_proc.pid))))
        rows.append(("worker + 3 engine children (2 slots + 1 interactive), idle", mb(tree_rss(worker_proc.pid))))

        with PeakSampler(api_proc.pid) as api_peak:
            auth = {"Authorization": f"Bearer {key}"}
            asyncio.run(load(f"{api}/v1/jobs", SPEC, auth, concurrency=32, seconds=3 if args.quick else 10))
        rows.append(("api, peak under 32 concurrent creates", mb(api_peak.peak)))

        with WebhookReceiver() as receiver:
            for w, h in sizes:
                source = encode(photo(w, h, seed=7), ".jpg", Q=85)
                with PeakSampler(worker_proc.pid) as peak:
                    outcomes = asyncio.run(run_jobs(api, key, receiver, source, jobs=jobs))
                assert set(outcomes) == {"job.succeeded"}, outcomes
                label = (
                    f"worker, peak: {jobs} jobs of {w * h / 1e6:.0f} MP ({len(source) / 2**20:.0f} MB JPEG), 2 at once"
                )
                rows.append((label, mb(peak.peak)))
    finally:
        for p in procs:
            stop(p)
        s3.stop()
        pg.stop()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"pixelflow memory ({os.cpu_count()} cores, python {sys.version.split()[0]})")
    print("| process tree | resident |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
