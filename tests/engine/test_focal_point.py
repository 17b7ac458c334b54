"""Focal-point gravity: a point of the source (fractions, after EXIF orientation) that crops and
cover resizes centre on, carried through every step and `from` chain that moves pixels."""

from __future__ import annotations

import numpy as np
import pytest
import pyvips

from devstack.imagegen import encode, photo
from pipeline.dsl import decode_job_spec
from pipeline.errors import SpecError
from tests.engine.conftest import load, run

W, H = 1200, 800
MARK = (0.8, 0.3)  # where the red square's centre is, as fractions of the source


def marked(width: int = W, height: int = H, at: tuple[float, float] = MARK) -> pyvips.Image:
    image = photo(width, height, seed=11).colourspace("b-w").colourspace("srgb")  # grey: red is only the mark
    x, y = round(at[0] * width), round(at[1] * height)
    return image.draw_rect([255, 0, 0], x - 20, y - 20, 40, 40, fill=True)


def red_centre(data: bytes) -> tuple[float, float] | None:
    """Where the red mark's centre is in an output, as fractions of it (None: not in view)."""
    px = load(data).numpy().astype(int)
    ys, xs = np.nonzero((px[..., 0] > 180) & (px[..., 1] < 80) & (px[..., 2] < 80))
    if len(xs) < 20:
        return None
    return (xs.mean() + 0.5) / px.shape[1], (ys.mean() + 0.5) / px.shape[0]


FOCAL = {"x": MARK[0], "y": MARK[1]}


def test_crop_centres_on_the_focal_point() -> None:
    data = encode(marked(), ".png")
    focal, centre = run(
        data,
        {"id": "f", "action": "crop", "width": 300, "height": 300, "gravity": FOCAL, "format": "png"},
        {"id": "c", "action": "crop", "width": 300, "height": 300, "format": "png"},
    ).variants
    assert red_centre(focal.data) == pytest.approx((0.5, 0.5), abs=0.01)
    assert red_centre(centre.data) is None


def test_cover_resize_keeps_the_focal_point_in_view_and_clamps_at_edges() -> None:
    data = encode(marked(), ".png")
    out = run(
        data,
        {"id": "sq", "action": "resize", "width": 200, "height": 200, "gravity": FOCAL, "format": "png"},
        {"id": "centre", "action": "resize", "width": 200, "height": 200, "format": "png"},
        {"id": "edge", "action": "crop", "width": 300, "height": 300, "gravity": {"x": 1, "y": 1}, "format": "png"},
    ).variants
    # scaled to 300x200, the box would start at 240 - 100 = 140 px: clamped to 100, the mark sits at 0.7
    assert red_centre(out[0].data) == pytest.approx((0.7, 0.3), abs=0.01)
    assert red_centre(out[1].data) == pytest.approx((0.95, 0.3), abs=0.01)  # centred: box at 50 px
    edge = load(out[2].data)
    ref = marked()
    assert (edge.numpy() == ref.crop(W - 300, H - 300, 300, 300).numpy()).all()  # bottom-right corner


@pytest.mark.parametrize(
    "parent_steps",
    [
        [{"op": "resize", "width": 600}],
        [{"op": "crop", "aspect_ratio": "16:9", "gravity": "north"}, {"op": "resize", "width": 640}],
        [{"op": "rotate", "angle": 90}],
        [{"op": "rotate", "angle": 270}, {"op": "flip"}],
        [{"op": "flop"}, {"op": "pad", "left": 100, "top": 40}],
        [{"op": "resize", "width": 500, "height": 500, "fit": "contain"}],
        [{"op": "rotate", "angle": 30}],
        [{"op": "resize", "width": 500, "height": 300, "gravity": "east"}],
    ],
)
def test_the_focal_point_is_carried_through_a_from_chain(parent_steps: list) -> None:
    data = encode(marked(), ".png")
    child = run(
        data,
        {"id": "parent", "steps": parent_steps, "format": "png"},
        {"id": "child", "from": "parent", "action": "crop", "width": 120, "height": 120, "gravity": FOCAL,
         "format": "png"},
    ).variants[1]  # fmt: skip
    assert red_centre(child.data) == pytest.approx((0.5, 0.5), abs=0.04)


def test_fractions_are_of_the_upright_source() -> None:
    # stored sideways with EXIF orientation 6 (shown turned clockwise): the mark is at MARK as shown
    upright = marked(800, 1200, at=(0.25, 0.6))
    stored = upright.rot("d270").copy()
    stored.set_type(pyvips.GValue.gint_type, "orientation", 6)
    data = stored.write_to_buffer(".jpg", Q=95)
    out = run(data, {"id": "f", "action": "crop", "width": 200, "height": 200, "gravity": {"x": 0.25, "y": 0.6},
                     "format": "png"}).variants[0]  # fmt: skip
    assert red_centre(out.data) == pytest.approx((0.5, 0.5), abs=0.02)


def _spec(*variants: dict):
    return decode_job_spec({"version": 1, "pipeline": list(variants)})


def test_focal_points_are_validated() -> None:
    with pytest.raises(SpecError) as bad:
        _spec({"id": "a", "action": "crop", "width": 10, "height": 10, "gravity": {"x": 1.5, "y": 0.2}})
    assert "$.pipeline[0].gravity.x" in str(bad.value)
    with pytest.raises(SpecError) as smart:
        _spec(
            {"id": "a", "action": "crop", "aspect_ratio": "1:1", "gravity": "attention"},
            {"id": "b", "from": "a", "action": "crop", "width": 10, "height": 10, "gravity": {"x": 0.5, "y": 0.5}},
        )
    assert "$.pipeline[1].gravity: a focal point cannot follow a smart crop" in str(smart.value)
    with pytest.raises(SpecError):  # fit inside has no crop to place
        _spec({"id": "a", "action": "resize", "width": 10, "height": 10, "fit": "inside", "gravity": {"x": 0, "y": 0}})
    assert _spec({"id": "a", "action": "resize", "width": 10, "height": 10, "gravity": {"x": 0, "y": 1}})
