"""Every output format round-trips; ``auto`` keeps the source's; encoder options take effect."""

from __future__ import annotations

import pytest
import pyvips

from devstack.imagegen import encode, photo
from tests.engine.conftest import load, run

MAGIC = {
    "jpeg": b"\xff\xd8\xff",
    "png": b"\x89PNG",
    "gif": b"GIF8",
    "tiff": b"II*\x00",
}


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("jpeg", "image/jpeg"),
        ("png", "image/png"),
        ("webp", "image/webp"),
        ("avif", "image/avif"),
        ("gif", "image/gif"),
        ("tiff", "image/tiff"),
    ],
)
def test_each_output_format_decodes_back(jpeg_600x400: bytes, fmt: str, content_type: str) -> None:
    v = run(jpeg_600x400, {"id": "v", "action": "resize", "width": 120, "format": fmt}).variants[0]
    assert (v.format, v.content_type) == (fmt, content_type)
    if fmt in MAGIC:
        assert v.data.startswith(MAGIC[fmt])
    image = load(v.data)
    assert (image.width, image.height) == (120, 80)


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [(".jpg", "jpeg"), (".png", "png"), (".webp", "webp"), (".gif", "gif"), (".tif", "tiff"), (".avif", "avif")],
)
def test_auto_keeps_the_source_format(suffix: str, expected: str) -> None:
    data = encode(photo(64, 48, seed=2), suffix)
    assert run(data, {"id": "v"}).variants[0].format == expected


def test_svg_sources_become_png_and_render_at_the_requested_size() -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50"><rect width="100" height="50" fill="red"/></svg>'
    v = run(svg, {"id": "v", "action": "resize", "width": 400}).variants[0]
    assert v.format == "png" and (v.width, v.height) == (400, 200)
    assert load(v.data)[0].avg() > 250


def test_quality_changes_size_and_lossless_is_exact(jpeg_600x400: bytes) -> None:
    lo, hi, exact = run(
        jpeg_600x400,
        {"id": "lo", "format": "webp", "quality": 10},
        {"id": "hi", "format": "webp", "quality": 95},
        {"id": "exact", "format": "webp", "lossless": True},
        {"id": "ref", "format": "png"},
    ).variants[:3]
    assert lo.bytes < hi.bytes < exact.bytes
    ref = run(jpeg_600x400, {"id": "ref", "format": "png"}).variants[0]
    assert (load(exact.data) - load(ref.data)).abs().max() == 0


def test_progressive_jpeg_and_interlaced_png(jpeg_600x400: bytes) -> None:
    prog, png = run(
        jpeg_600x400,
        {"id": "p", "format": "jpeg", "progressive": True},
        {"id": "i", "format": "png", "progressive": True},
    ).variants
    assert b"\xff\xc2" in prog.data  # SOF2: progressive DCT
    assert load(png.data).get("interlaced") == 1


def test_strip_removes_metadata_unless_asked_to_keep(jpeg_600x400: bytes) -> None:
    src = pyvips.Image.new_from_buffer(jpeg_600x400, "").copy()
    src.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Artist", "Ada")
    data = src.write_to_buffer(".jpg", Q=90)
    stripped, kept = run(data, {"id": "s", "format": "jpeg"}, {"id": "k", "format": "jpeg", "strip": False}).variants
    assert b"Exif" not in stripped.data[:2000]
    assert b"Exif" in kept.data[:2000]


def test_alpha_survives_in_png_and_is_flattened_for_jpeg() -> None:
    data = encode(photo(100, 50, seed=4, alpha=True), ".png")
    png, jpeg = run(data, {"id": "p", "format": "png"}, {"id": "j", "format": "jpeg"}).variants
    assert load(png.data).bands == 4
    flat = load(jpeg.data)
    assert flat.bands == 3
    assert flat.crop(0, 20, 2, 10).min() > 200  # transparent left edge flattened onto white


def test_effort_out_of_range_for_the_resolved_format_is_clamped(jpeg_600x400: bytes) -> None:
    # `auto` resolves to jpeg here, which has no effort; webp's range is 0-6
    data = encode(photo(64, 48), ".webp")
    v = run(data, {"id": "v", "effort": 9}).variants[0]
    assert v.format == "webp" and load(v.data).width == 64


def test_an_opaque_alpha_band_is_dropped_and_changes_no_pixel() -> None:
    """Several variants read the decoded source from memory; an alpha that is 255 everywhere is
    dropped there (resizes then run in 8 bits, not premultiplied float) and outputs are the same
    pixels as from the RGB original. A real alpha is kept."""
    rgb = photo(900, 600, seed=3)
    opaque = rgb.bandjoin(255).copy(interpretation="srgb")
    variants = [
        {"id": "big", "action": "resize", "width": 600, "format": "png"},
        {"id": "small", "action": "resize", "width": 200, "format": "png"},
    ]
    from_opaque = {v.id: v for v in run(encode(opaque, ".png"), *variants).variants}
    from_rgb = {v.id: v for v in run(encode(rgb, ".png"), *variants).variants}
    for vid in ("big", "small"):
        a, b = load(from_opaque[vid].data), load(from_rgb[vid].data)
        assert a.bands == 3
        assert (a - b).abs().max() == 0, vid
    translucent = run(encode(photo(900, 600, seed=3, alpha=True), ".png"), *variants).variants
    assert all(load(v.data).bands == 4 for v in translucent)
