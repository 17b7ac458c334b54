"""libvips implementations of the DSL's ops, dispatched only through ``REGISTRY``.

Each op lives in its own module as ``apply(image, step, ctx) -> image``; it builds lazy libvips
operations and never evaluates pixels itself (the engine decides when to materialise).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyvips

from pipeline.dsl import steps
from pipeline.ops import blur, crop, flip, grayscale, modulate, pad, resize, rotate, sharpen, watermark
from pipeline.ops.context import AssetResolver, OpContext

__all__ = ["REGISTRY", "AssetResolver", "OpContext", "apply_step"]

# Any: each op takes its own step class, the one it is registered under (a dict cannot say so)
Op = Callable[[pyvips.Image, Any, OpContext], pyvips.Image]

REGISTRY: dict[type[steps.StepBase], Op] = {
    steps.Resize: resize.apply,
    steps.Crop: crop.apply,
    steps.Rotate: rotate.apply,
    steps.Flip: flip.apply_flip,
    steps.Flop: flip.apply_flop,
    steps.Blur: blur.apply,
    steps.Sharpen: sharpen.apply,
    steps.Grayscale: grayscale.apply,
    steps.Modulate: modulate.apply,
    steps.Pad: pad.apply,
    steps.Watermark: watermark.apply,
}


def apply_step(image: pyvips.Image, step: steps.StepBase, ctx: OpContext) -> pyvips.Image:
    return REGISTRY[type(step)](image, step, ctx)
