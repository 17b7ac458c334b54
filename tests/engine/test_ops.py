"""Each op, table-driven on generated images: sizes, placement, pixels, and plan predictions."""

from __future__ import annotations

import pytest
import pyvips

from devstack.imagegen import encode, photo, with_orientation
from pipeline.dsl import Limits
from pipeline.errors import AssetNotFound, InvalidOperation, OutputTooLarge
from tests.engine.conftest import load, red_corner, run

SIZE_CASES = [
    ("resize width", [{"op": "resize", "width": 300}], (300, 200)),
    ("resize height", [{"op": "resize", "height": 100}], (150, 100)),
    ("resize cover", [{"op": "resize", "width": 200, "height": 200}], (200, 200)),
    ("resize contain", [{"op": "resize", "width": 200, "height": 200, "fit": "contain"}], (200, 200)),
    ("resize fill", [{"op": "resize", "width": 123, "height": 321, "fit": "fill"}], (123, 321)),
    ("resize inside", [{"op": "resize", "width": 200, "height": 200, "fit": "inside"}], (200, 133)),
    ("resize outside", [{"op": "resize", "width": 200, "height": 200, "fit": "outside"}], (300, 200)),
    ("resize enlarge", [{"op": "resize", "width": 1200}], (1200, 800)),
    ("resize no enlarge", [{"op": "resize", "width": 1200, "without_enlargement": True}], (600, 400)),
    ("cover attention", [{"op": "resize", "width": 100, "height": 300, "gravity": "attention"}], (100, 300)),
    ("crop box", [{"op": "crop", "left": 10, "top": 20, "width": 100, "height": 50}], (100, 50)),
    ("crop gravity", [{"op": "crop", "width": 100, "height": 50, "gravity": "southeast"}], (100, 50)),
    ("crop aspect", [{"op": "crop", "aspect_ratio": "1:1"}], (400, 400)),
    ("crop entropy", [{"op": "crop", "aspect_ratio": "9:16", "gravity": "entropy"}], (225, 400)),
    ("rotate 90", [{"op": "rotate", "angle": 90}], (400, 600)),
    ("rotate -90", [{"op": "rotate", "angle": -90}], (400, 600)),
    ("rotate 180", [{"op": "rotate", "angle": 180}], (600, 400)),
    ("rotate 30", [{"op": "rotate", "angle": 30}], (720, 646)),
    ("flip", [{"op": "flip"}], (600, 400)),
    ("flop", [{"op": "flop"}], (600, 400)),
    ("blur", [{"op": "blur", "sigma": 2}], (600, 400)),
    ("sharpen", [{"op": "sharpen"}], (600, 400)),
    ("grayscale", [{"op": "grayscale"}], (600, 400)),
    ("modulate", [{"op": "modulate", "brightness": 1.2, "saturation": 0, "hue": 30}], (600, 400)),
    ("pad", [{"op": "pad", "top": 1, "right": 2, "bottom": 3, "left": 4}], (606, 404)),
    ("watermark text", [{"op": "watermark", "text": "PixelFlow"}], (600, 400)),
    ("chain", [{"op": "rotate", "angle": 90}, {"op": "resize", "width": 100}, {"op": "pad", "left": 10}], (110, 150)),
]


@pytest.mark.parametrize(("steps", "size"), [c[1:] for c in SIZE_CASES], ids=[c[0] for c in SIZE_CASES])
def test_output_sizes_match_the_plan(jpeg_600x400: bytes, steps: list, size: tuple) -> None:
    out = run(jpeg_600x400, {"id": "v", "steps": steps, "format": "png"})
    v = out.variants[0]
    assert (v.width, v.height) == size
    assert out.plan.nodes[0].predicted_size == size
    decoded = load(v.data)
    assert (decoded.width, decoded.height) == size


@pytest.mark.parametrize(
    ("steps", "corner"),
    [
        ([], "nw"),
        ([{"op": "flip"}], "sw"),
        ([{"op": "flop"}], "ne"),
        ([{"op": "rotate", "angle": 90}], "ne"),
        ([{"op": "rotate", "angle": 180}], "se"),
        ([{"op": "rotate", "angle": 270}], "sw"),
        ([{"op": "crop", "width": 300, "height": 200, "gravity": "northwest"}], "nw"),
        ([{"op": "resize", "width": 50}, {"op": "flop"}, {"op": "flip"}], "se"),
    ],
)
def test_geometry_moves_the_marker(jpeg_600x400: bytes, steps: list, corner: str) -> None:
    out = run(jpeg_600x400, {"id": "v", "steps": steps, "format": "png"})
    assert red_corner(load(out.variants[0].data)) == corner


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation: int) -> None:
    upright = photo(60, 40, seed=5)
    data = encode(with_orientation(upright, orientation), ".jpg", Q=95)
    out = run(data, {"id": "v", "action": "resize", "width": 30, "format": "png"})
    image = load(out.variants[0].data)
    assert (image.width, image.height) == (30, 20)
    assert red_corner(image) == "nw"
    assert out.source.orientation == orientation


def test_auto_orient_can_be_turned_off() -> None:
    data = encode(with_orientation(photo(60, 40, seed=5), 6), ".jpg", Q=95)
    out = run(data, {"id": "v", "format": "png"}, auto_orient=False)
    assert (out.variants[0].width, out.variants[0].height) == (40, 60)


