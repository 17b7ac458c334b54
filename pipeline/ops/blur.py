from __future__ import annotations

import pyvips

from pipeline.dsl.steps import Blur
from pipeline.ops.context import OpContext


def apply(image: pyvips.Image, step: Blur, ctx: OpContext) -> pyvips.Image:
    return image.gaussblur(step.sigma).cast(image.format)
