"""Delivery benchmark: image servers answering resize URLs, on the workload of imgproxy's public
image-servers benchmark, with Debian's `wrk` as the load generator (C, not a Python client on the
same cores).

    apt-get install -y wrk; bash bench/setup-thumbor.sh      # once
    .venv/bin/python -m bench.delivery --sources 100 --duration 20 --connections 8 \\
        --formats jpeg,webp,avif --targets floor,thumbor,pixelflow --out delivery.json

Workload: ``--sources`` photo-like 2048x1365 JPEGs (q90, made in code by devstack.imagegen), each
fit inside 512x512 and encoded as JPEG q80, then WebP q80, then AVIF q80; wrk keeps
``--connections`` keep-alive connections busy for ``--duration`` seconds (one wrk thread),
cycling through the URLs. Every server runs one process per core on this machine and wrk shares
the machine with it, so "per core" is requests/s divided by the machine's cores.

Targets, all up at once and measured in turns (format by format, cold then warm) so a noisy
machine slows them alike:

- **floor**: ``bench/delivery_floor.py``, pyvips ``thumbnail`` + save in a bare ASGI app (uvicorn
  ``--workers`` = cores), sources read from local disk per request. It has no cache: cold only.
- **thumbor** 7.8 (its own venv, ``bench/setup-thumbor.sh``): file loader on the same directory,
  no original storage, PIL engine, the same quality, non-progressive JPEG, AVIF at the speed
  matching PixelFlow's AVIF effort, ``fit-in/512x512``; ``--processes`` = cores (thumbor forks
  after binding one socket). Cold: result storage off, so every request renders. Warm: a second
  instance with file result storage on, every URL fetched once before the run.
- **pixelflow**: the API (``--workers`` = cores) and one worker on bench/stack.py's services;
  signed URLs ``/img/{sig}/{kid}/w:512/fit:inside/f:{fmt}/q:80/asset:{key}`` over the sources
  uploaded as the client's assets. Cold: every request names a URL never requested (the sources
  are uploaded again under fresh asset keys, ``--cold-urls`` of them per format and round; a cold
  run that uses them all up ends early and says so; the sources are shared by the formats). Warm: the first copy's URLs, each fetched once first.
  Skipped, with the reason, while the API has no ``/img/`` route.

Before its cold run every target's URLs for the format are fetched once and checked (200, the
format asked for, 512 px on the long side); the table shows the mean response size, so nobody
wins by encoding worse. Peak RSS is the sum of VmHWM over the server's processes, read after each
run (so a server's last row is its peak over the whole run).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack.backing_services import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
SIZE, QUALITY = 512, 80
SOURCE_SIZE = (2048, 1365)
FORMATS = ("jpeg", "webp", "avif")
TARGETS = ("floor", "thumbor", "pixelflow")
CONTENT_TYPES = {"jpeg": "image/jpeg", "webp": "image/webp", "avif": "image/avif"}
THUMBOR = ROOT / ".venv-thumbor" / "bin" / "thumbor"
PIXELFLOW = str(Path(sys.executable).with_name("pixelflow"))


class Skip(Exception):
    """A target that cannot run here; its message says why and what to do."""


# -- sources ---------------------------------------------------------------------------------------


def _make_source(path: Path, seed: int) -> None:
    from devstack.imagegen import encode, photo

    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(encode(photo(*SOURCE_SIZE, seed=seed), ".jpg", Q=90))
    tmp.rename(path)


def make_sources(folder: Path, count: int) -> list[Path]:
    """``count`` deterministic photo-like JPEGs in ``folder``; those already there are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"src-{i:03d}.jpg" for i in range(count)]
    missing = [(p, i + 1) for i, p in enumerate(paths) if not p.exists()]
    if missing:
        # spawned, not forked: a fork of a process whose libvips threads run can deadlock
        spawned = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=spawned) as pool:
            list(pool.map(_make_source, *zip(*missing, strict=True)))
    return paths


