"""The operations a variant's ``steps`` may contain, one frozen struct per op.

The ``op`` field is the explicit wire tag. Cross-field rules live in ``__post_init__`` and name
the fields involved; msgspec reports them at the step's path.

Each struct also declares what the planner needs to know about its op (see ``StepBase``): how it
changes the size, whether it may run before shrink-on-load, whether it reads out of order, which
fields the deployment caps, and its cost. A new op is this struct plus its pixels in
``pipeline/ops/``. Cost weights are CPU milliseconds per output megapixel, measured as
``pipeline/cost.py`` describes.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal, TypeGuard

from msgspec import Meta, Struct

from pipeline.dsl.types import (
    NO_CONTROL,
    SMART_GRAVITIES,
    Angle,
    Color,
    Dimension,
    Factor,
    FitMode,
    FontSize,
    Fraction,
    Gravity,
    Hue,
    Margin,
    Offset,
    Opacity,
    Padding,
    Sigma,
    SmartGravity,
)
from pipeline.geometry import (
    Affine,
    cover_offset,
    crop_box,
    gravity_offset,
    megapixels,
    resize_plan,
    rotated_size,
)

__all__ = [
    "STEP_TYPES",
    "Blur",
    "Crop",
    "Flip",
    "Flop",
    "FocalPoint",
    "Grayscale",
    "Modulate",
    "Pad",
    "Resize",
    "Rotate",
    "Sharpen",
    "Step",
    "StepBase",
    "Watermark",
]

AspectRatio = Annotated[
    str,
    Meta(
        pattern=r"^[1-9][0-9]{0,4}:[1-9][0-9]{0,4}$",
        description="width:height, e.g. 16:9.",
        examples=["16:9"],
    ),
]
# A plain relative path: '/'-separated segments that each start with a letter or digit. That
# rules out '.' and '..' segments, empty segments ('a//b'), a leading or trailing '/',
# backslashes and control characters: one spelling per object, and no key can name anything
# outside the client's own asset prefix (local storage resolves paths).
ASSET_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*$"
ASSET_KEY_RULE = (
    "'/'-separated segments of letters, digits, '.', '_' and '-', each starting with a letter or digit; "
    "at most 512 characters"
)
AssetKey = Annotated[
    str,
    Meta(
        pattern=ASSET_KEY_PATTERN,
        min_length=1,
        max_length=512,
        description="Object key of an image in the job's asset store (the bucket, or --assets DIR locally): "
        + ASSET_KEY_RULE
        + ".",
        examples=["brand/logo.png"],
    ),
]
WatermarkText = Annotated[str, Meta(min_length=1, max_length=256, pattern=NO_CONTROL)]
SharpenSigma = Annotated[float, Meta(gt=0, le=10, description="Sharpening radius in pixels.")]
SharpenAmount = Annotated[float, Meta(ge=0, le=100)]
# ms per megapixel searched by a smart gravity
SMARTCROP_MS_PER_MP: dict[str, float] = {"attention": 3, "entropy": 15}

Size = tuple[int, int]


def _smartcrop_cost(gravity: Placement, searched: Size) -> float:
    return SMARTCROP_MS_PER_MP[gravity] * megapixels(searched) if is_smart(gravity) else 0.0


class StepBase(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="op"):
    """Common base: strict, immutable, tagged by ``op``; the defaults describe an op that keeps the
    size, works per pixel and is charged ``ms_per_mp`` per output megapixel."""

    ms_per_mp: ClassVar[float]
    capped_fields: ClassVar[tuple[str, ...]] = ()
    """Pixel lengths the deployment's ``max_output_dimension`` also caps."""
    # A step whose trait depends on its fields overrides these with a property. Subclasses repeat
    # frozen=True: msgspec inherits it, but type checkers read each class's own arguments.
    scale_free: ClassVar[bool] = False
    """The step gives the same picture at any resolution, so it may run on a shrunk-on-load image
    before the variant's resize."""
    random_access: ClassVar[bool] = False
    """The step reads its input out of order (the decoder streams top to bottom)."""

    def output_size(self, width: int, height: int) -> Size:
        """The size this step turns a ``width`` x ``height`` image into (the ops apply exactly this)."""
        return width, height

    def fixed_size(self) -> Size | None:
        """The size this step produces whatever its input; None when that depends on the input."""
        return None

    def cost(self, before: Size, after: Size) -> float:
        """The work (cost units, see ``pipeline.cost``) of taking a ``before`` image to ``after``."""
        return self.ms_per_mp * megapixels(after)

    def carry(self, placement: Affine | None, before: Size, after: Size) -> Affine | None:
        """Where the source's points lie after this step (``pipeline.geometry.Affine``), for focal
        points further on; None once unknowable (after a smart crop). ``before`` is the size the
        step sized itself from, ``after`` its output."""
        return placement


