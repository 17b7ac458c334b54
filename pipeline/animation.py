"""Animated images: libvips holds every frame of a GIF or WebP as one tall image, frames stacked
top to bottom (``page-height`` tall each, with ``delay`` and ``loop`` alongside). A step applies to
each frame alike; a smart gravity is chosen once, on the first frame, so the crop does not jump
from frame to frame.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pyvips

from pipeline.dsl.steps import Crop, FocalPoint, Resize, Step, is_smart
from pipeline.geometry import crop_box, resize_plan

__all__ = ["first_frame", "frame_count", "frame_size", "is_animated", "per_frame"]


def frame_count(image: pyvips.Image) -> int:
    if "page-height" not in image.get_fields():
        return 1
    page = image.get("page-height")
    return image.height // page if 0 < page < image.height and image.height % page == 0 else 1


def is_animated(image: pyvips.Image) -> bool:
    return frame_count(image) > 1


def frame_size(image: pyvips.Image) -> tuple[int, int]:
    return image.width, image.height // frame_count(image)


def first_frame(image: pyvips.Image) -> pyvips.Image:
    if not is_animated(image):
        return image
    width, height = frame_size(image)
    frame = image.crop(0, 0, width, height).copy()
    for name in ("page-height", "n-pages", "delay", "loop"):
        if name in frame.get_fields():
            frame.remove(name)
    return frame


def per_frame(image: pyvips.Image, step: Step, apply: Callable[[pyvips.Image, Step], pyvips.Image]) -> pyvips.Image:
    """``apply(frame, step)`` on every frame, restacked with the animation's timing."""
    width, height = frame_size(image)
    frames = [image.crop(0, 0, width, height)]
    step = _gravity_of_first_frame(step, frames[0])
    first = apply(frames[0], step)
    if first is frames[0]:  # the step leaves a frame as it is (a resize to its own size): so the stack
        return image
    frames += [image.crop(0, i * height, width, height) for i in range(1, frame_count(image))]
    done = [first, *(apply(frame, step) for frame in frames[1:])]
    out = pyvips.Image.arrayjoin(done, across=1).copy()
    out.set_type(pyvips.GValue.gint_type, "page-height", done[0].height)
    for name in ("delay", "loop"):
        if name in image.get_fields():
            out.set_type(image.get_typeof(name), name, image.get(name))
    return out


def _gravity_of_first_frame(step: Step, frame: pyvips.Image) -> Step:
    """A smart gravity, found on the first frame and kept as that point for every frame."""
    gravity = getattr(step, "gravity", None)
    if not is_smart(gravity):
        return step
    if isinstance(step, Crop):
        box = crop_box(step, frame.width, frame.height)
        size = (box.width, box.height)
    else:  # resize, cover: the box in the frame's own scale
        assert isinstance(step, Resize)  # the only other step a smart gravity is valid on
        plan = resize_plan(step, frame.width, frame.height)
        size = (
            max(1, min(frame.width, round(plan.final[0] / plan.scale_x))),
            max(1, min(frame.height, round(plan.final[1] / plan.scale_y))),
        )
    _, found = frame.smartcrop(*size, interesting=gravity, attention_x=True, attention_y=True)
    # a point of this frame, not of the source: the ops read it with an identity placement
    point = FocalPoint(x=found["attention_x"] / frame.width, y=found["attention_y"] / frame.height)
    return msgspec.structs.replace(step, gravity=point)
