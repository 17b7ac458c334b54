from __future__ import annotations

import pyvips

from pipeline.dsl.steps import Pad
from pipeline.ops._color import background
from pipeline.ops.context import OpContext


def apply(image: pyvips.Image, step: Pad, ctx: OpContext) -> pyvips.Image:
    image, colour = background(image, step.background)
    width = image.width + step.left + step.right
    height = image.height + step.top + step.bottom
    return image.embed(step.left, step.top, width, height, extend="background", background=colour)
