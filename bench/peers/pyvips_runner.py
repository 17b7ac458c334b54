"""PixelFlow's engine, or the floor, on one job. Run with the main venv from the repository root:
    python -m bench.peers.pyvips_runner {pixelflow|floor} JOB.json -> {"seconds": [...], "peak_rss": bytes}

The floor is what no implementation can beat with these codecs: the same shrink-on-load decode and
the same encodes, timed with nothing around them (each output's resize is done untimed)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def spec_for(outputs: list[dict]) -> dict:
    variants = []
    for o in outputs:
        resize = {"op": "resize", "width": o["width"], "fit": "inside"}
        if o.get("height"):
            resize |= {"height": o["height"], "fit": o.get("fit", "cover")}
        variant = {"id": o["id"], "steps": [resize], "format": o["format"]}
        if o["format"] in ("webp", "jpeg"):
            variant["quality"] = o["quality"]
        if o["format"] in ("webp", "png") and "effort" in o:
            variant["effort"] = o["effort"]
        if o.get("progressive"):
            variant["progressive"] = True
        variants.append(variant)
    return {"version": 1, "pipeline": variants}


def pixelflow(data: bytes, job: dict):
    from pipeline.dsl import decode_job_spec
    from pipeline.engine import process

    spec = decode_job_spec(spec_for(job["outputs"]))
    return lambda: [v.data for v in process(data, spec).variants]


def floor(data: bytes, job: dict):
    """PixelFlow's own decode (the planner's shrink-on-load choice) and the same encodes; each
    output's resize is done untimed, unless there is one output, which streams as PixelFlow's does."""
    from pipeline.compile import compile_plan
    from pipeline.dsl import Limits, decode_job_spec
    from pipeline.encode import encode
    from pipeline.load import decode, probe
    from pipeline.ops.resize import scale

    spec = decode_job_spec(spec_for(job["outputs"]))
    info = probe(data, Limits())
    plan = compile_plan(spec, info.width, info.height, source_format=info.format)
    sizes = [n.predicted_size for n in plan.nodes]
    variants = [n.variant for n in plan.nodes]
    decoded = decode(data, plan, auto_orient=True).copy_memory()
    resized = [scale(decoded, *size).copy_memory() for size in sizes]

    def once() -> list[bytes]:
        if len(variants) == 1:
            return [
                encode(scale(decode(data, plan, auto_orient=True), *sizes[0]), variants[0], variants[0].format).data
            ]
        decode(data, plan, auto_orient=True).copy_memory()
        return [encode(im, v, v.format).data for im, v in zip(resized, variants, strict=True)]

    return once


def main() -> None:
    try:
        from pipeline.sandbox import tune_malloc
    except ImportError:  # a --baseline checkout from before it was public
        from pipeline.sandbox import _tune_malloc as tune_malloc

    threads = 1 if os.environ.get("VIPS_CONCURRENCY") == "1" else None
    try:
        tune_malloc(threads)  # the heap settings an engine process with these threads runs with
    except TypeError:  # a --baseline checkout from before it took the thread count
        tune_malloc()
    mode, path = sys.argv[1], sys.argv[2]
    job = json.loads(Path(path).read_text())
    data = Path(job["source"]).read_bytes()
    run = {"pixelflow": pixelflow, "floor": floor}[mode](data, job)
    seconds, outputs = [], []
    for _ in range(job["iterations"]):
        t = time.perf_counter()
        outputs = run()
        seconds.append(time.perf_counter() - t)
    if job.get("out_dir"):
        for o, b in zip(job["outputs"], outputs, strict=True):
            Path(job["out_dir"], f"{o['id']}.{o['format']}").write_bytes(b)
    print(json.dumps({"seconds": seconds, "peak_rss": peak_rss()}))


def peak_rss() -> int:
    """VmHWM: this process's own high-water mark (ru_maxrss would carry the parent's across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    main()
