from __future__ import annotations

import pyvips

from pipeline.dsl.steps import Sharpen
from pipeline.ops.context import OpContext


def apply(image: pyvips.Image, step: Sharpen, ctx: OpContext) -> pyvips.Image:
    out = image.sharpen(sigma=step.sigma, m1=step.flat, m2=step.jagged)
    # sharpen works in LabS and hands back the input's interpretation, but not always its format
    return out.cast(image.format) if out.format != image.format else out
