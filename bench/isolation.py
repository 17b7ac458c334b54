"""What engine isolation costs: this tree's service against a baseline checkout, side by side.

    git worktree add /tmp/pixelflow-base <commit before isolation> && (cd /tmp/pixelflow-base && bash build/setup.sh)
    .venv/bin/python -m bench.isolation --baseline /tmp/pixelflow-base [--rounds 2] [--quick]

Each version runs its own API and workers (its own code, its own database on one PostgreSQL,
one Redis, one LocalStack S3), started and stopped in interleaved rounds so both see the same
machine state. For 1 and 2 worker processes (``PIXELFLOW_WORKER_CONCURRENCY=1``), a 1 MP JPEG
with three variants, measured from ``start`` to the signed webhook received: latency one job at
a time and throughput with 8 jobs in flight. Medians over rounds; ratios new / baseline.
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
import psycopg

from bench.service import SPEC, bench_env, end_to_end, make_key, stop
from devstack.backing_services import LocalStackS3, PostgresServer, RedisServer, free_port, wait_for
from devstack.receiver import WebhookReceiver

ROOT = Path(__file__).resolve().parents[1]


def _database(pg: PostgresServer, name: str) -> str:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # our own fixed names
    return pg.url.rsplit("/", 1)[0] + f"/{name}"


def _popen(tree: Path, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    binary = str(tree / ".venv" / "bin" / "pixelflow")
    return subprocess.Popen(
        [binary, *args], env={**os.environ, **env}, cwd=tree, stdout=subprocess.DEVNULL, stderr=log.open("ab")
    )


def run_version(
    tree: Path, env: dict[str, str], work: Path, source: bytes, *, workers: int, seq: int, loaded: int
) -> dict:
    port = free_port()
    api = _popen(tree, ["api", "--port", str(port)], env, work / f"{tree.name}-api.log")
    url = f"http://127.0.0.1:{port}"
    ws: list[subprocess.Popen] = []
    try:
        wait_for(lambda: httpx.get(f"{url}/readyz", timeout=1).status_code == 200, timeout=60, what="API")
        ws = [_popen(tree, ["worker"], env, work / f"{tree.name}-worker{i}.log") for i in range(workers)]
        time.sleep(2)
        key, _ = asyncio.run(make_key(env))
        with WebhookReceiver() as receiver:
            asyncio.run(end_to_end(url, key, receiver, source, jobs=3, in_flight=1))  # warm-up
            one = asyncio.run(end_to_end(url, key, receiver, source, jobs=seq, in_flight=1))
            many = asyncio.run(end_to_end(url, key, receiver, source, jobs=loaded, in_flight=8))
        return {"p50_ms": one["p50_ms"], "p99_ms": one["p99_ms"], "jobs_per_s": many["jobs_per_s"]}
    finally:
        for w in ws:
            stop(w)
        stop(api)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, required=True, help="a checkout with its own .venv")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=("baseline", "isolated"), help="run one version (for debugging)")
    args = ap.parse_args(argv)
    seq, loaded = (5, 10) if args.quick else (40, 100)

    from devstack.imagegen import encode, photo

    source = encode(photo(1200, 830, seed=3), ".jpg", Q=85)  # ~1 MP, as bench.service
    work = Path(tempfile.mkdtemp(prefix="pixelflow-iso-"))
    os.chmod(work, 0o755)
    redis, pg, s3 = RedisServer(work / "redis"), PostgresServer(work / "pg"), LocalStackS3(work / "s3")
    trees = {"baseline": args.baseline.resolve(), "isolated": ROOT}
    if args.only:
        trees = {args.only: trees[args.only]}
    results: dict[tuple[str, int], list[dict]] = {}
    try:
        redis.start()
        pg.start()
        s3.start()
        envs = {}
        for name, tree in trees.items():
            envs[name] = {
                **bench_env(_database(pg, f"bench_{name}"), redis, s3, bucket=f"bench-{name}"),
                "PIXELFLOW_QUEUE_NAME": f"pixelflow:{name}",
            }
            subprocess.run(
                [str(tree / ".venv" / "bin" / "pixelflow"), "db", "migrate"],
                env={**os.environ, **envs[name]}, cwd=tree, check=True, capture_output=True,
            )  # fmt: skip
        for _ in range(args.rounds):
            for workers in (1, 2):
                for name, tree in trees.items():
                    r = run_version(tree, envs[name], work, source, workers=workers, seq=seq, loaded=loaded)
                    results.setdefault((name, workers), []).append(r)
                    print(f"  {name:<9} workers={workers} {r}", file=sys.stderr)
    except BaseException:
        print(f"failed; logs kept in {work}", file=sys.stderr)
        work = None  # type: ignore[assignment]
        raise
    finally:
        s3.stop()
        pg.stop()
        redis.stop()
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    print(render(results, spec_variants=len(SPEC["pipeline"])))
    return 0


def render(results: dict[tuple[str, int], list[dict]], *, spec_variants: int) -> str:
    def med(name: str, workers: int, key: str) -> float:
        return statistics.median(r[key] for r in results[(name, workers)])

    lines = [
        "| workers | version | jobs/s (8 in flight) | p50 ms | p99 ms (one at a time) |",
        "|---|---|---|---|---|",
    ]
    for workers in (1, 2):
        for name in ("baseline", "isolated"):
            lines.append(
                f"| {workers} | {name} | {med(name, workers, 'jobs_per_s'):.2f} | {med(name, workers, 'p50_ms'):.0f}"
                f" | {med(name, workers, 'p99_ms'):.0f} |"
            )
        ratio = med("isolated", workers, "jobs_per_s") / med("baseline", workers, "jobs_per_s")
        lines.append(f"| {workers} | isolated / baseline | {ratio:.2f} | | |")
    lines.append(f"\n{len(next(iter(results.values())))} rounds, medians; 1 MP JPEG, {spec_variants} variants.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