# -- processes -------------------------------------------------------------------------------------


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A server in its own process group, so stopping it stops the processes it forked."""
    with log.open("ab") as err:
        return subprocess.Popen(
            argv, env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )


def stop_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def peak_rss(roots: list[int]) -> int:
    """Bytes: the sum of VmHWM over ``roots`` and all their descendants alive now."""
    kids, total, todo = _children(), 0, list(roots)
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, []))
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        hwm = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        total += int(hwm.group(1)) * 1024 if hwm else 0
    return total


# -- targets ---------------------------------------------------------------------------------------


@dataclass
class Server:
    """One running server: its base URL, its processes and the URLs it answers per format."""

    name: str
    base: str
    procs: list[subprocess.Popen]
    cold: dict[str, list[str]]  # format -> paths
    warm: dict[str, list[str]] = field(default_factory=dict)  # empty: no cache to warm
    once: bool = False  # cold paths may be requested only once (the server caches results)
    warm_base: str = ""  # another instance answers warm requests (thumbor with result storage)
    warm_procs: list[subprocess.Popen] = field(default_factory=list)


def start_floor(work: Path, sources: list[Path], formats: list[str], processes: int, stack: ExitStack) -> Server:
    port = free_port()
    env = {"DELIVERY_SOURCES": str(sources[0].parent), "VIPS_CONCURRENCY": "1"}
    proc = spawn(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.delivery_floor:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(processes),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env,
        work / "floor.log",
    )
    stack.callback(stop_group, proc)
    base = f"http://127.0.0.1:{port}"
    paths = {f: [f"/{f}/{QUALITY}/{SIZE}/{s.name}" for s in sources] for f in formats}
    wait_for(lambda: _up(base + paths[formats[0]][0]), timeout=60, what="floor")
    return Server("floor", base, [proc], paths)


def thumbor_conf(sources: Path, results: Path | None) -> str:
    from pipeline.formats import FORMATS as REGISTRY

    avif = REGISTRY["avif"].effort
    assert avif is not None
    lines = {
        "LOADER": "thumbor.loaders.file_loader",
        "FILE_LOADER_ROOT_PATH": str(sources),
        "STORAGE": "thumbor.storages.no_storage",  # originals come from disk every time, as the floor's
        "ALLOW_UNSAFE_URL": True,
        "QUALITY": QUALITY,
        "PROGRESSIVE_JPEG": False,  # PixelFlow's and the floor's JPEGs are baseline
        "AVIF_SPEED": 9 - avif.default,  # libvips passes effort to libaom as speed 9 - effort
        "RESULT_STORAGE": "thumbor.result_storages.file_storage" if results else None,
        "RESULT_STORAGE_FILE_STORAGE_ROOT_PATH": str(results or sources),
        "RESULT_STORAGE_STORES_UNSAFE": True,
        "RESULT_STORAGE_EXPIRATION_SECONDS": 0,
    }
    return "".join(f"{k} = {v!r}\n" for k, v in lines.items())


def start_thumbor(work: Path, sources: list[Path], formats: list[str], processes: int, stack: ExitStack) -> Server:
    if not THUMBOR.exists():
        raise Skip(f"thumbor is not installed: bash bench/setup-thumbor.sh (looked for {THUMBOR})")
    paths = {
        f: [f"/unsafe/fit-in/{SIZE}x{SIZE}/filters:quality({QUALITY}):format({f})/{s.name}" for s in sources]
        for f in formats
    }
    bases, procs = [], []
    for tag, results in (("cold", None), ("warm", work / "thumbor-results")):
        conf = work / f"thumbor-{tag}.conf"
        conf.write_text(thumbor_conf(sources[0].parent, results))
        port = free_port()
        proc = spawn(
            [
                str(THUMBOR),
                "--ip",
                "127.0.0.1",
                "--port",
                str(port),
                "--conf",
                str(conf),
                "--processes",
                str(processes),
                "--log-level",
                "warning",
            ],
            {},
            work / f"thumbor-{tag}.log",
        )
        stack.callback(stop_group, proc)
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda base=base: _up(base + "/healthcheck"), timeout=60, what=f"thumbor ({tag})")
        bases.append(base)
        procs.append(proc)
    return Server("thumbor", bases[0], procs[:1], paths, warm=paths, warm_base=bases[1], warm_procs=procs[1:])


def sign(kid: str, secret: str, fmt: str, key: str) -> str:
    """The signed path of ``asset:key`` fit inside 512 px as ``fmt`` q80."""
    rest = f"/{kid}/w:{SIZE}/fit:inside/f:{fmt}/q:{QUALITY}/asset:{key}"
    mac = hmac.new(secret.encode(), rest.encode(), hashlib.sha256).digest()
    return "/img/" + base64.urlsafe_b64encode(mac).decode().rstrip("=") + rest


def parse_signing_key(output: str) -> tuple[str, str]:
    """(kid, secret) from ``pixelflow clients signing-keys create``'s output, whatever its layout:
    JSON, or lines naming the key (``kid: sk_1``, ``signing key sk_1 for NAME``) and the secret
    (its last word), or the two values alone."""
    try:
        data = json.loads(output)
    except ValueError:
        data = None
    if isinstance(data, dict):
        kid = next((str(v) for k, v in data.items() if k.lower() in ("kid", "key_id", "id")), None)
        secret = next((str(v) for k, v in data.items() if "secret" in k.lower()), None)
        if kid and secret:
            return kid, secret
    lines = output.splitlines()
    secret_line = next((x for x in lines if "secret" in x.lower()), None)
    kid_m = re.search(r"(?i)\b(?:kid|key[ _-]?id|key)\b\W*(\w[\w.-]*)", "\n".join(x for x in lines if x != secret_line))
    if kid_m and secret_line and secret_line.split():
        after = re.search(r"(?i)secret\b[^:=]*[:=]\s*(\S+)", secret_line)
        return kid_m.group(1), after.group(1) if after else secret_line.split()[-1]
    tokens = output.split()
    if len(tokens) == 2:
        return tokens[0], tokens[1]
    raise RuntimeError(
        f"cannot find a key id and a secret in `pixelflow clients signing-keys create`'s output:\n{output}"
    )


def _signing_key_output(client: str, env: dict[str, str]) -> str:
    """What ``pixelflow clients signing-keys create`` prints: with ``--json`` when it takes it."""
    command = [PIXELFLOW, "clients", "signing-keys", "create", client]
    for argv in ([*command, "--json"], command):
        made = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, cwd=ROOT, check=False)
        if made.returncode == 0:
            return made.stdout
    raise RuntimeError(f"{' '.join(command[1:])} failed: {made.stderr[-2000:]}")


def has_image_route(base: str) -> bool:
    """False while the API answers ``/img/...`` exactly as it answers a path no route has."""

    def answer(path: str) -> tuple[int, object]:
        r = httpx.get(base + path, timeout=10)
        try:
            body = r.json()
        except ValueError:
            return r.status_code, r.content
        return r.status_code, {k: v for k, v in body.items() if k != "instance"} if isinstance(body, dict) else body

    probe = answer("/img/x/y/w:1/asset:none")
    return not (probe[0] == 404 and probe == answer(f"/no-such-route-{time.time_ns()}/x/y"))


def start_pixelflow(
    work: Path, sources: list[Path], formats: list[str], processes: int, stack: ExitStack, cold_urls: int
) -> Server:
    import asyncio

    from bench.stack import bench_stack
    from devstack.demo import create_client_with_key

    services = stack.enter_context(bench_stack("pixelflow-delivery-"))
    env = services.env("delivery", max_concurrent_jobs_per_client="100000")
    port = free_port()
    api = spawn([PIXELFLOW, "api", "--port", str(port), "--workers", str(processes)], env, work / "api.log")
    stack.callback(stop_group, api)
    worker = spawn([PIXELFLOW, "worker"], env, work / "worker.log")
    stack.callback(stop_group, worker)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _up(base + "/readyz"), timeout=90, what="PixelFlow API")
    if not has_image_route(base):
        raise Skip(
            "the API has no signed-URL route yet (GET /img/... -> 404 route not found): "
            "run again on a tree with issue 26's /img/ route"
        )
    name = f"delivery-{time.time_ns()}"
    _, _, api_key, _ = asyncio.run(create_client_with_key(env["PIXELFLOW_DATABASE_URL"], name))
    kid, secret = parse_signing_key(_signing_key_output(name, env))
    copies = 1 + max(1, math.ceil(cold_urls / len(sources)))  # copy 0 is the warm set
    keys = [[f"delivery-c{c}-{s.name}" for s in sources] for c in range(copies)]
    asyncio.run(upload_assets(base, api_key, sources, keys))
    cold = {f: [sign(kid, secret, f, k) for copy in keys[1:] for k in copy] for f in formats}
    warm = {f: [sign(kid, secret, f, k) for k in keys[0]] for f in formats}
    return Server("pixelflow", base, [api, worker], cold, warm=warm, once=True)


async def upload_assets(base: str, api_key: str, sources: list[Path], keys: list[list[str]]) -> None:
    import asyncio

    sem = asyncio.Semaphore(8)
    async with (
        httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {api_key}"}, timeout=60) as http,
        httpx.AsyncClient(timeout=60) as plain,
    ):

        async def one(key: str, source: Path) -> None:
            async with sem:
                made = await http.post("/v1/assets", json={"key": key})
                made.raise_for_status()
                put = await plain.put(made.json()["upload"]["put"]["url"], content=source.read_bytes())
                put.raise_for_status()

        await asyncio.gather(*(one(k, s) for copy in keys for k, s in zip(copy, sources, strict=True)))


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


# -- measuring -------------------------------------------------------------------------------------


def check(base: str, paths: list[str], fmt: str, connections: int) -> float:
    """Fetch every path once (which also fills a cache) and check it: the mean response size."""
    import asyncio

    import pyvips

    async def fetch_all() -> list[httpx.Response]:
        sem = asyncio.Semaphore(connections)
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:

            async def one(p: str) -> httpx.Response:
                async with sem:
                    return await http.get(p)

            return await asyncio.gather(*(one(p) for p in paths))

    sizes = []
    for path, r in zip(paths, asyncio.run(fetch_all()), strict=True):
        if r.status_code != 200 or r.headers.get("content-type", "").split(";")[0] != CONTENT_TYPES[fmt]:
            raise RuntimeError(f"{base}{path}: {r.status_code} {r.headers.get('content-type')} {r.text[:300]}")
        image = pyvips.Image.new_from_buffer(r.content, "")
        if max(image.width, image.height) != SIZE:
            raise RuntimeError(f"{base}{path}: {image.width}x{image.height}, not fit inside {SIZE} px")
        sizes.append(len(r.content))
    return sum(sizes) / len(sizes)


WRK_SCRIPT = """-- written by bench/delivery.py: cycle through the paths in a file
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local sent, got = 0, 0
request = function()
  sent = sent + 1
  return wrk.format("GET", paths[(sent - 1) %% #paths + 1])
end
if %(once)s then
  -- every path once: stop when all have answered (up to connections - 1 requests past the end
  -- repeat the first paths; they are in flight when the thread stops)
  response = function(status, headers, body)
    got = got + 1
    if got >= #paths then wrk.thread:stop() end
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nDELIVERY-JSON {"requests": %%d, "duration_us": %%d, "bytes": %%d, "status_errors": %%d, '
    .. '"socket_errors": %%d, "timeouts": %%d, "p50_us": %%.0f, "p99_us": %%.0f, "max_us": %%.0f, "mean_us": %%.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, latency.mean))
end
"""


def run_wrk(base: str, paths: list[str], *, duration: float, connections: int, once: bool, work: Path) -> dict:
    listing = work / f"paths-{time.time_ns()}.txt"
    listing.write_text("\n".join(paths) + "\n")
    script = listing.with_suffix(".lua")
    script.write_text(WRK_SCRIPT % {"paths": listing, "once": "true" if once else "false"})
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "60s",
        "--latency",
        "-s",
        str(script),
        base,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("DELIVERY-JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr[-2000:]}{out.stdout[-2000:]}")
    r = json.loads(line.removeprefix("DELIVERY-JSON "))
    seconds = r["duration_us"] / 1e6
    ran_out = once and r["requests"] >= len(paths)
    if ran_out and r["mean_us"]:
        # wrk waits out -d even when the thread stopped: Little's law for a closed loop instead
        seconds = r["requests"] * r["mean_us"] / 1e6 / connections
    return {
        "requests": r["requests"],
        "seconds": seconds,
        "rps": r["requests"] / seconds if seconds else 0.0,
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
        "errors": r["status_errors"] + r["socket_errors"] + r["timeouts"],
        "ran_out": ran_out,  # a cold run that used every fresh URL
    }


# -- the run ---------------------------------------------------------------------------------------


def measure(args: argparse.Namespace, work: Path) -> dict:
    cores = os.cpu_count() or 1
    processes = args.processes or cores
    formats = args.formats.split(",")
    wanted = args.targets.split(",")
    for name in (*formats, *wanted):
        if name not in (*FORMATS, *TARGETS):
            raise SystemExit(f"unknown format or target {name!r}: formats {FORMATS}, targets {TARGETS}")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (bash build/services.sh does)")
    sources = make_sources(args.source_dir or work / "sources", args.sources)
    cold_urls = (args.cold_urls or round(args.duration * 30 * cores)) * args.rounds
    result: dict = {
        "machine": {"cores": cores, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "load_before": os.getloadavg()},
        "config": {
            "sources": len(sources),
            "source_size": SOURCE_SIZE,
            "fit_inside": SIZE,
            "quality": QUALITY,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "connections": args.connections,
            "processes_per_server": processes,
            "formats": formats,
            "cold_urls_pixelflow": cold_urls,
        },
        "skipped": {},
        "rows": [],
    }
    starters = {
        "floor": lambda s: start_floor(work, sources, formats, processes, s),
        "thumbor": lambda s: start_thumbor(work, sources, formats, processes, s),
        "pixelflow": lambda s: start_pixelflow(work, sources, formats, processes, s, cold_urls),
    }
    with ExitStack() as stack:
        servers: list[Server] = []
        for name in wanted:
            inner = ExitStack()
            stack.push(inner.__exit__)
            try:
                servers.append(starters[name](inner))
            except Skip as e:
                inner.close()
                result["skipped"][name] = str(e)
                print(f"{name}: skipped: {e}", file=sys.stderr)
        runs: dict[tuple[str, str, str], list[dict]] = {}
        for r in range(args.rounds):
            order = servers[r % max(1, len(servers)) :] + servers[: r % max(1, len(servers))]  # who goes first
            for fmt in formats:
                for mode in ("cold", "warm"):
                    for srv in order:
                        run = measure_one(args, work, srv, fmt, mode, r)
                        if run is not None:
                            runs.setdefault((srv.name, fmt, mode), []).append(run)
    result["machine"]["load_after"] = os.getloadavg()
    result["rows"] = [summarise(name, fmt, mode, rs, cores) for (name, fmt, mode), rs in runs.items()]
    add_ratios(result["rows"])
    return result


def measure_one(args: argparse.Namespace, work: Path, srv: Server, fmt: str, mode: str, round_: int) -> dict | None:
    paths = srv.cold[fmt] if mode == "cold" else srv.warm.get(fmt)
    if not paths:
        return None
    once = srv.once and mode == "cold"
    if once:  # each round its own fresh URLs
        share = len(paths) // args.rounds
        paths = paths[round_ * share : (round_ + 1) * share]
    base = srv.base if mode == "cold" else srv.warm_base or srv.base
    procs = srv.procs if mode == "cold" else srv.warm_procs or srv.procs
    mean_bytes = None
    if round_ == 0:  # PixelFlow's check fetches its warm URLs: never a cold one before its run
        mean_bytes = check(base, srv.warm.get(fmt) or paths, fmt, args.connections)
    print(f"{srv.name} {fmt} {mode}: {args.duration:g} s of wrk ...", file=sys.stderr, flush=True)
    run = run_wrk(base, paths, duration=args.duration, connections=args.connections, once=once, work=work)
    return run | {"mean_bytes": mean_bytes, "peak_rss_mb": peak_rss([p.pid for p in procs]) / 2**20}


def summarise(name: str, fmt: str, mode: str, runs: list[dict], cores: int) -> dict:
    """One row from a target's rounds: medians, and every round's requests/s."""
    rps = statistics.median(r["rps"] for r in runs)
    return {
        "target": name,
        "format": fmt,
        "mode": mode,
        "rps": rps,
        "rps_per_core": rps / cores,
        "rps_rounds": [r["rps"] for r in runs],
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "max_ms": max(r["max_ms"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "seconds": sum(r["seconds"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "ran_out": any(r["ran_out"] for r in runs),
        "mean_bytes": runs[0]["mean_bytes"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
    }


def add_ratios(rows: list[dict]) -> None:
    """Each row's requests/s over thumbor's (same format and mode) and over the floor's (same
    format; the floor has only cold), and a warm row's over its own cold."""
    by = {(r["target"], r["format"], r["mode"]): r["rps"] for r in rows}
    for r in rows:
        thumbor = by.get(("thumbor", r["format"], r["mode"]))
        floor = by.get(("floor", r["format"], "cold"))
        cold = by.get((r["target"], r["format"], "cold"))
        r["to_thumbor"] = r["rps"] / thumbor if thumbor else None
        r["to_floor"] = r["rps"] / floor if floor else None
        r["warm_to_cold"] = r["rps"] / cold if r["mode"] == "warm" and cold else None


def render(result: dict) -> str:
    c = result["config"]
    lines = [
        f"bench.delivery: {result['machine']['cores']} cores, {result['machine']['date']}; {c['sources']} sources "
        f"{c['source_size'][0]}x{c['source_size'][1]} JPEG q90 -> fit inside {c['fit_inside']} px q{c['quality']}; "
        f"wrk 1 thread, {c['connections']} connections, {c['duration_s']:g} s per run, {c['rounds']} round(s) "
        f"(medians); {c['processes_per_server']} processes per server; load average "
        f"{result['machine']['load_before'][0]:.1f} before, {result['machine']['load_after'][0]:.1f} after",
        "",
        "| target | format | mode | req/s | req/s per core | p50 ms | p99 ms | p99/p50 | errors "
        "| / thumbor | / floor | warm / cold | peak RSS MB | mean bytes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ratio(x: float | None) -> str:
        return f"{x:.2f}x" if x is not None else "—"

    for r in result["rows"]:
        note = " (fresh URLs ran out: req/s = connections / mean latency)" if r["ran_out"] else ""
        rounds = r["rps_rounds"]
        spread = f" ({min(rounds):.0f}-{max(rounds):.0f})" if len(rounds) > 1 else ""
        lines.append(
            f"| {r['target']} | {r['format']} | {r['mode']}{note} | {r['rps']:.1f}{spread} | {r['rps_per_core']:.1f} "
            f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['p99_ms'] / max(r['p50_ms'], 1e-9):.2f} | {r['errors']} "
            f"| {ratio(r['to_thumbor'])} | {ratio(r['to_floor'])} | {ratio(r['warm_to_cold'])} "
            f"| {r['peak_rss_mb']:.0f} | {r['mean_bytes']:,.0f} |"
        )
    for name, why in result["skipped"].items():
        lines.append(f"\n{name}: skipped: {why}")
    return "\n".join(lines)


@contextmanager
def _interrupts_unwind() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every server is stopped on the way out."""

    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=100)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of wrk per target, format and mode")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1, help="measure every row this many times, in turns: medians")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--processes", type=int, default=0, help="processes per server (default: one per core)")
    ap.add_argument(
        "--cold-urls",
        type=int,
        default=0,
        help="fresh PixelFlow URLs per format and round for a cold run (default: 30/s per core for --duration)",
    )
    ap.add_argument("--source-dir", type=Path, help="make the sources here, or reuse those already there")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pixelflow-delivery-"))
    os.chmod(work, 0o755)
    try:
        with _interrupts_unwind():
            result = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(render(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
