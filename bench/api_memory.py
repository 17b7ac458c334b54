"""Resident memory of ``pixelflow api --workers 2`` (two uvicorn processes and their supervisor),
idle and at peak under job creation, for deploy/k8s's API requests and limits (docs/SCALING.md).

    .venv/bin/python -m bench.api_memory        # about 30 s

Real Redis, PostgreSQL and LocalStack S3 on loopback; load as bench.service's (32 connections of
``POST /v1/jobs``, 8 s); the process tree sampled every 50 ms from /proc, as bench.memory does.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.memory import tree_rss
from bench.service import PIXELFLOW, SPEC, bench_env, load, make_key, spawn, stop
from devstack.backing_services import LocalStackS3, PostgresServer, RedisServer, free_port, wait_for


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="pixelflow-apimem-"))
    os.chmod(work, 0o755)
    rs, pg, s3 = RedisServer(work / "redis"), PostgresServer(work / "pg"), LocalStackS3(work / "s3")
    proc = None
    try:
        rs.start()
        pg.start()
        s3.start()
        from infra.db import migrate

        migrate(pg.url)
        env = bench_env(pg.url, rs, s3, bucket="apimem")
        port = free_port()
        api = f"http://127.0.0.1:{port}"
        proc = spawn([PIXELFLOW, "api", "--port", str(port), "--workers", "2"], env, work / "api.log")
        wait_for(lambda: httpx.get(f"{api}/readyz", timeout=1).status_code == 200, timeout=60, what="API")
        time.sleep(3)
        idle = tree_rss(proc.pid)
        key, _ = asyncio.run(make_key(env))
        peak, done = 0, threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss(proc.pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        asyncio.run(load(f"{api}/v1/jobs", SPEC, {"Authorization": f"Bearer {key}"}, concurrency=32, seconds=8))
        done.set()
        sampler.join()
    finally:
        if proc is not None:
            stop(proc)
        s3.stop()
        pg.stop()
        rs.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"api --workers 2: idle {idle / 1e6:.0f} MB, peak under load {peak / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
