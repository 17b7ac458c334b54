"""An output variant: where its pixels come from, the steps applied, and how it is encoded."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from pipeline.dsl.steps import Step
from pipeline.dsl.types import Effort, KeepTag, MaxBytes, OutputFormat, Quality, VariantId

__all__ = [
    "DEFAULT_EFFORT",
    "EFFORT_RANGE",
    "LOSSY_FORMATS",
    "MAX_BYTES_ENCODES",
    "STRIP_FALSE_KEEPS",
    "Variant",
    "effective_effort",
    "kept_metadata",
]

# `max_bytes`: the first encode, then a binary search over qualities 1..99 (7 halvings)
MAX_BYTES_ENCODES = 8

# The encoders' own effort ranges; `auto` resolves to a format at run time and is clamped then.
EFFORT_RANGE: dict[str, tuple[int, int]] = {
    "webp": (0, 6),
    "avif": (0, 9),
    "png": (0, 9),
    "gif": (1, 10),
    "jxl": (1, 9),
}
# AVIF effort above ~4 costs seconds per megapixel for little gain; webp 4 is libwebp's default.
# JPEG XL 5: ~20 % smaller than 4 for 5x its CPU, about twice WebP's; libjxl's own 7 costs 2x more
# and was no smaller on photos (bench.cost).
DEFAULT_EFFORT: dict[str, int] = {"webp": 4, "avif": 2, "png": 6, "gif": 7, "jxl": 5}
_LOSSLESS = frozenset({"webp", "avif", "jxl", "auto"})
_PROGRESSIVE = frozenset({"jpeg", "png", "gif", "auto"})
_QUALITY = frozenset({"jpeg", "webp", "avif", "tiff", "jxl", "auto"})
# The formats whose quality trades size for fidelity: `max_bytes` searches it, results report it
LOSSY_FORMATS = frozenset({"jpeg", "webp", "avif", "jxl"})

Steps = Annotated[list[Step], Meta(description="Applied in order.")]
Keep = Annotated[
    list[KeepTag],
    Meta(
        max_length=5,
        description="Metadata to keep (default none): the colour profile (pixels then stay in it), EXIF "
        "(without GPS unless `gps` is named too), XMP, or only EXIF's copyright and artist.",
    ),
]
# `strip: false`: every kind of metadata but GPS, which is only ever kept by name
STRIP_FALSE_KEEPS = frozenset({"icc", "exif", "xmp", "iptc"})
_NO_METADATA = frozenset({"gif", "jxl"})  # PixelFlow's encoders for these write none


class Variant(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: VariantId
    from_: VariantId | None = msgspec.field(default=None, name="from")
    steps: Steps = msgspec.field(default_factory=list)
    format: OutputFormat = "auto"
    quality: Quality | None = None
    strip: bool = True
    keep: Keep = msgspec.field(default_factory=list)
    progressive: bool = False
    lossless: bool = False
    effort: Effort | None = None
    max_bytes: MaxBytes | None = None
    # An animated source (GIF, WebP) stays animated in gif and webp outputs unless this is false;
    # other formats take its first frame (the job result says so).
    animated: bool = True

    def __post_init__(self) -> None:
        fmt = self.format
        if self.keep and not self.strip:
            raise ValueError("`strip: false` keeps all metadata but GPS; `keep` names a selection; use one")
        if "gps" in self.keep and "exif" not in self.keep:
            raise ValueError("`gps` is kept as part of EXIF: name `exif` too")
        if self.max_bytes is not None and (fmt not in LOSSY_FORMATS | {"auto"} or self.lossless):
            raise ValueError(f"`max_bytes` needs a lossy format (jpeg, webp, avif, jxl), not {_described(self)}")
        if self.keep and fmt in _NO_METADATA:
            raise ValueError(f"`keep` does not apply to {fmt}: it is written without metadata")
        if self.lossless and fmt not in _LOSSLESS:
            raise ValueError(f"`lossless` applies to webp, avif and jxl, not {fmt}")
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


def _described(variant: Variant) -> str:
    return f"lossless {variant.format}" if variant.lossless else variant.format


def kept_metadata(variant: Variant) -> frozenset[str]:
    """What the variant keeps: its `keep`, or everything but GPS with `strip: false`."""
    return STRIP_FALSE_KEEPS if not variant.strip else frozenset(variant.keep)


def effective_effort(variant: Variant, fmt: str) -> int | None:
    """The effort ``fmt``'s encoder runs at (None: it has none): shared by the encoder and the cost
    estimate, so the planner charges exactly what will run."""
    if fmt not in EFFORT_RANGE:
        return None
    if variant.effort is None:
        return DEFAULT_EFFORT[fmt]
    lo, hi = EFFORT_RANGE[fmt]
    return min(hi, max(lo, variant.effort))  # `auto` may resolve to a format with a narrower range