class FocalPoint(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A point of the source to keep in view, as fractions of its width and height (after EXIF
    orientation): crops and cover resizes centre on it as far as the image allows."""

    x: Fraction
    y: Fraction


# A compass point, a smart gravity, or a focal point of the source
Placement = SmartGravity | FocalPoint


def focus_of(gravity: object, placement: Affine | None) -> tuple[float, float] | None:
    """A focal gravity's point in the current image (fractions), or None for every other gravity."""
    if isinstance(gravity, FocalPoint) and placement is not None:
        return placement.apply(gravity.x, gravity.y)
    return None


def is_smart(gravity: object) -> TypeGuard[str]:
    return isinstance(gravity, str) and gravity in SMART_GRAVITIES


class Resize(StepBase, tag="resize", frozen=True):
    """Scale to ``width`` and/or ``height``.

    fit: ``cover`` fills the box and crops the excess (at ``gravity``, which may be the smart
    ``attention``/``entropy``); ``contain`` fits inside and pads to the box with ``background``;
    ``fill`` stretches; ``inside`` fits inside without padding; ``outside`` covers without cropping.
    """

    width: Dimension | None = None
    height: Dimension | None = None
    fit: FitMode = "cover"
    gravity: Placement = "centre"
    without_enlargement: bool = False
    background: Color | None = None

    capped_fields: ClassVar[tuple[str, ...]] = ("width", "height")
    reduce_ms_per_mp: ClassVar[float] = 3.5  # per input MP: shrinking reads every input pixel once
    enlarge_ms_per_mp: ClassVar[float] = 38  # per output MP: upscaling interpolates each one (lanczos3)

    def __post_init__(self) -> None:
        if self.width is None and self.height is None:
            raise ValueError("resize needs `width`, `height` or both")
        if self.gravity != "centre" and (self.fit != "cover" or self.width is None or self.height is None):
            raise ValueError("`gravity` only applies to fit `cover` with both `width` and `height`")
        if self.background is not None and self.fit != "contain":
            raise ValueError("`background` only applies to fit `contain`")

    def output_size(self, width: int, height: int) -> Size:
        return resize_plan(self, width, height).final

    def fixed_size(self) -> Size | None:
        # a resize to an exact box (resize_plan gives exactly this final size; a test holds them together)
        if self.width is None or self.height is None:
            return None
        if self.fit == "contain" or (self.fit in ("cover", "fill") and not self.without_enlargement):
            return self.width, self.height
        return None

    @property
    def random_access(self) -> bool:  # type: ignore[override]  # StepBase's ClassVar, decided by a field here
        return is_smart(self.gravity)

    def carry(self, placement: Affine | None, before: Size, after: Size) -> Affine | None:
        plan = resize_plan(self, *before)
        if placement is None or plan.final == plan.scaled:
            return placement  # scaling alone moves no point's fractions
        if self.fit == "cover":
            if is_smart(self.gravity):
                return None
            x, y = cover_offset(self.gravity, plan.scaled, plan.final, focus_of(self.gravity, placement))
            return placement.moved((-x, -y), plan.scaled, plan.final)
        x, y = gravity_offset("centre", plan.final, plan.scaled)  # contain: centred on the box
        return placement.moved((x, y), plan.scaled, plan.final)

    def cost(self, before: Size, after: Size) -> float:
        scaled = resize_plan(self, *before).scaled
        if megapixels(scaled) > megapixels(before):
            work = self.enlarge_ms_per_mp * megapixels(scaled)
        else:
            work = self.reduce_ms_per_mp * megapixels(before)
        if self.fit == "contain":
            work += Pad.ms_per_mp * megapixels(after)
        return work + _smartcrop_cost(self.gravity, scaled)


class Crop(StepBase, tag="crop", frozen=True):
    """Cut a box: ``width`` x ``height`` at ``left``/``top`` (or placed by ``gravity``), or the largest
    region of ``aspect_ratio`` placed by ``gravity``."""

    left: Offset | None = None
    top: Offset | None = None
    width: Dimension | None = None
    height: Dimension | None = None
    aspect_ratio: AspectRatio | None = None
    gravity: Placement = "centre"

    ms_per_mp: ClassVar[float] = 0  # a view into its input
    capped_fields: ClassVar[tuple[str, ...]] = ("width", "height")

    def __post_init__(self) -> None:
        box = self.width is not None or self.height is not None
        if self.aspect_ratio is not None and box:
            raise ValueError("crop takes either `aspect_ratio` or `width`/`height`, not both")
        if self.aspect_ratio is None and (self.width is None or self.height is None):
            raise ValueError("crop needs both `width` and `height`, or `aspect_ratio`")
        if (self.left is None) != (self.top is None):
            raise ValueError("crop needs both `left` and `top`, or neither")
        if self.left is not None:
            if self.aspect_ratio is not None:
                raise ValueError("`left`/`top` go with `width`/`height`, not `aspect_ratio`")
            if self.gravity != "centre":
                raise ValueError("`gravity` has no effect when `left`/`top` place the box")

    @property
    def ratio(self) -> tuple[int, int] | None:
        if self.aspect_ratio is None:
            return None
        w, h = self.aspect_ratio.split(":")
        return int(w), int(h)

    def output_size(self, width: int, height: int) -> Size:
        box = crop_box(self, width, height)
        return box.width, box.height

    @property
    def scale_free(self) -> bool:  # type: ignore[override]  # StepBase's ClassVar, decided by a field here
        return self.ratio is not None

    @property
    def random_access(self) -> bool:  # type: ignore[override]  # StepBase's ClassVar, decided by a field here
        return is_smart(self.gravity)

    def carry(self, placement: Affine | None, before: Size, after: Size) -> Affine | None:
        if placement is None or is_smart(self.gravity):
            return None
        box = crop_box(self, *before, focus=focus_of(self.gravity, placement))
        return placement.moved((-box.left, -box.top), before, (box.width, box.height))

    def cost(self, before: Size, after: Size) -> float:
        return _smartcrop_cost(self.gravity, before)


class Rotate(StepBase, tag="rotate", frozen=True):
    """Rotate clockwise; corners uncovered by angles other than multiples of 90 are ``background``."""

    angle: Angle
    background: Color | None = None

    ms_per_mp: ClassVar[float] = 17  # affine with interpolation
    right_angle_ms_per_mp: ClassVar[float] = 5

    @property
    def right_angle(self) -> bool:
        return self.angle % 90 == 0

    def output_size(self, width: int, height: int) -> Size:
        return rotated_size(self, width, height)

    @property
    def scale_free(self) -> bool:  # type: ignore[override]  # StepBase's ClassVar, decided by a field here
        return self.right_angle

    random_access = True

    def cost(self, before: Size, after: Size) -> float:
        return (self.right_angle_ms_per_mp if self.right_angle else self.ms_per_mp) * megapixels(after)

    def carry(self, placement: Affine | None, before: Size, after: Size) -> Affine | None:
        if placement is None:
            return None
        # clockwise on screen (y down) about the centre, onto the rotated bounding box
        (w, h), (w2, h2) = before, after
        rad = math.radians(self.angle % 360)
        cos, sin = round(math.cos(rad), 12), round(math.sin(rad), 12)  # exact at right angles
        return placement.then(
            cos * w / w2, -sin * h / w2, (-cos * w / 2 + sin * h / 2 + w2 / 2) / w2,
            sin * w / h2, cos * h / h2, (-sin * w / 2 - cos * h / 2 + h2 / 2) / h2,
        )  # fmt: skip


class Flip(StepBase, tag="flip", frozen=True):
    """Mirror top to bottom."""

    ms_per_mp: ClassVar[float] = 0.5

    scale_free = True
    random_access = True  # reads the bottom row first

    def carry(self, placement: Affine | None, before: Size, after: Size) -> Affine | None:
        return None if placement is None else placement.then(1, 0, 0, 0, -1, 1)


class Flop(StepBase, tag="flop", frozen=True):
    """Mirror left to right."""

    ms_per_mp: ClassVar[float] = 0.5

    scale_free = True

    def carry(self, placement: Affine | None, before: Size, after: Size) -> Affine | None:
        return None if placement is None else placement.then(-1, 0, 1, 0, 1, 0)


class Blur(StepBase, tag="blur", frozen=True):
    """Gaussian blur of ``sigma`` pixels."""

    sigma: Sigma

    # + ms_per_mp_per_sigma x sigma: the separable mask grows with sigma (sigma 1: 2.2, 20: 12)
    ms_per_mp: ClassVar[float] = 1.8
    ms_per_mp_per_sigma: ClassVar[float] = 0.5

    def cost(self, before: Size, after: Size) -> float:
        return (self.ms_per_mp + self.ms_per_mp_per_sigma * self.sigma) * megapixels(after)


class Sharpen(StepBase, tag="sharpen", frozen=True):
    """Unsharp mask in LAB: ``flat`` sharpens flat areas, ``jagged`` sharpens edges."""

    sigma: SharpenSigma = 1.0
    flat: SharpenAmount = 1.0
    jagged: SharpenAmount = 2.0

    # + ms_per_mp_per_sigma x sigma; runs in LabS, hence the base (sigma 1: 83, 5: 105)
    ms_per_mp: ClassVar[float] = 77
    ms_per_mp_per_sigma: ClassVar[float] = 6

    def cost(self, before: Size, after: Size) -> float:
        return (self.ms_per_mp + self.ms_per_mp_per_sigma * self.sigma) * megapixels(after)


class Grayscale(StepBase, tag="grayscale", frozen=True):
    """Drop the colour: luminance only."""

    ms_per_mp: ClassVar[float] = 5.5

    scale_free = True


class Modulate(StepBase, tag="modulate", frozen=True):
    """Scale ``brightness`` and ``saturation``, rotate ``hue`` by degrees."""

    brightness: Factor = 1.0
    saturation: Factor = 1.0
    hue: Hue = 0.0

    ms_per_mp: ClassVar[float] = 55  # through LCh and back

    scale_free = True


class Pad(StepBase, tag="pad", frozen=True):
    """Extend the canvas on each side (sharp calls this ``extend``)."""

    top: Padding = 0
    right: Padding = 0
    bottom: Padding = 0
    left: Padding = 0
    background: Color | None = None

    ms_per_mp: ClassVar[float] = 1
    capped_fields: ClassVar[tuple[str, ...]] = ("top", "right", "bottom", "left")

    def __post_init__(self) -> None:
        if not (self.top or self.right or self.bottom or self.left):
            raise ValueError("pad needs at least one of `top`, `right`, `bottom`, `left` above 0")

    def output_size(self, width: int, height: int) -> Size:
        return width + self.left + self.right, height + self.top + self.bottom

    def carry(self, placement: Affine | None, before: Size, after: Size) -> Affine | None:
        return None if placement is None else placement.moved((self.left, self.top), before, after)


class Watermark(StepBase, tag="watermark", frozen=True):
    """Overlay ``text`` or an ``image`` (an asset key) at ``gravity``, ``margin`` pixels from the edge."""

    text: WatermarkText | None = None
    image: AssetKey | None = None
    font: Literal["sans", "serif", "monospace"] | None = None
    font_size: FontSize | None = None
    color: Color | None = None
    width: Dimension | None = None
    opacity: Opacity = 0.5
    gravity: Gravity = "southeast"
    margin: Margin = 16

    ms_per_mp: ClassVar[float] = 4  # composited over the whole image
    capped_fields: ClassVar[tuple[str, ...]] = ("width",)

    def __post_init__(self) -> None:
        if (self.text is None) == (self.image is None):
            raise ValueError("watermark needs exactly one of `text` or `image`")
        if self.text is not None and self.width is not None:
            raise ValueError("`width` scales an `image` watermark; text is sized by `font_size`")
        if self.image is not None and (self.font is not None or self.font_size is not None or self.color is not None):
            raise ValueError("`font`, `font_size` and `color` only apply to a `text` watermark")


Step = Resize | Crop | Rotate | Flip | Flop | Blur | Sharpen | Grayscale | Modulate | Pad | Watermark
STEP_TYPES: tuple[type[StepBase], ...] = Step.__args__
