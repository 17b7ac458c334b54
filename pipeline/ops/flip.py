from __future__ import annotations

import pyvips

from pipeline.dsl.steps import Flip, Flop
from pipeline.ops.context import OpContext


def apply_flip(image: pyvips.Image, step: Flip, ctx: OpContext) -> pyvips.Image:
    return image.flip("vertical")


def apply_flop(image: pyvips.Image, step: Flop, ctx: OpContext) -> pyvips.Image:
    return image.flip("horizontal")
