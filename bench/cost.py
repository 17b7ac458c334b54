"""Calibrate the planner's cost weights (decoders and encoders in `pipeline/cost.py`, each op's on
its struct in `pipeline/dsl/steps.py`): CPU milliseconds per megapixel on one core, as deployed
(VIPS_CONCURRENCY=1).

    VIPS_CONCURRENCY=1 .venv/bin/python -m bench.cost          # about two minutes on 2 cores

Each figure is the median CPU time of three runs over a photo-like image (devstack.imagegen.photo),
divided by the megapixels the planner charges for it: an op's output (its input for
resize, which reads every input pixel), a decoder's decoded pixels, an encoder's input.
"""

from __future__ import annotations

import os
import resource
import statistics
from collections.abc import Callable

import pyvips

from devstack.imagegen import photo
from pipeline.dsl import Limits
from pipeline.dsl.steps import Watermark
from pipeline.ops import OpContext, apply_step


def cpu_ms(work: Callable[[], object], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_SELF)
        work()
        after = resource.getrusage(resource.RUSAGE_SELF)
        times.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    return statistics.median(times)


def row(name: str, ms: float, megapixels: float) -> None:
    print(f"{name:32s} {ms:9.1f} ms  {ms / megapixels:9.1f} ms/MP")


def main() -> None:
    pyvips.cache_set_max(0)
    print(
        f"libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}, "
        f"VIPS_CONCURRENCY={os.environ.get('VIPS_CONCURRENCY', '(unset)')}"
    )
    w, h = 2000, 1500
    mp = w * h / 1e6
    img = photo(w, h, seed=4)
    ctx = OpContext(limits=Limits())
    sink = lambda i: i.copy_memory()  # noqa: E731 - the cheapest way to compute every pixel
    base = cpu_ms(lambda: sink(img.copy()))
    row("copy (baseline, subtracted)", base, mp)

    print("-- ops (per output MP; resize per input MP)")
    ops: list[tuple[str, Callable[[], pyvips.Image], float]] = [
        ("resize 0.5", lambda: img.resize(0.5), mp),
        ("resize 0.25", lambda: img.resize(0.25), mp),
        ("resize 2.0 (per output MP)", lambda: img.resize(2.0), mp * 4),
        ("crop", lambda: img.extract_area(10, 10, w // 2, h // 2), mp / 4),
        ("smartcrop attention", lambda: img.smartcrop(w // 2, h // 2, interesting="attention"), mp),
        ("smartcrop entropy", lambda: img.smartcrop(w // 2, h // 2, interesting="entropy"), mp),
        ("rotate 90", lambda: img.rot("d90"), mp),
        ("rotate 30", lambda: img.rotate(30), mp * 1.55),
        ("flip", lambda: img.flip("vertical"), mp),
        ("blur sigma 1", lambda: img.gaussblur(1).cast("uchar"), mp),
        ("blur sigma 5", lambda: img.gaussblur(5).cast("uchar"), mp),
        ("blur sigma 20", lambda: img.gaussblur(20).cast("uchar"), mp),
        ("sharpen sigma 1", lambda: img.sharpen(sigma=1), mp),
        ("sharpen sigma 5", lambda: img.sharpen(sigma=5), mp),
        ("grayscale", lambda: img.colourspace("b-w"), mp),
        (
            "modulate",
            lambda: (img.colourspace("lch") * [1.1, 1.2, 1] + [0, 0, 30]).colourspace("srgb").cast("uchar"),
            mp,
        ),
        ("pad", lambda: img.embed(50, 50, w + 100, h + 100, extend="background"), mp),
        ("watermark text", lambda: apply_step(img, Watermark(text="(c) ACME", font_size=48), ctx), mp),
    ]
    for name, op, charged in ops:
        row(name, cpu_ms(lambda op=op: sink(op())) - base, charged)

    print("-- decoders (per decoded MP)")
    big = photo(4000, 3000, seed=5)
    jpg = big.write_to_buffer(".jpg", Q=90)
    for shrink in (1, 2, 4, 8):
        ms = cpu_ms(lambda s=shrink: pyvips.Image.new_from_buffer(jpg, "", shrink=s).copy_memory())
        row(f"jpeg 12 MP shrink {shrink}", ms, 12 / shrink**2)
    for suffix, opts in [(".png", {"compression": 6}), (".webp", {"Q": 90}), (".tif", {}), (".avif", {"effort": 0})]:
        data = img.write_to_buffer(suffix, **opts)
        row(f"{suffix[1:]} 3 MP", cpu_ms(lambda d=data: pyvips.Image.new_from_buffer(d, "").copy_memory()), mp)

    print("-- encoders (per input MP)")
    small = photo(800, 600, seed=6)
    smp = 0.48
    row("jpeg q80", cpu_ms(lambda: img.write_to_buffer(".jpg", Q=80, optimize_coding=True)), mp)
    row("tiff deflate", cpu_ms(lambda: img.write_to_buffer(".tif", compression="deflate")), mp)
    for e in range(10):
        row(f"png effort {e}", cpu_ms(lambda e=e: img.write_to_buffer(".png", compression=e)), mp)
    for e in range(7):
        row(f"webp effort {e}", cpu_ms(lambda e=e: img.write_to_buffer(".webp", Q=80, effort=e)), mp)
    for e in range(7):
        row(
            f"webp lossless effort {e}",
            cpu_ms(lambda e=e: small.write_to_buffer(".webp", lossless=True, effort=e), 1),
            smp,
        )
    for e in range(1, 11):
        row(f"gif effort {e}", cpu_ms(lambda e=e: small.write_to_buffer(".gif", effort=e), 1), smp)
    for e in range(10):
        row(f"avif effort {e}", cpu_ms(lambda e=e: small.write_to_buffer(".avif", Q=50, effort=e), 1), smp)
    row("avif lossless effort 2", cpu_ms(lambda: small.write_to_buffer(".avif", lossless=True, effort=2), 1), smp)
    from pipeline.jxl import encode_jxl

    for e in range(1, 10):
        row(f"jxl effort {e}", cpu_ms(lambda e=e: encode_jxl(small, quality=80, effort=e, lossless=False), 1), smp)
    for e in range(1, 10):
        row(f"jxl lossless effort {e}", cpu_ms(lambda e=e: encode_jxl(small, quality=None, effort=e, lossless=True), 1),
            smp)  # fmt: skip


if __name__ == "__main__":
    main()
