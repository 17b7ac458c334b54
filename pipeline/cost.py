"""What a job will cost before any pixel is read: the planner's estimate of its CPU work.

One cost unit is about one millisecond of one core of the reference machine. The weights below
are CPU milliseconds per megapixel measured there by ``VIPS_CONCURRENCY=1 python -m bench.cost``
(libvips 8.18.7, AMD EPYC, one libvips thread as the workers run; medians of 3 runs over
``tests.imagegen.photo``, 3 MP for ops and fast encoders, 0.5 MP for the slow ones; two runs'
figures rounded together). That image is grain-heavy on purpose: smooth photos encode up to 3x
faster at high AVIF/WebP efforts (AVIF effort 6: 3.6 s/MP smooth, 9.7 s/MP grainy), so the
estimate leans high and the default budget leaves room for that. Checked against
``bench.engine`` (one process, mean over its five sources): workloads one, three and eight are
estimated at 66, 439 and 489 against 149, 463 and 515 ms measured; fixed per-image overhead is
left out.

Pure arithmetic: the API prices specs with it, so it never imports libvips.
"""

from __future__ import annotations

from pipeline.geometry import resize_plan
from pipeline.spec.steps import (
    Blur,
    Crop,
    Flip,
    Flop,
    Grayscale,
    Modulate,
    Pad,
    Resize,
    Rotate,
    Sharpen,
    StepBase,
    Watermark,
)
from pipeline.spec.variant import EFFORT_RANGE, Variant, effective_effort

__all__ = ["ENCODE_MS_PER_MP", "OP_MS_PER_MP", "decode_cost", "encode_cost", "step_cost"]

# ms per megapixel. Ops are charged per output megapixel unless the key says otherwise.
OP_MS_PER_MP: dict[str, float] = {
    # Decoding entropy-decodes every source pixel even when JPEG's DCT scaling shrinks on load
    # (12 MP JPEG: 112 ms at full size, 39 ms at 1/8), then pays per decoded pixel. PNG, WebP and
    # AVIF decode the whole source at 13, 32 and 35 ms/MP; at the 100 MP cap that is seconds,
    # small next to encoding, so one JPEG-shaped rate stands for all.
    "decode.source": 3,
    "decode.decoded": 6,
    "resize.reduce": 3.5,  # per input MP: shrinking reads every input pixel once
    "resize.enlarge": 38,  # per output MP: upscaling interpolates each output pixel (lanczos3)
    "smartcrop.attention": 3,  # per MP searched
    "smartcrop.entropy": 15,
    "rotate.right_angle": 5,
    "rotate.any": 17,  # affine with interpolation
    "flip": 0.5,
    "crop": 0,  # a view into its input
    "blur": 1.8,  # + blur.per_sigma x sigma: the separable mask grows with sigma (sigma 1: 2.2, 20: 12)
    "blur.per_sigma": 0.5,
    "sharpen": 77,  # + sharpen.per_sigma x sigma; runs in LabS, hence the base (sigma 1: 83, 5: 105)
    "sharpen.per_sigma": 6,
    "grayscale": 5.5,
    "modulate": 55,  # through LCh and back
    "pad": 1,
    "watermark": 4,  # composited over the whole image
}

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
}
_AVIF_LOSSLESS = 2.5


def _mp(size: tuple[int, int]) -> float:
    return size[0] * size[1] / 1e6


def decode_cost(source: tuple[int, int], decoded: tuple[int, int]) -> float:
    return OP_MS_PER_MP["decode.source"] * _mp(source) + OP_MS_PER_MP["decode.decoded"] * _mp(decoded)


def _smart(gravity: str, size: tuple[int, int]) -> float:
    return OP_MS_PER_MP[f"smartcrop.{gravity}"] * _mp(size) if gravity in ("attention", "entropy") else 0.0


def step_cost(step: StepBase, before: tuple[int, int], after: tuple[int, int]) -> float:
    """The work of ``step`` taking a ``before`` image to ``after`` (both from ``geometry``)."""
    w = OP_MS_PER_MP
    if isinstance(step, Resize):
        plan = resize_plan(step, *before)
        enlarging = _mp(plan.scaled) > _mp(before)
        work = w["resize.enlarge"] * _mp(plan.scaled) if enlarging else w["resize.reduce"] * _mp(before)
        if step.fit == "contain":
            work += w["pad"] * _mp(after)
        return work + _smart(step.gravity, plan.scaled)
    if isinstance(step, Crop):
        return _smart(step.gravity, before)
    if isinstance(step, Rotate):
        return w["rotate.right_angle" if step.right_angle else "rotate.any"] * _mp(after)
    if isinstance(step, Flip | Flop):
        return w["flip"] * _mp(after)
    if isinstance(step, Blur):
        return (w["blur"] + w["blur.per_sigma"] * step.sigma) * _mp(after)
    if isinstance(step, Sharpen):
        return (w["sharpen"] + w["sharpen.per_sigma"] * step.sigma) * _mp(after)
    if isinstance(step, Grayscale | Modulate | Pad | Watermark):
        return w[type(step).__struct_config__.tag] * _mp(after)  # type: ignore[index]
    raise TypeError(f"no cost for {type(step).__name__}")  # pragma: no cover - a new op needs a weight


def encode_cost(variant: Variant, fmt: str, size: tuple[int, int]) -> float:
    """Encoding ``size`` pixels as ``fmt`` with the variant's options."""
    if fmt == "tiff" and variant.quality is not None:
        fmt = "jpeg"  # tiff with a quality is JPEG-compressed
    effort = effective_effort(variant, fmt)
    key = f"{fmt}.lossless" if fmt == "webp" and variant.lossless else fmt
    rates = ENCODE_MS_PER_MP[key]
    rate = rates[0] if effort is None else rates[effort - EFFORT_RANGE[fmt][0]]
    if fmt == "avif" and variant.lossless:
        rate *= _AVIF_LOSSLESS
    return rate * _mp(size)
