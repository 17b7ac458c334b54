from __future__ import annotations

import pyvips

from pipeline.dsl.steps import Rotate
from pipeline.ops._color import background
from pipeline.ops.context import OpContext

_RIGHT: dict[float, str] = {90: "d90", 180: "d180", 270: "d270"}


def apply(image: pyvips.Image, step: Rotate, ctx: OpContext) -> pyvips.Image:
    angle = step.angle % 360
    if angle == 0:
        return image
    if angle in _RIGHT:
        return image.rot(_RIGHT[angle])
    # libvips' rotate is clockwise on screen (y points down), like rot().
    image, colour = background(image, step.background)
    return image.rotate(angle, background=colour)
