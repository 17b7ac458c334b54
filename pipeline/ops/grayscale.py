from __future__ import annotations

import pyvips

from pipeline.dsl.steps import Grayscale
from pipeline.ops.context import OpContext


def apply(image: pyvips.Image, step: Grayscale, ctx: OpContext) -> pyvips.Image:
    if image.interpretation == "b-w":
        return image
    return image.colourspace("b-w")
