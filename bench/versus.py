"""PixelFlow's engine against sharp, Pillow-SIMD, Pillow and the floor, side by side in one run.

    bash bench/peers/setup.sh                      # once: sharp (npm), Pillow-SIMD (own venv), scikit-image
    .venv/bin/python -m bench.versus               # about 10 minutes on 2 cores
    .venv/bin/python -m bench.versus --quick       # smoke

Every implementation makes the same outputs (sizes, formats, qualities, WebP effort) from the same
source, in its own process, and each measurement interleaves the implementations round by round
so a noisy machine slows them alike. Reported per workload, medians over rounds (with the spread):

- **img/s, 2 procs x 1 thread**: two processes per implementation at once, one thread each
  (``VIPS_CONCURRENCY=1``, ``sharp.concurrency(1)``): what a 2-core worker machine sustains;
- **single job, default threads**: one process, seconds per job (first iteration dropped);
- **peak RSS** of the single-job process;
- **bytes and SSIM** of every output against the implementation's own pixels before encoding, so
  nobody wins by encoding worse (see ``quality``).

The floor is the same decode and encodes with nothing around them (``bench/peers/pyvips_runner.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "bench" / "peers"


@dataclass(frozen=True)
class Impl:
    name: str
    argv: list[str]  # the job file is appended
    env: tuple[tuple[str, str], ...] = ()

    @property
    def available(self) -> bool:
        return Path(self.argv[0]).exists() or (self.argv[0] == "node" and (PEERS / "node_modules" / "sharp").is_dir())


IMPLS = [
    Impl("pixelflow", [sys.executable, "-m", "bench.peers.pyvips_runner", "pixelflow"]),
    Impl("sharp", ["node", str(PEERS / "sharp_runner.mjs")]),
    Impl("pillow-simd", [str(ROOT / ".venv-pillow-simd" / "bin" / "python"), str(PEERS / "pillow_runner.py")]),
    Impl("pillow", [sys.executable, str(PEERS / "pillow_runner.py")]),
    Impl("floor", [sys.executable, "-m", "bench.peers.pyvips_runner", "floor"]),
]


def _responsive(widths: list[int]) -> list[dict]:
    return [
        {"id": f"{fmt}{w}", "width": w, "format": fmt, "quality": 80, **({"effort": 4} if fmt == "webp" else {})}
        for w in widths
        for fmt in ("webp", "jpeg")
    ]


WORKLOADS: dict[str, tuple[str, list[dict]]] = {
    "thumb": ("24mp.jpg", [{"id": "t", "width": 400, "format": "webp", "quality": 80, "effort": 4}]),
    "responsive": ("24mp.jpg", _responsive([320, 640, 960, 1280, 1920, 2560])),
    "alpha": (
        "12mp-alpha.png",
        [{"id": f"a{w}", "width": w, "format": "webp", "quality": 80, "effort": 4} for w in (2048, 1024, 400)],
    ),
    "responsive32": ("24mp.jpg", _responsive([160 * i for i in range(1, 17)])),
    # #15: an animated GIF kept animated, and an iPhone-sized HEIC
    "animated": ("anim.gif", [{"id": "a", "width": 240, "format": "webp", "quality": 80, "effort": 4}]),
    "heic": (
        "12mp.heic",
        [{"id": f"h{w}", "width": w, "format": "webp", "quality": 80, "effort": 4} for w in (2048, 1024, 400)],
    ),
}
# Who can run a workload (sharp's bundled libheif has no HEVC decoder; the floor and an engine
# from before #15 keep no animation); by default everyone.
RUNS_ONLY = {
    "animated": {"pixelflow", "sharp", "pillow-simd", "pillow"},
    "heic": {"pixelflow", "pillow-simd", "pillow", "floor"},
}
THROUGHPUT_SKIP = {"responsive32"}  # the issue measures it as a single job


def make_corpus(folder: Path, quick: bool) -> dict[str, tuple[Path, int, int]]:
    from devstack.imagegen import encode, photo

    scale = 0.25 if quick else 1.0
    made = {}
    for name, (w, h), alpha, suffix, opts in (
        ("24mp.jpg", (6000, 4000), False, ".jpg", {"Q": 90}),
        ("12mp-alpha.png", (4000, 3000), True, ".png", {"compression": 6}),
    ):
        sw, sh = int(w * scale), int(h * scale)
        path = folder / name
        path.write_bytes(encode(photo(sw, sh, seed=5, alpha=alpha), suffix, **opts))
        made[name] = (path, sw, sh)
    made["anim.gif"] = _animation(folder / "anim.gif", 480, 270, frames=6 if quick else 24)
    made["12mp.heic"] = _heic(folder / "12mp.heic", int(4000 * scale), int(3000 * scale))
    return made


def _animation(path: Path, width: int, height: int, frames: int) -> tuple[Path, int, int]:
    """A camera pan across a photo, 10 fps, as GIFs on the web are."""
    import pyvips

    from devstack.imagegen import photo

    wide = photo(width * 2, height, seed=9)
    strip = pyvips.Image.arrayjoin([wide.crop(i * width // frames, 0, width, height) for i in range(frames)], across=1)
    strip = strip.copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [100] * frames)
    path.write_bytes(strip.gifsave_buffer())
    return path, width, height


def _heic(path: Path, width: int, height: int) -> tuple[Path, int, int]:
    """An iPhone-like HEIC (quality 90), made with pillow-heif's x265 encoder."""
    import io

    import pillow_heif
    from PIL import Image

    from devstack.imagegen import photo

    pixels = Image.frombytes("RGB", (width, height), photo(width, height, seed=5).write_to_memory())
    out = io.BytesIO()
    pillow_heif.from_pillow(pixels).save(out, quality=90)
    path.write_bytes(out.getvalue())
    return path, width, height


