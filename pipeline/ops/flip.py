from __future__ import annotations

import pyvips

from pipeline.ops.context import OpContext
from pipeline.spec.steps import Flip, Flop


def apply_flip(image: pyvips.Image, step: Flip, ctx: OpContext) -> pyvips.Image:
    return image.flip("vertical")


def apply_flop(image: pyvips.Image, step: Flop, ctx: OpContext) -> pyvips.Image:
    return image.flip("horizontal")
