"""What an op may use beyond its image and step: assets for watermarks, and the limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyvips

from pipeline.dsl.limits import Limits
from pipeline.dsl.steps import focus_of
from pipeline.geometry import IDENTITY, Affine

__all__ = ["AssetResolver", "OpContext"]

# Returns the bytes stored under an asset key; raises KeyError when there is none.
AssetResolver = Callable[[str], bytes]


@dataclass
class OpContext:
    limits: Limits
    assets: AssetResolver | None = None
    # Decoded assets, so a logo used by eight variants is read and decoded once per job.
    asset_cache: dict[str, pyvips.Image] = field(default_factory=dict)
    # The full-resolution size the image stands for while it is still a shrunk-on-load decode:
    # a resize sizes its output from it, so the result does not depend on the decode's rounding.
    logical_size: tuple[int, int] | None = None
    # Where the source's points lie in this image (focal points are given against the source).
    placement: Affine | None = IDENTITY

    def focus(self, gravity: object) -> tuple[float, float] | None:
        """A focal gravity's point in the image the op receives (fractions); None for any other."""
        return focus_of(gravity, self.placement)
