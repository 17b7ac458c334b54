from __future__ import annotations

import pyvips

from pipeline.ops.context import OpContext
from pipeline.spec.steps import Blur


def apply(image: pyvips.Image, step: Blur, ctx: OpContext) -> pyvips.Image:
    return image.gaussblur(step.sigma).cast(image.format)