def run_one(impl: Impl, job: dict, folder: Path, *, threads: int | None) -> dict:
    path = folder / f"job-{impl.name}-{time.time_ns()}.json"
    path.write_text(json.dumps(job))
    env = dict(os.environ) | dict(impl.env)
    if threads == 1:
        env |= {"VIPS_CONCURRENCY": "1", "PEER_THREADS": "1", "UV_THREADPOOL_SIZE": "1"}
    else:
        env.pop("VIPS_CONCURRENCY", None)
    out = subprocess.run([*impl.argv, str(path)], env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{impl.name} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def throughput(impl: Impl, job: dict, folder: Path) -> tuple[float, int]:
    """Images per second of two single-threaded processes running at once, and their peak RSS."""
    path = folder / f"tp-{impl.name}-{time.time_ns()}.json"
    path.write_text(json.dumps(job))
    env = {**os.environ, **dict(impl.env), "VIPS_CONCURRENCY": "1", "PEER_THREADS": "1", "UV_THREADPOOL_SIZE": "1"}
    procs = [subprocess.Popen([*impl.argv, str(path)], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]  # fmt: skip
    rate, rss = 0.0, 0
    for p in procs:
        stdout, stderr = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"{impl.name} failed: {stderr[-2000:]}")
        result = json.loads(stdout.strip().splitlines()[-1])
        seconds = result["seconds"][1:]  # the first warms up
        rate += len(seconds) / sum(seconds)
        rss = max(rss, result["peak_rss"])
    return rate, rss


def quality(lossy: dict[str, Path], lossless: dict[str, Path]) -> float:
    """Mean SSIM (luminance, flattened on white) of each encoded output against the same
    implementation's own pixels before encoding (the job run again with every output as PNG).
    This isolates what the encoder lost at its size: SSIM against one shared reference would
    mostly measure how alike two resamplers are (each library scores best against its own)."""
    import numpy as np
    import pyvips
    from skimage.metrics import structural_similarity

    def grey(path: Path) -> np.ndarray:
        image = pyvips.Image.new_from_file(str(path))
        if image.hasalpha():
            image = image.flatten(background=[255] * (image.bands - 1))
        return image.colourspace("b-w").extract_band(0).numpy()

    return float(
        statistics.mean(structural_similarity(grey(lossy[k]), grey(lossless[k]), data_range=255) for k in lossy)
    )


def spread(values: list[float]) -> str:
    return f"{min(values):.3g} to {max(values):.3g}" if len(values) > 1 else ""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--baseline", type=Path, metavar="DIR",
                    help="also run PixelFlow's engine from this checkout (git worktree add DIR REV)")  # fmt: skip
    ap.add_argument("--only", help="comma-separated implementations to run (default: all installed)")
    args = ap.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    iterations = 2 if args.quick else 6
    candidates = list(IMPLS)
    if args.baseline:
        base = args.baseline.resolve()
        # this tree's runner, importing `pipeline` from the baseline checkout ahead of this one
        runner = [sys.executable, str(PEERS / "pyvips_runner.py"), "pixelflow"]
        candidates.insert(1, Impl(f"pixelflow@{base.name}", runner, (("PYTHONPATH", str(base)),)))
    if args.only:
        keep = set(args.only.split(",")) | {"pixelflow"}
        candidates = [i for i in candidates if i.name in keep or i.name.startswith("pixelflow@")]
    all_impls = [i for i in candidates if i.available]
    missing = [i.name for i in candidates if not i.available]
    folder = Path(tempfile.mkdtemp(prefix="pixelflow-versus-"))
    corpus = make_corpus(folder, args.quick)
    report = [
        f"bench.versus: {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, {rounds} rounds x {iterations} iterations"
        + (f"; not installed: {', '.join(missing)} (bash bench/peers/setup.sh)" if missing else "")
    ]
    for wname in args.workloads.split(","):
        source_name, outputs = WORKLOADS[wname]
        path, sw, sh = corpus[source_name]
        job = {"source": str(path), "source_width": sw, "source_height": sh, "outputs": outputs,
               "iterations": iterations, "animated": wname == "animated"}  # fmt: skip
        runs_only = RUNS_ONLY.get(wname)
        impls = [i for i in all_impls if runs_only is None or i.name in runs_only]
        latency: dict[str, list[float]] = {i.name: [] for i in impls}
        rates: dict[str, list[float]] = {i.name: [] for i in impls}
        rss: dict[str, int] = {i.name: 0 for i in impls}
        rss_one: dict[str, int] = {i.name: 0 for i in impls}  # one thread: a worker's configuration
        for r in range(rounds):
            order = impls[r % len(impls) :] + impls[: r % len(impls)]  # rotate who goes first
            for impl in order:
                res = run_one(impl, job, folder, threads=None)
                latency[impl.name].append(statistics.median(res["seconds"][1:]))
                rss[impl.name] = max(rss[impl.name], res["peak_rss"])
                if wname not in THROUGHPUT_SKIP:
                    rate, peak = throughput(impl, job, folder)
                    rates[impl.name].append(rate)
                    rss_one[impl.name] = max(rss_one[impl.name], peak)
        sizes: dict[str, int] = {}
        ssim: dict[str, float] = {}
        lossless_outputs = [{k: v for k, v in o.items() if k not in ("quality", "effort")} | {"format": "png", "effort": 1}
                            for o in outputs]  # fmt: skip
        for impl in impls:
            made = {}
            for tag, outs in (("lossy", outputs), ("png", lossless_outputs)):
                out_dir = folder / f"out-{wname}-{impl.name}-{tag}"
                out_dir.mkdir()
                run_one(impl, {**job, "outputs": outs, "iterations": 1, "out_dir": str(out_dir)}, folder, threads=None)
                made[tag] = {o["id"]: out_dir / f"{o['id']}.{o['format']}" for o in outs}
            sizes[impl.name] = sum(f.stat().st_size for f in made["lossy"].values())
            ssim[impl.name] = quality(made["lossy"], made["png"])
        report.append(render(wname, source_name, outputs, impls, latency, rates, (rss_one, rss), sizes, ssim))
    print("\n\n".join(report))
    return 0


