"""Pure size arithmetic, shared by the step structs (which predict their output sizes with it) and
by the libvips ops (which apply exactly these numbers), so predictions and outputs agree."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from pipeline.dsl.types import SMART_GRAVITIES
from pipeline.errors import InvalidOperation

__all__ = [
    "IDENTITY",
    "Affine",
    "Box",
    "ResizePlan",
    "cover_offset",
    "crop_box",
    "focal_offset",
    "gravity_offset",
    "megapixels",
    "pixels",
    "resize_plan",
    "rotated_size",
]


@dataclass(frozen=True, slots=True)
class Box:
    left: int
    top: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Affine:
    """Where a point given as fractions of the source (u, v) lies in an image, as fractions of that
    image: focal points are written against the source and carried through every step (and
    `from` chain) that moves pixels. Every geometric step is affine in these coordinates."""

    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    d: float = 0.0
    e: float = 1.0
    f: float = 0.0

    def apply(self, u: float, v: float) -> tuple[float, float]:
        return self.a * u + self.b * v + self.c, self.d * u + self.e * v + self.f

    def then(self, a: float, b: float, c: float, d: float, e: float, f: float) -> Affine:
        """This mapping followed by (u, v) -> (a u + b v + c, d u + e v + f)."""
        return Affine(
            a * self.a + b * self.d, a * self.b + b * self.e, a * self.c + b * self.f + c,
            d * self.a + e * self.d, d * self.b + e * self.e, d * self.c + e * self.f + f,
        )  # fmt: skip

    def moved(self, offset: tuple[int, int], before: tuple[int, int], after: tuple[int, int]) -> Affine:
        """The image's pixels shifted by ``offset`` (a crop's negative left/top, a pad's positive)
        onto a canvas of ``after``: x' = (u * before + offset) / after."""
        (bw, bh), (aw, ah) = before, after
        return self.then(bw / aw, 0, offset[0] / aw, 0, bh / ah, offset[1] / ah)


IDENTITY = Affine()


# What the arithmetic reads of a step. pipeline.dsl.steps' Resize, Crop and Rotate have these
# fields and call into this module, which therefore does not import them.
class _SizeFields(Protocol):
    @property
    def width(self) -> int | None: ...
    @property
    def height(self) -> int | None: ...


class ResizeFields(_SizeFields, Protocol):
    @property
    def fit(self) -> str: ...
    @property
    def without_enlargement(self) -> bool: ...


class CropFields(_SizeFields, Protocol):
    @property
    def ratio(self) -> tuple[int, int] | None: ...
    @property
    def left(self) -> int | None: ...
    @property
    def top(self) -> int | None: ...
    @property
    def gravity(self) -> object: ...


class RotateFields(Protocol):
    @property
    def angle(self) -> float: ...


@dataclass(frozen=True, slots=True)
class ResizePlan:
    """Scale the input to ``scaled``, then crop (cover) or pad (contain) it to ``final``."""

    scale_x: float
    scale_y: float
    scaled: tuple[int, int]
    final: tuple[int, int]


def pixels(n: float) -> int:
    """A pixel count: halves round up, as libvips and sharp round them (Python's round() would
    give 112 for 112.5 where they give 113)."""
    return max(1, math.floor(n + 0.5))


def megapixels(size: tuple[int, int]) -> float:
    return size[0] * size[1] / 1e6


def resize_plan(step: ResizeFields, width: int, height: int) -> ResizePlan:
    tw, th = step.width, step.height
    sx = tw / width if tw is not None else None
    sy = th / height if th is not None else None
    if step.fit == "fill":
        fx = sx if sx is not None else sy
        fy = sy if sy is not None else sx
        assert fx is not None and fy is not None  # the struct requires width or height
        if step.without_enlargement:
            fx, fy = min(fx, 1.0), min(fy, 1.0)
        scaled = (pixels(width * fx), pixels(height * fy))
        return ResizePlan(fx, fy, scaled, scaled)

    candidates = [s for s in (sx, sy) if s is not None]
    s = max(candidates) if step.fit in ("cover", "outside") else min(candidates)
    if step.without_enlargement:
        s = min(s, 1.0)
    scaled = (pixels(width * s), pixels(height * s))
    final = scaled
    if tw is not None and th is not None:
        if step.fit == "cover":
            final = (min(tw, scaled[0]), min(th, scaled[1]))
        elif step.fit == "contain":
            final = (tw, th)
    return ResizePlan(s, s, scaled, final)


def gravity_offset(gravity: str, outer: tuple[int, int], inner: tuple[int, int], margin: int = 0) -> tuple[int, int]:
    """Top-left of an ``inner`` box placed inside ``outer`` by a compass gravity."""
    free_x, free_y = outer[0] - inner[0], outer[1] - inner[1]
    x, y = free_x // 2, free_y // 2
    if "west" in gravity:
        x = margin
    elif "east" in gravity:
        x = free_x - margin
    if gravity.startswith("north"):
        y = margin
    elif gravity.startswith("south"):
        y = free_y - margin
    return x, y


def focal_offset(focus: tuple[float, float], outer: tuple[int, int], inner: tuple[int, int]) -> tuple[int, int]:
    """Top-left of an ``inner`` box centred on ``focus`` (fractions of ``outer``), kept inside ``outer``."""
    x = round(focus[0] * outer[0] - inner[0] / 2)
    y = round(focus[1] * outer[1] - inner[1] / 2)
    return min(max(0, x), outer[0] - inner[0]), min(max(0, y), outer[1] - inner[1])


def cover_offset(
    gravity: str | object, scaled: tuple[int, int], final: tuple[int, int], focus: tuple[float, float] | None
) -> tuple[int, int]:
    """Where resize's cover crops its scaled image to the box: by the focal point when given."""
    if focus is not None:
        return focal_offset(focus, scaled, final)
    return gravity_offset(gravity if isinstance(gravity, str) else "centre", scaled, final)


def crop_box(step: CropFields, width: int, height: int, focus: tuple[float, float] | None = None) -> Box:
    """The region a non-smart crop keeps. Smart gravities choose only the offset at run time."""
    ratio = step.ratio
    if ratio is not None:
        rw, rh = ratio
        if width * rh > height * rw:
            cw, ch = min(width, pixels(height * rw / rh)), height
        else:
            cw, ch = width, min(height, pixels(width * rh / rw))
    else:
        assert step.width is not None and step.height is not None
        cw, ch = step.width, step.height
        if step.left is not None and step.top is not None:
            if step.left + cw > width or step.top + ch > height:
                raise InvalidOperation(
                    f"crop box {cw}x{ch}+{step.left}+{step.top} lies outside the {width}x{height} image"
                )
            return Box(step.left, step.top, cw, ch)
        cw, ch = min(cw, width), min(ch, height)
    if focus is not None:
        x, y = focal_offset(focus, (width, height), (cw, ch))
        return Box(x, y, cw, ch)
    gravity = step.gravity if isinstance(step.gravity, str) and step.gravity not in SMART_GRAVITIES else "centre"
    x, y = gravity_offset(gravity, (width, height), (cw, ch))
    return Box(x, y, cw, ch)


def rotated_size(step: RotateFields, width: int, height: int) -> tuple[int, int]:
    angle = step.angle % 360
    if angle % 90 == 0:
        return (height, width) if angle in (90, 270) else (width, height)
    rad = math.radians(angle)
    c, s = abs(math.cos(rad)), abs(math.sin(rad))
    # libvips sizes an affine's output as its rounded bounding box
    return pixels(width * c + height * s), pixels(width * s + height * c)
