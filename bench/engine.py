"""Engine benchmark: PixelFlow vs hand-written pyvips (naive and careful) vs Pillow, same outputs,
compared side by side in one run.

    .venv/bin/python -m bench.engine            # full run (a few minutes on 2 cores)
    .venv/bin/python -m bench.engine --quick    # smoke: tiny input, one repeat

Reports, per workload: median seconds per source image (interleaved repeats), images/s with 1
and 2 worker processes (VIPS_CONCURRENCY=1, as deployed), peak RSS of a fresh process on the
24 MP source, and output bytes. Ratios are PixelFlow's speed over each alternative's.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.workloads import IMPLS, WORKLOADS

ROOT = Path(__file__).resolve().parents[1]

CORPUS = [  # name, width, height, suffix, options
    ("24mp.jpg", 6000, 4000, ".jpg", {"Q": 90}),
    ("12mp.jpg", 4000, 3000, ".jpg", {"Q": 90}),
    ("1080p.jpg", 1920, 1080, ".jpg", {"Q": 90}),
    ("12mp.png", 4000, 3000, ".png", {"compression": 6}),
    ("6mp.webp", 3000, 2000, ".webp", {"Q": 90}),
]
QUICK_CORPUS = [("small.jpg", 640, 480, ".jpg", {"Q": 90})]


def make_corpus(folder: Path, quick: bool) -> list[Path]:
    from devstack.imagegen import encode, photo

    paths = []
    for seed, (name, w, h, suffix, opts) in enumerate(QUICK_CORPUS if quick else CORPUS, 1):
        path = folder / name
        path.write_bytes(encode(photo(w, h, seed=seed), suffix, **opts))
        paths.append(path)
    return paths


def check_outputs_match(paths: list[Path]) -> None:
    """Every implementation must produce the same variants at the same sizes."""
    import pyvips

    data = paths[0].read_bytes()
    for wname, spec in WORKLOADS.items():
        shapes = {}
        for name, impl in IMPLS.items():
            outs = impl.run(data, spec)
            shapes[name] = [(im.width, im.height) for im in (pyvips.Image.new_from_buffer(o, "") for o in outs)]
        ref = shapes["pixelflow"]
        for name, got in shapes.items():
            if got != ref:
                raise SystemExit(f"{wname}: {name} produced {got}, PixelFlow {ref}")


def latency(paths: list[Path], repeats: int) -> dict:
    """Median seconds per image for every (workload, impl), repeats interleaved across impls."""
    sources = [p.read_bytes() for p in paths]
    results: dict = {}
    for wname, spec in WORKLOADS.items():
        times: dict[str, list[float]] = {n: [] for n in IMPLS}
        sizes: dict[str, int] = {}
        for name, impl in IMPLS.items():  # warm-up: imports, libvips caches, fonts
            sizes[name] = sum(len(b) for b in impl.run(sources[0], spec))
        for _ in range(repeats):
            for name, impl in IMPLS.items():
                per_source = []
                for data in sources:
                    t = time.perf_counter()
                    impl.run(data, spec)
                    per_source.append(time.perf_counter() - t)
                times[name].append(statistics.mean(per_source))
        results[wname] = {
            n: {"median_s": statistics.median(v), "bytes_first_source": sizes[n]} for n, v in times.items()
        }
    return results


def _init_worker() -> None:
    import pyvips

    pyvips.concurrency_set(1)


def _one(args: tuple[str, str, bytes]) -> None:
    name, wname, data = args
    IMPLS[name].run(data, WORKLOADS[wname])


def throughput(paths: list[Path], rounds: int) -> dict:
    sources = [p.read_bytes() for p in paths]
    out: dict = {}
    for wname in WORKLOADS:
        out[wname] = {}
        for name in IMPLS:
            out[wname][name] = {}
            for procs in (1, 2):
                tasks = [(name, wname, d) for _ in range(rounds) for d in sources]
                # spawn, not fork: a forked child inherits libvips' thread pool in a locked state
                with ProcessPoolExecutor(
                    procs, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
                ) as pool:
                    list(pool.map(_one, tasks[:procs]))  # start-up and warm-up outside the timing
                    t = time.perf_counter()
                    list(pool.map(_one, tasks))
                    out[wname][name][procs] = len(tasks) / (time.perf_counter() - t)
    return out


def peak_rss(path: Path) -> dict:
    """Peak RSS (MB) of a fresh process running one workload once on ``path``."""
    out: dict = {}
    for wname in WORKLOADS:
        out[wname] = {}
        for name in IMPLS:
            code = (
                # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the parent
                f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bench.workloads import IMPLS, WORKLOADS; "
                f"IMPLS[{name!r}].run(open({str(path)!r}, 'rb').read(), WORKLOADS[{wname!r}]); "
                "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
            )
            env = {**os.environ, "VIPS_CONCURRENCY": "1"}
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
            out[wname][name] = int(res.stdout.strip()) / 1024
    return out


THUMBOR_PYTHON = ROOT / ".venv-thumbor" / "bin" / "python"


def thumbor(paths: list[Path], repeats: int) -> dict | None:
    """thumbor's engine on workload `one` (its own venv: bench/setup-thumbor.sh), or None if absent."""
    if not THUMBOR_PYTHON.exists():
        return None
    runs = []
    for _ in range(repeats):
        res = subprocess.run(
            [str(THUMBOR_PYTHON), str(ROOT / "bench" / "thumbor_runner.py"), *map(str, paths)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(res.stdout))
    return {
        "median_s": statistics.median(r["mean_s"] for r in runs),
        "bytes_first_source": runs[0]["bytes"],
        "rss_mb": max(r["rss_mb"] for r in runs),
    }


def report(lat: dict, thr: dict, rss: dict, machine: str, thumbor_one: dict | None = None) -> str:
    lines = [f"Machine: {machine}", ""]
    for wname in WORKLOADS:
        pf = lat[wname]["pixelflow"]["median_s"]
        lines += [
            f"### workload `{wname}`",
            "",
            "| implementation | median s/image | PixelFlow speed-up | images/s, 1 proc | images/s, 2 procs | peak RSS MB | output bytes |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in IMPLS:
            m = lat[wname][name]["median_s"]
            lines.append(
                f"| {name} | {m:.3f} | {m / pf:.2f}x | {thr[wname][name][1]:.2f} | {thr[wname][name][2]:.2f} | "
                f"{rss[wname][name]:.0f} | {lat[wname][name]['bytes_first_source']:,} |"
            )
        if wname == "one" and thumbor_one is not None:
            m = thumbor_one["median_s"]
            lines.append(
                f"| thumbor 7.8 (PIL engine) | {m:.3f} | {m / pf:.2f}x | — | — | {thumbor_one['rss_mb']:.0f} | "
                f"{thumbor_one['bytes_first_source']:,} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run on a tiny image")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2, help="passes over the corpus for throughput")
    ap.add_argument("--json", type=Path, help="also write raw results here")
    ap.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), help="run only these workloads")
    args = ap.parse_args(argv)
    repeats, rounds = (1, 1) if args.quick else (args.repeats, args.rounds)
    for name in set(WORKLOADS) - set(args.workloads or WORKLOADS):
        del WORKLOADS[name]
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_corpus(Path(tmp), args.quick)
        check_outputs_match(paths)
        lat = latency(paths, repeats)
        thr = throughput(paths, rounds)
        rss = peak_rss(paths[0])
        thumbor_one = thumbor(paths, repeats) if "one" in WORKLOADS else None
    import platform

    import pyvips

    machine = f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}, libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
    text = report(lat, thr, rss, machine, thumbor_one)
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"latency": lat, "throughput": thr, "peak_rss_mb": rss, "thumbor_one": thumbor_one, "machine": machine},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
