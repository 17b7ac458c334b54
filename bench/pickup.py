"""Start-to-webhook latency on an idle pool, this tree against a baseline commit, interleaved.

    .venv/bin/python -m bench.pickup                     # against origin of this round (3b70ef7)
    .venv/bin/python -m bench.pickup --baseline REV --jobs 60 --rounds 4

One Redis, PostgreSQL and LocalStack S3; per tree (this one, and REV checked out in a temporary
git worktree) one API and one worker process at production settings (poll delay 0.05 s, two
slots), each on its own queue. Jobs go one at a time: create, PUT the 1 MP JPEG, then the clock
runs from ``/start`` until the signed webhook arrives. Between jobs the pool sits idle for a
random 0.2-0.6 s, so pickups land anywhere in the worker's poll sleep. Then, per round and tree,
``--throughput`` jobs with 8 in flight (jobs per second, start to last webhook). The trees take
turns in blocks, so both see the same machine; medians and p99 per tree, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.service import SPEC, make_key, pct, spawn, stop
from bench.stack import bench_stack
from devstack.backing_services import free_port, wait_for
from devstack.receiver import WebhookReceiver

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "3b70ef7"  # main before issue 23's queue changes


def tree_env(base: dict[str, str], tree: Path, queue: str) -> dict[str, str]:
    # PYTHONPATH first: the venv's editable install would otherwise import this tree's code
    return {**base, "PIXELFLOW_QUEUE_NAME": queue, "PYTHONPATH": str(tree)}


STRANDED_AFTER = 30.0  # an idle pool answers in well under a second; the baseline may strand a job for an hour


async def one_job(api: str, key: str, receiver: WebhookReceiver, source: bytes, path: str) -> float | None:
    """Seconds from ``/start`` to the webhook; None for a job still without one after
    ``STRANDED_AFTER`` (left queued: the defect this round fixed)."""
    async with (
        httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        httpx.AsyncClient(timeout=60) as plain,
    ):
        job = (await http.post("/v1/jobs", json={**SPEC, "webhook_url": receiver.url(path)})).json()
        (await plain.put(job["upload"]["put"]["url"], content=source)).raise_for_status()
        t = time.time()
        (await http.post(f"/v1/jobs/{job['id']}/start")).raise_for_status()
        try:
            (got,) = await receiver.arrived(path, timeout=STRANDED_AFTER)
        except TimeoutError:
            return None
        return got.at - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="the commit to compare with")
    ap.add_argument("--jobs", type=int, default=50, help="jobs per tree per round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--throughput", type=int, default=40, help="jobs per tree per round with 8 in flight (0: skip)")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)

    from devstack.imagegen import encode, photo

    source = encode(photo(1200, 830, seed=3), ".jpg", Q=85)  # ~1 MP
    latencies: dict[str, list[float]] = {"baseline": [], "current": []}
    stranded = {"baseline": 0, "current": 0}
    rates: dict[str, list[float]] = {"baseline": [], "current": []}
    with bench_stack("pixelflow-pickup-") as stack:
        baseline_tree = stack.work / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(baseline_tree), args.baseline],
                       check=True, capture_output=True)  # fmt: skip
        try:
            base = stack.env("pickup")
            apis: dict[str, str] = {}
            for name, tree in (("baseline", baseline_tree), ("current", ROOT)):
                env = tree_env(base, tree, f"pixelflow:pickup-{name}")
                port = free_port()
                cli = [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())"]
                stack.procs.append(spawn([*cli, "api", "--port", str(port)], env, stack.work / f"api-{name}.log"))
                stack.procs.append(spawn([*cli, "worker"], env, stack.work / f"worker-{name}.log"))
                apis[name] = f"http://127.0.0.1:{port}"
            for api in apis.values():
                wait_for(
                    lambda api=api: httpx.get(f"{api}/readyz", timeout=1).status_code == 200, timeout=60, what="API"
                )
            key, _secret = asyncio.run(make_key(base))
            time.sleep(3)  # workers up and idle
            with WebhookReceiver() as receiver:
                for name, api in apis.items():  # warm-up: engines spawned, connections open
                    for i in range(3):
                        asyncio.run(one_job(api, key, receiver, source, f"/warm/{name}/{i}"))
                for r in range(args.rounds):
                    order = list(apis.items()) if r % 2 == 0 else list(reversed(apis.items()))
                    for name, api in order:
                        for i in range(args.jobs):
                            time.sleep(rng.uniform(0.2, 0.6))
                            took = asyncio.run(one_job(api, key, receiver, source, f"/{name}/{r}/{i}"))
                            if took is None:
                                stranded[name] += 1
                            else:
                                latencies[name].append(took)
                        if args.throughput:
                            rate = asyncio.run(loaded(api, key, receiver, source, name, r, args.throughput))
                            rates[name].append(rate)
        finally:
            for p in reversed(stack.procs):  # before the tree they run from goes
                stop(p)
            stack.procs.clear()
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline_tree)], check=False)
    print(render(latencies, stranded, rates, args))
    return 0


async def loaded(api: str, key: str, receiver: WebhookReceiver, source: bytes, name: str, r: int, jobs: int) -> float:
    """Jobs per second with 8 in flight, start to last webhook."""
    sem = asyncio.Semaphore(8)

    async def one(i: int) -> None:
        async with sem:
            await one_job(api, key, receiver, source, f"/load/{name}/{r}/{i}")

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(jobs)))
    return jobs / (time.perf_counter() - began)


def render(
    latencies: dict[str, list[float]], stranded: dict[str, int], rates: dict[str, list[float]], args: argparse.Namespace
) -> str:
    b, c = latencies["baseline"], latencies["current"]
    lines = [
        f"### `/start` to webhook on an idle pool (1 MP JPEG, 3 variants; {len(c)} jobs per tree)",
        "",
        f"| tree | jobs | p50 ms | p99 ms | stranded (no webhook after {STRANDED_AFTER:.0f} s) |",
        "|---|---|---|---|---|",
        f"| baseline {args.baseline} | {len(b)} | {pct(b, 50) * 1000:.0f} | {pct(b, 99) * 1000:.0f} | {stranded['baseline']} |",
        f"| current | {len(c)} | {pct(c, 50) * 1000:.0f} | {pct(c, 99) * 1000:.0f} | {stranded['current']} |",
        "",
        f"p50 change: {(pct(c, 50) - pct(b, 50)) * 1000:+.1f} ms; p99 change: {(pct(c, 99) - pct(b, 99)) * 1000:+.1f} ms",
    ]
    if rates["current"]:
        rb, rc = statistics.median(rates["baseline"]), statistics.median(rates["current"])
        lines += [
            "",
            f"Throughput, 8 jobs in flight ({args.throughput} jobs per tree per round, median of {len(rates['current'])} rounds):"
            f" baseline {rb:.2f} jobs/s, current {rc:.2f} jobs/s ({rc / rb:.3f}x)",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
