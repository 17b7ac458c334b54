from __future__ import annotations

import pyvips

from pipeline.ops.context import OpContext
from pipeline.spec.steps import Grayscale


def apply(image: pyvips.Image, step: Grayscale, ctx: OpContext) -> pyvips.Image:
    if image.interpretation == "b-w":
        return image
    return image.colourspace("b-w")
