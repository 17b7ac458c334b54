"""An output variant: where its pixels come from, the steps applied, and how it is encoded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from pipeline.dsl.steps import Step
from pipeline.dsl.types import Effort, KeepTag, MaxBytes, OutputFormat, Quality, VariantId
from pipeline.formats import FORMATS, Format, words

__all__ = ["MAX_BYTES_ENCODES", "STRIP_FALSE_KEEPS", "Variant", "effective_effort", "kept_metadata", "output_format"]

# `max_bytes`: the first encode, then a binary search over qualities 1..99 (7 halvings)
MAX_BYTES_ENCODES = 8

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
        f = FORMATS.get(fmt)  # None for `auto`: any option may apply to what it becomes
        if self.keep and not self.strip:
            raise ValueError("`strip: false` keeps all metadata but GPS; `keep` names a selection; use one")
        if "gps" in self.keep and "exif" not in self.keep:
            raise ValueError("`gps` is kept as part of EXIF: name `exif` too")
        if self.max_bytes is not None and ((f is not None and not f.lossy) or self.lossless):
            lossy = ", ".join(_offering(lambda g: g.lossy))
            raise ValueError(f"`max_bytes` needs a lossy format ({lossy}), not {_described(self)}")
        if self.keep and f is not None and not f.metadata:
            raise ValueError(f"`keep` does not apply to {fmt}: it is written without metadata")
        if self.lossless and f is not None and not f.lossless:
            raise ValueError(f"`lossless` applies to {words(_offering(lambda g: g.lossless))}, not {fmt}")
        if self.lossless and self.quality is not None:
            raise ValueError("`quality` has no effect with `lossless`")
        if self.progressive and f is not None and not f.progressive:
            raise ValueError(f"`progressive` applies to {words(_offering(lambda g: g.progressive))}, not {fmt}")
        if self.quality is not None and f is not None and f.quality is None:
            raise ValueError(f"`quality` does not apply to {fmt}; it is lossless")
        if self.effort is not None and f is not None:
            if f.effort is None:
                raise ValueError(f"`effort` does not apply to {fmt}")
            if not f.effort.lo <= self.effort <= f.effort.hi:
                raise ValueError(f"`effort` for {fmt} must be between {f.effort.lo} and {f.effort.hi}")


def _offering(option: Callable[[Format], bool]) -> list[str]:
    """The output formats an option applies to, in the registry's order (for messages)."""
    return [name for name, f in FORMATS.items() if f.encoder is not None and option(f)]


def _described(variant: Variant) -> str:
    return f"lossless {variant.format}" if variant.lossless else variant.format


def kept_metadata(variant: Variant) -> frozenset[str]:
    """What the variant keeps: its `keep`, or everything but GPS with `strip: false`."""
    return STRIP_FALSE_KEEPS if not variant.strip else frozenset(variant.keep)


def effective_effort(variant: Variant, fmt: str) -> int | None:
    """The effort ``fmt``'s encoder runs at (None: it has none): shared by the encoder and the cost
    estimate, so the planner charges exactly what will run."""
    effort = FORMATS[fmt].effort
    if effort is None:
        return None
    if variant.effort is None:
        return effort.default
    return min(effort.hi, max(effort.lo, variant.effort))  # `auto` may resolve to a format with a narrower range


def output_format(variant: Variant, source_format: str | None) -> str | None:
    """The format a variant is encoded in; None for `auto` while the source's format is unknown.
    `auto` writes the source's own format (pipeline/formats.py: ``auto``), except that with
    `max_bytes` it needs one whose quality it can lower (``auto_lossy``)."""
    if variant.format != "auto":
        return variant.format
    if source_format is None:
        return None
    source = FORMATS[source_format]
    return source.auto_lossy if variant.max_bytes is not None else source.auto
