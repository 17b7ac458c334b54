from __future__ import annotations

import pyvips

from pipeline.dsl.steps import Crop
from pipeline.dsl.types import SMART_GRAVITIES
from pipeline.geometry import crop_box
from pipeline.ops.context import OpContext


def apply(image: pyvips.Image, step: Crop, ctx: OpContext) -> pyvips.Image:
    box = crop_box(step, image.width, image.height, focus=ctx.focus(step.gravity))
    if step.gravity in SMART_GRAVITIES:
        return image.smartcrop(box.width, box.height, interesting=step.gravity)
    if (box.width, box.height) == (image.width, image.height):
        return image
    return image.extract_area(box.left, box.top, box.width, box.height)
