"""What a job will cost before any pixel is read: the planner's estimate of its CPU work.

One cost unit is about one millisecond of one core of the reference machine. The weights (below,
and each op's on its step struct) are CPU milliseconds per megapixel measured there by ``VIPS_CONCURRENCY=1 python -m bench.cost``
(libvips 8.18.7, AMD EPYC, one libvips thread as the workers run; medians of 3 runs over
``devstack.imagegen.photo``, 3 MP for ops and fast encoders, 0.5 MP for the slow ones; two runs'
figures rounded together). That image is grain-heavy on purpose: smooth photos encode up to 3x
faster at high AVIF/WebP efforts (AVIF effort 6: 3.6 s/MP smooth, 9.7 s/MP grainy), so the
estimate leans high and the default budget leaves room for that. Checked against
``bench.engine`` (one process, mean over its five sources): workloads one, three and eight are
estimated at 66, 439 and 489 against 149, 463 and 515 ms measured; fixed per-image overhead is
left out.

Pure arithmetic: the API prices specs with it, so it never imports libvips.
"""

from __future__ import annotations

from pipeline.dsl.variant import EFFORT_RANGE, MAX_BYTES_ENCODES, Variant, effective_effort
from pipeline.geometry import megapixels

__all__ = ["DECODE_MS_PER_MP", "ENCODE_MS_PER_MP", "decode_cost", "encode_cost"]

# ms per megapixel. Decoding entropy-decodes every source pixel even when JPEG's DCT scaling
# shrinks on load (12 MP JPEG: 112 ms at full size, 39 ms at 1/8), then pays per decoded pixel.
# PNG, WebP and AVIF decode the whole source at 13, 32 and 35 ms/MP; at the 100 MP cap that is
# seconds, small next to encoding, so one JPEG-shaped rate stands for all. Each op's weights are
# class attributes of its step struct (``pipeline/dsl/steps.py``), its cost is ``step.cost``.
DECODE_MS_PER_MP: dict[str, float] = {"source": 3, "decoded": 6}

# Encoders: ms per output MP, indexed by effort from the bottom of the format's EFFORT_RANGE
# (one entry for formats without effort). Lossless AVIF measured 2.5x lossy at effort 2 and is
# scaled by that at every effort; jpeg-in-tiff (tiff with `quality`) costs what jpeg does.
ENCODE_MS_PER_MP: dict[str, tuple[float, ...]] = {
    "jpeg": (11.5,),
    "tiff": (42,),
    "png": (2.3, 20.5, 32, 35, 42, 47, 38, 38, 39, 67),
    "webp": (30, 41, 52, 104, 117, 134, 364),
    "webp.lossless": (51, 324, 403, 602, 786, 1300, 1190),
    "gif": (367, 505, 371, 654, 1342, 2659, 3267, 4119, 4998, 5549),
    "avif": (54, 88, 245, 595, 2549, 2836, 9471, 17552, 22525, 39460),
    "jxl": (49, 38, 44, 36, 204, 368, 381, 1771, 2284),
    "jxl.lossless": (5, 68, 133, 323, 444, 541, 820, 3473, 5837),
}
_AVIF_LOSSLESS = 2.5


def decode_cost(source: tuple[int, int], decoded: tuple[int, int]) -> float:
    return DECODE_MS_PER_MP["source"] * megapixels(source) + DECODE_MS_PER_MP["decoded"] * megapixels(decoded)


def encode_cost(variant: Variant, fmt: str, size: tuple[int, int]) -> float:
    """Encoding ``size`` pixels as ``fmt`` with the variant's options."""
    if fmt == "tiff" and variant.quality is not None:
        fmt = "jpeg"  # tiff with a quality is JPEG-compressed
    effort = effective_effort(variant, fmt)
    key = f"{fmt}.lossless" if fmt in ("webp", "jxl") and variant.lossless else fmt
    rates = ENCODE_MS_PER_MP[key]
    rate = rates[0] if effort is None else rates[effort - EFFORT_RANGE[fmt][0]]
    if fmt == "avif" and variant.lossless:
        rate *= _AVIF_LOSSLESS
    if variant.max_bytes is not None:  # the worst case: every encode of the search
        rate *= MAX_BYTES_ENCODES
    return rate * megapixels(size)
