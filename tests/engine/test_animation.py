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


def colour_animation(width: int = 160, height: int = 90, frames: int = 6, *, transparent: bool = False) -> bytes:
    """A pan across a colourful photo, as GIFs on the web are; ``transparent``: a hole in each frame."""
    wide = photo(width * 2, height, seed=9)
    made = [wide.crop(i * width // frames, 0, width, height) for i in range(frames)]
    if transparent:
        made = [f.bandjoin(255).draw_rect([0, 0, 0, 0], 10 + 5 * i, 20, 30, 30, fill=True) for i, f in enumerate(made)]
    strip = pyvips.Image.arrayjoin(made, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [0, 10, 20, 70, 100, 130][:frames])
    strip.set_type(pyvips.GValue.gint_type, "loop", 2)
    return strip.gifsave_buffer()


def test_an_animated_webp_keeps_libvips_timing_rules() -> None:
    """Pillow writes animated WebP (pipeline/pillow_encode.py); the frames' times and the loop
    count are what libvips' writer makes of the same stack: 10 ms or less shown as 100 ms."""
    data = colour_animation()
    made = run(data, {"id": "w", "action": "resize", "width": 80, "format": "webp"}).variants[0]
    stack = pyvips.Image.thumbnail_buffer(data, 80, option_string="n=-1")
    by_libvips = pyvips.Image.new_from_buffer(stack.webpsave_buffer(Q=80, keep="none"), "", n=-1)
    ours = pyvips.Image.new_from_buffer(made.data, "", n=-1)
    assert list(ours.get("delay")) == list(by_libvips.get("delay")) == [100, 100, 20, 70, 100, 130]
    assert ours.get("loop") == by_libvips.get("loop") == 2
    assert ours.get("n-pages") == 6 and ours.get("page-height") == 45


def test_an_animated_webp_keeps_colour_better_than_libvips_writer() -> None:
    """libvips hands libwebp's animation encoder YUV frames, which it converts back to RGB and
    then to YUV again (chroma subsampled twice); PixelFlow hands over RGB. At the same quality the
    frames are measurably closer to the pixels before encoding."""
    data = colour_animation(frames=4)
    made = run(data, {"id": "w", "action": "resize", "width": 120, "format": "webp", "quality": 80}).variants[0]
    stack = pyvips.Image.thumbnail_buffer(data, 120, option_string="n=-1")[0:3]  # opaque: no alpha kept
    height = stack.get("page-height")
    before = stack.numpy().reshape(-1, height, 120, 3).astype(float)

    def psnr(webp: bytes) -> float:
        frames = pyvips.Image.new_from_buffer(webp, "", n=-1).numpy()[..., :3].reshape(before.shape)
        return float(10 * np.log10(255**2 / np.mean((frames.astype(float) - before) ** 2)))

    ours, theirs = psnr(made.data), psnr(stack.webpsave_buffer(Q=80, keep="none"))
    assert ours > theirs + 0.5, (ours, theirs)


def test_a_transparent_animation_stays_transparent() -> None:
    data = colour_animation(transparent=True)
    out = run(
        data,
        {"id": "w", "action": "resize", "width": 80, "format": "webp"},
        {"id": "g", "action": "resize", "width": 80, "format": "gif"},
    ).variants
    for v in out:
        frames = frames_of(v.data)
        assert len(frames) == 6 and frames[0].shape[2] == 4
        assert frames[0][14:22, 8:16, 3].max() == 0  # the hole (scaled by 1/2), clear of its resized edge
        assert frames[0][35:, 40:, 3].min() == 255


@pytest.mark.parametrize("transparent", [False, True])
def test_gif_frames_decode_as_thumbnail_does(transparent: bool) -> None:
    """A GIF whose blocks prove it opaque (pipeline/gif.py) decodes without its alpha and resizes
    in 8 bits (pipeline/load.py); the pixels are thumbnail's either way, and the timing kept."""
    from pipeline.gif import gif_is_opaque
    from pipeline.load import decode

    data = colour_animation(transparent=transparent)
    assert gif_is_opaque(data) is not transparent
    spec = decode_job_spec({"version": 1, "pipeline": [{"id": "a", "action": "resize", "width": 80, "format": "gif"}]})
    plan = compile_plan(spec, 160, 90, source_format="gif", frames=6)
    decoded = decode(data, plan, auto_orient=True).copy_memory()
    reference = pyvips.Image.thumbnail_buffer(data, 80, option_string="n=-1")
    assert decoded.bands == (4 if transparent else 3)
    assert (decoded.width, decoded.height, decoded.get("page-height")) == (80, 270, 45)
    assert list(decoded.get("delay")) == list(reference.get("delay")) and decoded.get("loop") == 2
    assert (decoded - reference[0 : decoded.bands]).abs().max() == 0
