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

from pipeline.dsl.variant import MAX_BYTES_ENCODES, Variant, effective_effort
from pipeline.formats import FORMATS
from pipeline.geometry import megapixels

__all__ = ["DECODE_MS_PER_MP", "decode_cost", "encode_cost"]

# ms per megapixel. Decoding entropy-decodes every source pixel even when JPEG's DCT scaling
# shrinks on load (12 MP JPEG: 112 ms at full size, 39 ms at 1/8), then pays per decoded pixel.
# PNG, WebP and AVIF decode the whole source at 13, 32 and 35 ms/MP; at the 100 MP cap that is
# seconds, small next to encoding, so one JPEG-shaped rate stands for all. Each op's weights are
# class attributes of its step struct (``pipeline/dsl/steps.py``), its cost is ``step.cost``.
DECODE_MS_PER_MP: dict[str, float] = {"source": 3, "decoded": 6}

# Encoders: ms per output MP, each format's ``ms_per_mp`` in pipeline/formats.py, indexed by effort
# from the bottom of its range. Lossless AVIF measured 2.5x lossy at effort 2 and is scaled by that
# at every effort (its ``lossless_factor``); jpeg-in-tiff (tiff with `quality`) costs what jpeg does.


def decode_cost(source: tuple[int, int], decoded: tuple[int, int]) -> float:
    return DECODE_MS_PER_MP["source"] * megapixels(source) + DECODE_MS_PER_MP["decoded"] * megapixels(decoded)


def encode_cost(variant: Variant, fmt: str, size: tuple[int, int]) -> float:
    """Encoding ``size`` pixels as ``fmt`` with the variant's options."""
    f = FORMATS[fmt]
    if f.quality_as is not None and variant.quality is not None:
        f = FORMATS[f.quality_as]  # tiff with a quality is JPEG-compressed
    effort = effective_effort(variant, f.name)
    rates = f.lossless_ms_per_mp if variant.lossless and f.lossless_ms_per_mp is not None else f.ms_per_mp
    rate = rates[0] if effort is None or f.effort is None else rates[effort - f.effort.lo]
    if variant.lossless:
        rate *= f.lossless_factor
    if variant.max_bytes is not None:  # the worst case: every encode of the search
        rate *= MAX_BYTES_ENCODES
    return rate * megapixels(size)
