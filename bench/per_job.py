"""What one job costs the shared services, counted rather than timed (docs/SCALING.md): Redis
commands, PostgreSQL transactions and row writes, S3 requests. Counts do not depend on the
machine's speed, so a small run on a busy machine gives the same numbers as a large quiet one.

    .venv/bin/python -m bench.per_job              # 20 jobs, about a minute
    .venv/bin/python -m bench.per_job --jobs 5     # smoke

Real Redis, PostgreSQL and LocalStack S3 on loopback; one ``pixelflow api`` and one ``pixelflow
worker`` with the production defaults that matter here (concurrency 2, poll delay 0.05 s, sweep
every 10 s). Each job is bench.service's three-variant spec on a 1 MP JPEG, run one at a time:
create, upload to the presigned URL, start, signed webhook received. First the idle stack is
counted, so the per-job figures can be given net of idle polling and sweeping.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import redis

from bench.service import PIXELFLOW, SPEC, bench_env, make_key, spawn, stop
from devstack.backing_services import LocalStackS3, PostgresServer, RedisServer, free_port, wait_for
from devstack.receiver import WebhookReceiver

S3_LINE = re.compile(r"AWS s3\.(\w+) => (\d+)")


class Counts:
    def __init__(self, redis_url: str, database_url: str, s3_log: Path) -> None:
        self.redis = redis.Redis.from_url(redis_url)
        self.database_url = database_url
        self.s3_log = s3_log

    def snapshot(self) -> dict[str, Counter]:
        # A backend that stays connected (the pools) reports its statistics after at most 10 s idle.
        time.sleep(11)
        stats = self.redis.info("commandstats")
        r = Counter({k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items() if k != "cmdstat_info"})
        # what the queue keeps: arq's job and result keys (results live keep_result = 1 h)
        r["(memory bytes)"] = self.redis.info("memory")["used_memory"]
        r["(keys)"] = self.redis.dbsize()
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(
                "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database"
                " WHERE datname = current_database()"
            ).fetchone()
            assert row is not None
            pg = Counter(dict(zip(("transactions", "rows inserted", "rows updated", "rows deleted"), row, strict=True)))
            for table, ins, upd, dele in conn.execute(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"
            ):
                pg[f"{table}: insert"], pg[f"{table}: update"], pg[f"{table}: delete"] = ins, upd, dele
        s3 = Counter(f"{op} {code}" for op, code in S3_LINE.findall(self.s3_log.read_text(errors="replace")))
        return {"redis": r, "postgres": pg, "s3": s3}


def diff(after: dict[str, Counter], before: dict[str, Counter]) -> dict[str, Counter]:
    return {k: Counter({n: after[k][n] - before[k].get(n, 0) for n in after[k]}) for k in after}


async def run_jobs(api: str, key: str, receiver: WebhookReceiver, source: bytes, jobs: int, spec: dict) -> None:
    tag = f"/per-job/{time.time_ns()}"
    async with (
        httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        httpx.AsyncClient(timeout=60) as plain,
    ):
        for i in range(jobs):
            path = f"{tag}/{i}"
            job = (await http.post("/v1/jobs", json={**spec, "webhook_url": receiver.url(path)})).json()
            (await plain.put(job["upload"]["put"]["url"], content=source)).raise_for_status()
            (await http.post(f"/v1/jobs/{job['id']}/start")).raise_for_status()
            await asyncio.to_thread(receiver.wait, path, 1, 120.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--variants", type=int, choices=(1, 2, 3), default=3, help="the first N of the spec's variants")
    args = ap.parse_args(argv)

    from devstack.imagegen import encode, photo

    source = encode(photo(1200, 830, seed=3), ".jpg", Q=85)
    spec = {**SPEC, "pipeline": SPEC["pipeline"][: args.variants]}
    work = Path(tempfile.mkdtemp(prefix="pixelflow-perjob-"))
    os.chmod(work, 0o755)
    rs, pg, s3 = RedisServer(work / "redis"), PostgresServer(work / "pg"), LocalStackS3(work / "s3")
    procs: list[subprocess.Popen] = []
    try:
        rs.start()
        pg.start()
        s3.start()
        from infra.db import migrate

        migrate(pg.url)
        env = {
            **bench_env(pg.url, rs, s3, bucket="perjob"),
            "PIXELFLOW_WORKER_CONCURRENCY": "2",
            "PIXELFLOW_WORKER_POLL_DELAY": "0.05",
            "PIXELFLOW_LOG_LEVEL": "WARNING",
        }
        port = free_port()
        api = f"http://127.0.0.1:{port}"
        procs.append(spawn([PIXELFLOW, "api", "--port", str(port)], env, work / "api.log"))
        wait_for(lambda: httpx.get(f"{api}/readyz", timeout=1).status_code == 200, timeout=60, what="API")
        procs.append(spawn([PIXELFLOW, "worker"], env, work / "worker.log"))
        key, _ = asyncio.run(make_key(env))
        counts = Counts(rs.url, pg.url, work / "s3" / "localstack.log")
        with WebhookReceiver() as receiver:
            asyncio.run(run_jobs(api, key, receiver, source, 2, spec))  # warm-up: engines spawned, bucket rules set
            start = counts.snapshot()
            t0 = time.monotonic()
            time.sleep(10)
            middle = counts.snapshot()
            t1 = time.monotonic()
            asyncio.run(run_jobs(api, key, receiver, source, args.jobs, spec))
            jobs_took = time.monotonic() - t1
            end = counts.snapshot()
            t2 = time.monotonic()
            idle, busy = diff(middle, start), diff(end, middle)
            idle_s, busy_s = t1 - t0, t2 - t1
    finally:
        for p in procs:
            stop(p)
        s3.stop()
        pg.stop()
        rs.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"{args.jobs} jobs of {args.variants} variant(s) one at a time in {jobs_took:.1f} s; windows: idle {idle_s:.1f} s, busy {busy_s:.1f} s\n"
    )
    for service in ("redis", "postgres", "s3"):
        print(f"{service}: per job (busy window - idle rate x its length) / jobs; the idle stack per second")
        for name in sorted(set(busy[service]) | set(idle[service])):
            if name.startswith("(") or name in ("dbsize", "memory"):  # the measurement's own, or levels
                continue
            b, i = busy[service].get(name, 0), idle[service].get(name, 0) / idle_s
            if b or i:
                print(f"  {name:<32} {(b - i * busy_s) / args.jobs:8.2f}   idle {i:7.2f}/s")
        if service != "postgres":
            own = ("dbsize", "memory")
            b = sum(v for k, v in busy[service].items() if not k.startswith("(") and k not in own)
            i = sum(v for k, v in idle[service].items() if not k.startswith("(") and k not in own) / idle_s
            print(f"  {'TOTAL':<32} {(b - i * busy_s) / args.jobs:8.2f}   idle {i:7.2f}/s")
        if service == "redis":  # levels, not rates: what each job leaves behind (arq keeps results 1 h)
            keys, memory = busy["redis"]["(keys)"] / args.jobs, busy["redis"]["(memory bytes)"] / args.jobs
            print(f"  left in Redis per job: {keys:.2f} keys, {memory:,.0f} bytes of used_memory")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