def render(wname, source_name, outputs, impls, latency, rates, rss, sizes, ssim) -> str:
    lines = [
        f"### `{wname}`: {source_name} -> {len(outputs)} output(s)",
        "",
        "| implementation | img/s, 2 procs x 1 thread | single job, default threads "
        "| peak RSS, 1 thread / default | bytes | SSIM |",
        "|---|---|---|---|---|---|",
    ]
    for impl in impls:
        n = impl.name
        rate = f"{statistics.median(rates[n]):.2f} ({spread(rates[n])})" if rates[n] else "—"
        lat = f"{statistics.median(latency[n]) * 1000:.0f} ms ({spread([x * 1000 for x in latency[n]])})"
        one = f"{rss[0][n] / 2**20:.0f}" if rss[0][n] else "—"
        lines.append(f"| {n} | {rate} | {lat} | {one} / {rss[1][n] / 2**20:.0f} MB | {sizes[n]:,} | {ssim[n]:.4f} |")
    pf = "pixelflow"
    peers = [n for n in ("sharp", "pillow-simd") if n in latency]
    if peers and rates[pf]:
        best = max(peers, key=lambda n: statistics.median(rates[n]))
        ratio = statistics.median(rates[pf]) / statistics.median(rates[best])
        lines.append(f"\nPixelFlow / best peer ({best}) per core: **{ratio:.2f}x**")
    if peers:
        fastest = min(peers, key=lambda n: statistics.median(latency[n]))
        lines.append(
            f"PixelFlow single-job speed / {fastest}: "
            f"**{statistics.median(latency[fastest]) / statistics.median(latency[pf]):.2f}x**"
        )
    if "floor" in latency and rates.get("floor"):
        lines.append(
            f"PixelFlow / floor per core: {statistics.median(rates[pf]) / statistics.median(rates['floor']):.2f}x"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
