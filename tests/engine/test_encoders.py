"""Lossy WebP and JPEG go through Pillow's codecs (faster, see pipeline/pillow_encode.py): they
must write the very bytes libvips' encoders write (animated WebP, better than libvips' writer:
tests/engine/test_animation.py), and what they do not cover stays with libvips."""

from __future__ import annotations

import pytest
import pyvips

from devstack.imagegen import encode, photo
from pipeline.dsl import decode_job_spec
from pipeline.encode import encode as encode_variant
from pipeline.encoders import Encoding
from pipeline.pillow_encode import can_write_jpeg, can_write_webp
from tests.engine.conftest import load, run


def _variant(**fields: object):
    return decode_job_spec({"version": 1, "pipeline": [{"id": "v", **fields}]}).pipeline[0]


@pytest.mark.parametrize("alpha", [False, True])
@pytest.mark.parametrize(("quality", "effort"), [(10, 0), (80, 4), (95, 6)])
def test_lossy_webp_is_byte_identical_to_libvips(alpha: bool, quality: int, effort: int) -> None:
    image = photo(321, 203, seed=7, alpha=alpha)
    data, content_type, _ = encode_variant(image, _variant(format="webp", quality=quality, effort=effort), "webp")
    assert content_type == "image/webp"
    assert data == image.webpsave_buffer(Q=quality, effort=effort, keep="none")


@pytest.mark.parametrize("grey", [False, True])
@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("quality", [40, 80, 89, 90, 97])
def test_jpeg_is_byte_identical_to_libvips(quality: int, progressive: bool, grey: bool) -> None:
    image = photo(321, 203, seed=7)
    if grey:
        image = image.colourspace("b-w")
    data, _, _ = encode_variant(image, _variant(format="jpeg", quality=quality, progressive=progressive), "jpeg")
    assert data == image.jpegsave_buffer(Q=quality, optimize_coding=True, interlace=progressive, keep="none")
    if not grey:
        assert load(data).get("jpeg-chroma-subsample") == ("4:4:4" if quality >= 90 else "4:2:0")
    assert (b"\xff\xc2" in data) is progressive  # SOF2: progressive DCT


def test_grey_jpeg_stays_one_band_and_alpha_is_flattened_onto_white() -> None:
    grey = photo(64, 48, seed=2).colourspace("b-w")
    data, _, _ = encode_variant(grey, _variant(format="jpeg"), "jpeg")
    assert load(data).bands == 1
    rgba = photo(100, 50, seed=4, alpha=True)
    data, _, _ = encode_variant(rgba, _variant(format="jpeg"), "jpeg")
    flat = load(data)
    assert flat.bands == 3 and flat.crop(0, 20, 2, 10).min() > 200


def test_what_pillow_does_not_cover_is_still_written_by_libvips() -> None:
    # kept metadata: the ICC profile and EXIF travel only through libvips' savers
    src = photo(120, 80, seed=1).copy()
    src.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Artist", "Ada")
    data = src.write_to_buffer(".jpg", Q=90, profile="srgb")
    kept_jpeg, kept_webp = run(
        data, {"id": "j", "format": "jpeg", "strip": False}, {"id": "w", "format": "webp", "strip": False}
    ).variants
    for v in (kept_jpeg, kept_webp):
        fields = load(v.data).get_fields()
        assert "exif-data" in fields and "icc-profile-data" in fields
    # lossless WebP is exact; 16-bit pixels are written by libvips
    lossless = run(data, {"id": "x", "format": "webp", "lossless": True}).variants[0]
    ref = run(data, {"id": "ref", "format": "png"}).variants[0]
    assert (load(lossless.data) - load(ref.data)).abs().max() == 0
    deep = (photo(40, 30, seed=3).cast("ushort") * 256).copy(interpretation="rgb16")
    data16, _, _ = encode_variant(deep, _variant(format="jpeg"), "jpeg")
    assert load(data16).width == 40


def test_variants_sharing_pixels_encode_the_same_image_each_in_its_own_format() -> None:
    data = encode(photo(900, 600, seed=9), ".png")
    webp, png = run(
        data,
        {"id": "w", "action": "resize", "width": 300, "format": "webp", "lossless": True},
        {"id": "p", "action": "resize", "width": 300, "format": "png"},
    ).variants
    assert (webp.width, webp.height) == (png.width, png.height) == (300, 200)
    assert (load(webp.data) - load(png.data)).abs().max() == 0  # twins: the very same pixels
    solo = run(data, {"id": "p", "action": "resize", "width": 300, "format": "png"}).variants[0]
    assert solo.data == png.data  # and what the variant makes on its own


def test_which_images_pillow_writes() -> None:
    rgb, rgba = photo(64, 48, seed=1), photo(64, 48, seed=1, alpha=True)
    grey, deep = rgb.colourspace("b-w"), rgb.colourspace("rgb16")
    assert can_write_webp(rgb) and can_write_webp(rgba)
    assert can_write_jpeg(rgb) and can_write_jpeg(grey)
    assert not can_write_jpeg(rgba)  # flattened first by the encoder
    assert not can_write_jpeg(deep)
    assert Encoding(rgb, _variant(format="webp"), 80, "none").pillow_may
    assert not Encoding(rgb, _variant(format="webp", lossless=True), 80, "none").pillow_may
    assert not Encoding(rgb, _variant(format="jpeg", keep=["exif"]), 80, "exif").pillow_may
    assert not can_write_webp(pyvips.Image.black(16384, 2, bands=3).copy(interpretation="srgb"))
    stack = pyvips.Image.arrayjoin([rgb] * 400, across=1).copy()  # 400 frames: 19,200 px tall, each 48
    stack.set_type(pyvips.GValue.gint_type, "page-height", 48)
    assert can_write_webp(stack)  # libwebp's limit is per frame
    assert not can_write_jpeg(stack)


def test_a_job_leaves_no_pixels_in_the_operation_cache() -> None:
    """libvips' cache holds its operations' images; a job's would outlive it in the engine child."""
    run(encode(photo(300, 200, seed=2), ".png"), {"id": "a", "action": "resize", "width": 100, "format": "webp"})
    assert pyvips.cache_get_size() == 0
