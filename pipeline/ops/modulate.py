"""Brightness, saturation and hue in LCh, so a saturation change keeps perceived lightness."""

from __future__ import annotations

import pyvips

from pipeline.dsl.steps import Modulate
from pipeline.ops.context import OpContext


def apply(image: pyvips.Image, step: Modulate, ctx: OpContext) -> pyvips.Image:
    if (step.brightness, step.saturation, step.hue) == (1.0, 1.0, 0.0):
        return image
    target = image.interpretation if image.interpretation in ("b-w", "srgb") else "srgb"
    alpha = image.extract_band(image.bands - 1) if image.hasalpha() else None
    colour = image.extract_band(0, n=image.bands - 1) if alpha is not None else image
    lch = colour.colourspace("lch").linear([step.brightness, step.saturation, 1], [0, 0, step.hue % 360])
    out = lch.colourspace(target).cast("uchar")
    return out.bandjoin(alpha) if alpha is not None else out