def test_crop_box_outside_the_image_is_a_typed_error(jpeg_600x400: bytes) -> None:
    with pytest.raises(InvalidOperation, match="lies outside the 600x400 image"):
        run(jpeg_600x400, {"id": "v", "action": "crop", "left": 550, "top": 0, "width": 100, "height": 10})


def test_output_limit_is_enforced_after_each_step(jpeg_600x400: bytes) -> None:
    with pytest.raises(OutputTooLarge, match="would be 3000x2000"):
        run(jpeg_600x400, {"id": "v", "action": "resize", "width": 3000}, limits=Limits(max_output_pixels=5_000_000))


def test_grayscale_has_one_band_and_modulate_changes_brightness(jpeg_600x400: bytes) -> None:
    out = run(
        jpeg_600x400,
        {"id": "g", "action": "grayscale", "format": "png"},
        {"id": "dark", "action": "modulate", "brightness": 0.5, "format": "png"},
        {"id": "same", "format": "png"},
    )
    gray, dark, same = (load(v.data) for v in out.variants)
    assert gray.bands == 1
    assert dark.avg() < same.avg() * 0.7


def test_pad_and_contain_fill_with_the_background(jpeg_600x400: bytes) -> None:
    out = run(
        jpeg_600x400,
        {"id": "pad", "action": "pad", "top": 20, "background": "#00ff00", "format": "png"},
        {"id": "box", "action": "resize", "width": 300, "height": 300, "fit": "contain", "background": "#0000ff"},
        {"id": "clear", "action": "pad", "left": 10, "background": "#ff000000", "format": "png"},
    )
    pad, box, clear = (load(v.data) for v in out.variants)
    assert pad.crop(0, 0, 600, 20).avg() == pytest.approx((0 + 255 + 0) / 3, abs=1)
    assert box.crop(0, 0, 300, 40)[2].avg() > 240 and box.crop(0, 0, 300, 40)[0].avg() < 15
    assert clear.bands == 4 and clear.crop(0, 0, 10, 400)[3].max() == 0 and clear.crop(10, 0, 10, 400)[3].min() == 255


def test_text_watermark_marks_the_requested_corner(jpeg_600x400: bytes) -> None:
    base, marked = run(
        jpeg_600x400,
        {"id": "base", "format": "png"},
        {"id": "marked", "action": "watermark", "text": "PF", "opacity": 1, "gravity": "northeast", "format": "png"},
    ).variants
    diff = (load(base.data) - load(marked.data)).abs()
    assert diff.crop(300, 0, 300, 200).max() > 100  # top-right changed
    assert diff.crop(0, 200, 300, 200).max() == 0  # bottom-left untouched


def test_image_watermark_is_resolved_once_and_scaled(jpeg_600x400: bytes) -> None:
    logo = encode(pyvips.Image.black(40, 20, bands=3).new_from_image([0, 255, 0]).copy(interpretation="srgb"), ".png")
    reads: list[str] = []

    def assets(key: str) -> bytes:
        reads.append(key)
        return {"brand/logo.png": logo}[key]

    mark = {
        "op": "watermark",
        "image": "brand/logo.png",
        "width": 80,
        "opacity": 1,
        "gravity": "southwest",
        "margin": 0,
    }
    out = run(
        jpeg_600x400,
        {"id": "a", "steps": [mark], "format": "png"},
        {"id": "b", "steps": [mark], "format": "png"},
        assets=assets,
    )
    assert reads == ["brand/logo.png"]
    img = load(out.variants[0].data)
    green = img.crop(0, 400 - 40, 80, 40)
    assert green[1].avg() > 250 and green[0].avg() < 5


def test_missing_watermark_asset_is_a_typed_error(jpeg_600x400: bytes) -> None:
    with pytest.raises(AssetNotFound, match=r"'nope\.png' does not exist"):
        run(jpeg_600x400, {"id": "a", "action": "watermark", "image": "nope.png"}, assets=lambda key: {}[key])
    with pytest.raises(AssetNotFound, match="no asset store"):
        run(jpeg_600x400, {"id": "a", "action": "watermark", "image": "nope.png"})


def test_from_starts_at_the_parents_pixels_before_encoding(jpeg_600x400: bytes) -> None:
    out = run(
        jpeg_600x400,
        {"id": "gray", "action": "grayscale", "format": "jpeg", "quality": 10},
        {"id": "small", "from": "gray", "action": "resize", "width": 60, "format": "png"},
    )
    small = load(out.variants[1].data)
    assert small.bands == 1 and small.width == 60


def test_source_is_decoded_once_for_many_variants(jpeg_600x400: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import load

    calls: list[tuple] = []
    original = load.thumbnail_bytes

    def counting(*args, **kwargs):
        calls.append(args[1:])
        return original(*args, **kwargs)

    monkeypatch.setattr(load, "thumbnail_bytes", counting)
    out = run(
        jpeg_600x400,
        {"id": "a", "action": "resize", "width": 300},
        {"id": "b", "action": "resize", "width": 100, "height": 100},
        {"id": "c", "action": "rotate", "angle": 90},
    )
    assert len(out.variants) == 3
    assert len(calls) == 1
