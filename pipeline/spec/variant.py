"""An output variant: where its pixels come from, the steps applied, and how it is encoded."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from pipeline.spec.steps import Step
from pipeline.spec.types import Effort, OutputFormat, Quality, VariantId

__all__ = ["EFFORT_RANGE", "Variant"]

# The encoders' own effort ranges; `auto` resolves to a format at run time and is clamped then.
EFFORT_RANGE: dict[str, tuple[int, int]] = {"webp": (0, 6), "avif": (0, 9), "png": (0, 9), "gif": (1, 10)}
_LOSSLESS = frozenset({"webp", "avif", "auto"})
_PROGRESSIVE = frozenset({"jpeg", "png", "gif", "auto"})
_QUALITY = frozenset({"jpeg", "webp", "avif", "tiff", "auto"})

Steps = Annotated[list[Step], Meta(description="Applied in order.")]


class Variant(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: VariantId
    from_: VariantId | None = msgspec.field(default=None, name="from")
    steps: Steps = msgspec.field(default_factory=list)
    format: OutputFormat = "auto"
    quality: Quality | None = None
    strip: bool = True
    progressive: bool = False
    lossless: bool = False
    effort: Effort | None = None

    def __post_init__(self) -> None:
        fmt = self.format
        if self.lossless and fmt not in _LOSSLESS:
            raise ValueError(f"`lossless` applies to webp and avif, not {fmt}")
        if self.lossless and self.quality is not None:
            raise ValueError("`quality` has no effect with `lossless`")
        if self.progressive and fmt not in _PROGRESSIVE:
            raise ValueError(f"`progressive` applies to jpeg, png and gif, not {fmt}")
        if self.quality is not None and fmt not in _QUALITY:
            raise ValueError(f"`quality` does not apply to {fmt}; it is lossless")
        if self.effort is not None and fmt != "auto":
            if fmt not in EFFORT_RANGE:
                raise ValueError(f"`effort` does not apply to {fmt}")
            lo, hi = EFFORT_RANGE[fmt]
            if not lo <= self.effort <= hi:
                raise ValueError(f"`effort` for {fmt} must be between {lo} and {hi}")
