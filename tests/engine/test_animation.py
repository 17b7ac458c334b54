"""Animated GIF and WebP sources stay animated in gif and webp outputs, every op applied per frame
with the timing kept; other formats (or `animated: false`) take the first frame, and say so."""

from __future__ import annotations

import numpy as np
import pytest
import pyvips

from devstack.imagegen import photo
from pipeline.compile import compile_plan
from pipeline.dsl import Limits, decode_job_spec
from pipeline.errors import ImageTooLarge
from tests.engine.conftest import run

DELAYS = [100, 200, 300, 400]


def animation(width: int = 120, height: int = 80, frames: int = 4, suffix: str = ".gif") -> bytes:
    """Grey frames, each its own, with a white square moving left to right."""
    made = []
    for i in range(frames):
        frame = photo(width, height, seed=3 + i).colourspace("b-w").colourspace("srgb")
        x = 10 + i * (width - 40) // max(1, frames - 1)
        made.append(frame.draw_rect([255, 255, 255], x, height // 2 - 10, 20, 20, fill=True))
    strip = pyvips.Image.arrayjoin(made, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    strip.set_type(pyvips.GValue.array_int_type, "delay", DELAYS[:frames] + [100] * (frames - len(DELAYS)))
    strip.set_type(pyvips.GValue.gint_type, "loop", 3)
    return strip.write_to_buffer(suffix, **({"lossless": True} if suffix == ".webp" else {}))


def frames_of(data: bytes) -> list[np.ndarray]:
    animated = data.startswith(b"GIF") or data[8:12] == b"WEBP"
    image = pyvips.Image.new_from_buffer(data, "", **({"n": -1} if animated else {}))
    height = image.get("page-height") if "page-height" in image.get_fields() else image.height
    px = image.numpy()
    return [px[i * height : (i + 1) * height] for i in range(image.height // height)]


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_animation_is_kept_with_its_timing(suffix: str) -> None:
    out = run(
        animation(suffix=suffix),
        {"id": "gif", "action": "resize", "width": 60, "format": "gif"},
        {"id": "webp", "action": "resize", "width": 60, "format": "webp", "quality": 90},
        {"id": "still", "action": "resize", "width": 60, "format": "jpeg"},
        {"id": "first", "action": "resize", "width": 60, "format": "gif", "animated": False},
    )
    assert out.source.pages == 4
    gif, webp, still, first = out.variants
    for v in (gif, webp):
        assert (v.width, v.height, v.frames) == (60, 40, 4)
        decoded = pyvips.Image.new_from_buffer(v.data, "", n=-1)
        assert decoded.get("n-pages") == 4 and decoded.get("page-height") == 40
        assert list(decoded.get("delay")) == DELAYS and decoded.get("loop") == 3
    for v in (still, first):
        assert (v.width, v.height, v.frames) == (60, 40, 1)
        assert len(frames_of(v.data)) == 1


def test_every_op_applies_to_every_frame() -> None:
    data = animation()
    out = run(
        data,
        {"id": "turned", "steps": [{"op": "rotate", "angle": 90}, {"op": "flop"}], "format": "gif"},
        {"id": "padded", "steps": [{"op": "pad", "left": 10, "top": 5}, {"op": "blur", "sigma": 1}], "format": "gif"},
        {"id": "marked", "steps": [{"op": "watermark", "text": "PF", "font_size": 12}], "format": "gif"},
        {"id": "grey", "steps": [{"op": "grayscale"}, {"op": "sharpen"}], "format": "webp"},
    ).variants
    assert [(v.width, v.height, v.frames) for v in out] == [(80, 120, 4), (130, 85, 4), (120, 80, 4), (120, 80, 4)]
    source = frames_of(data)
    turned = frames_of(out[0].data)
    for i in (0, 3):  # each frame turned on its own: rot90 then flop of that frame
        expected = np.fliplr(np.rot90(source[i][..., :3], k=-1))
        assert np.abs(turned[i][..., :3].astype(int) - expected.astype(int)).mean() < 3  # gif palette


def test_a_smart_crop_is_chosen_once_so_it_does_not_jump() -> None:
    data = animation(frames=3)
    v = run(data, {"id": "c", "action": "crop", "width": 50, "height": 50, "gravity": "attention",
                   "format": "webp", "lossless": True}).variants[0]  # fmt: skip
    source, cropped = frames_of(data), frames_of(v.data)
    assert v.frames == 3
    # find frame 0's box, then every frame must be cut from the same place
    h, w = source[0].shape[:2]
    matches = [(x, y) for y in range(h - 49) for x in range(w - 49)
               if np.array_equal(source[0][y : y + 50, x : x + 50, :3], cropped[0][..., :3])]  # fmt: skip
    assert len(matches) >= 1
    x, y = matches[0]
    for i in (1, 2):
        assert np.array_equal(source[i][y : y + 50, x : x + 50, :3], cropped[i][..., :3])


def test_from_chains_keep_or_flatten_per_variant() -> None:
    out = run(
        animation(),
        {"id": "base", "action": "resize", "width": 100, "format": "webp"},
        {"id": "anim", "from": "base", "action": "crop", "aspect_ratio": "1:1", "format": "gif"},
        {"id": "poster", "from": "base", "action": "crop", "aspect_ratio": "1:1", "format": "png"},
    ).variants
    assert [(v.id, v.width, v.height, v.frames) for v in out] == [
        ("base", 100, 67, 4), ("anim", 67, 67, 4), ("poster", 67, 67, 1)
    ]  # fmt: skip


def test_frames_count_towards_the_pixel_limit_only_when_kept() -> None:
    data = animation(200, 200, frames=4)
    limits = Limits(max_source_pixels=100_000)  # one frame is 40,000 pixels, all four 160,000
    with pytest.raises(ImageTooLarge, match="4 frames"):
        run(data, {"id": "a", "format": "gif"}, limits=limits)
    still = run(data, {"id": "s", "format": "png"}, limits=limits).variants[0]
    assert still.frames == 1


def test_the_estimate_charges_every_frame() -> None:
    spec = decode_job_spec({"version": 1, "pipeline": [{"id": "a", "action": "resize", "width": 60, "format": "webp"}]})
    one = compile_plan(spec, 120, 80, source_format="gif", frames=1)
    ten = compile_plan(spec, 120, 80, source_format="gif", frames=10)
    assert ten.nodes[0].encode_cost == pytest.approx(10 * one.nodes[0].encode_cost)
    assert ten.decode_cost == pytest.approx(10 * one.decode_cost)
    assert ten.nodes[0].frames == 10
