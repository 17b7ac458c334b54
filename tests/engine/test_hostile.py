"""Hostile and odd inputs: every one ends in a typed error or a correct image, never a crash or hang."""

from __future__ import annotations

import struct
import zlib

import pytest
import pyvips

from pipeline.errors import CorruptImage, DeadlineExceeded, ImageTooLarge, UnsupportedFormat
from pipeline.spec import Limits
from tests.engine.conftest import load, run
from tests.imagegen import encode, photo


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` in a few dozen bytes: the classic bomb shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def animated_gif(frames: int) -> bytes:
    # frames must differ or gifsave merges them
    rows = pyvips.Image.xyz(16, 16 * frames)[1]
    strip = rows.bandjoin([rows, rows]).cast("uchar").copy(interpretation="srgb")
    strip.set_type(pyvips.GValue.gint_type, "page-height", 16)
    return strip.write_to_buffer(".gif")


@pytest.fixture(scope="module")
def good_jpeg() -> bytes:
    return encode(photo(400, 300, seed=9), ".jpg", Q=90)


HOSTILE = [
    ("truncated jpeg", lambda j: j[: len(j) // 2], CorruptImage, "corrupt or truncated"),
    ("jpeg header only", lambda j: j[:400], CorruptImage, "corrupt or truncated|cannot be"),
    ("garbage", lambda j: b"\x00" * 1000, UnsupportedFormat, "not a recognised image"),
    (
        "random bytes after magic",
        lambda j: b"\xff\xd8\xff" + bytes(range(256)) * 8,
        CorruptImage,
        "corrupt or truncated|cannot be",
    ),
    ("truncated png", lambda j: encode(photo(300, 200), ".png")[:3000], CorruptImage, "corrupt or truncated|cannot be"),
    ("pdf", lambda j: b"%PDF-1.4\n1 0 obj<<>>endobj\n", UnsupportedFormat, "PDF"),
    (
        "heic",
        lambda j: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64,
        UnsupportedFormat,
        "HEIC/HEIF is not supported",
    ),
    ("jpeg xl", lambda j: b"\xff\x0a\xfa\x7f" + b"\x00" * 64, UnsupportedFormat, "JPEG XL"),
    ("bomb png", lambda j: png_header_only(100_000, 100_000), ImageTooLarge, "100000x100000"),
    (
        "svg bomb",
        lambda j: b'<svg xmlns="http://www.w3.org/2000/svg" width="90000" height="90000"/>',
        ImageTooLarge,
        "90000x90000",
    ),
]


@pytest.mark.parametrize(("make", "error", "match"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_inputs_fail_with_a_reason(good_jpeg: bytes, make, error: type, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        run(make(good_jpeg), {"id": "a", "action": "resize", "width": 100}, {"id": "b", "format": "png"})
    assert info.value.public and info.value.code


def test_byte_limit_is_checked_before_decoding(good_jpeg: bytes) -> None:
    with pytest.raises(ImageTooLarge, match="bytes; the limit is 1000"):
        run(good_jpeg, {"id": "a"}, limits=Limits(max_source_bytes=1000))


def test_pixel_limit_counts_the_header(good_jpeg: bytes) -> None:
    with pytest.raises(ImageTooLarge, match="120000 pixels"):
        run(good_jpeg, {"id": "a"}, limits=Limits(max_source_pixels=100_000))


def test_frame_limit() -> None:
    with pytest.raises(ImageTooLarge, match="5 frames; the limit is 3"):
        run(animated_gif(5), {"id": "a"}, limits=Limits(max_frames=3))
    v = run(animated_gif(3), {"id": "a", "format": "png"}, limits=Limits(max_frames=3)).variants[0]
    assert (v.width, v.height) == (16, 16)  # the first frame


def test_deadline_kills_work_inside_libvips() -> None:
    data = encode(photo(3000, 2000, seed=1), ".png", compression=1)
    with pytest.raises(DeadlineExceeded, match=r"longer than 0\.05 s"):
        run(
            data,
            {"id": "a", "steps": [{"op": "blur", "sigma": 60}], "format": "png"},
            limits=Limits(deadline_seconds=0.05),
        )


def test_cmyk_jpeg_becomes_srgb(good_jpeg: bytes) -> None:
    cmyk = pyvips.Image.new_from_buffer(good_jpeg, "").icc_export(output_profile="cmyk")
    data = cmyk.write_to_buffer(".jpg", Q=95)
    assert pyvips.Image.new_from_buffer(data, "").interpretation == "cmyk"
    v = run(data, {"id": "a", "action": "resize", "width": 100, "format": "png"}).variants[0]
    image = load(v.data)
    assert image.bands == 3 and image.interpretation == "srgb"


@pytest.mark.parametrize("grey", [False, True])
def test_16_bit_sources_are_reduced_to_8_bit(grey: bool) -> None:
    base = photo(80, 60, seed=2)
    if grey:
        base = base.colourspace("b-w")
    deep = base.colourspace("grey16" if grey else "rgb16")
    data = deep.write_to_buffer(".png")
    assert pyvips.Image.new_from_buffer(data, "").format == "ushort"
    v = run(data, {"id": "a", "format": "png"}, {"id": "b", "format": "jpeg"}).variants[0]
    image = load(v.data)
    assert image.format == "uchar" and image.bands == (1 if grey else 3)


def test_corrupt_pixels_fail_only_when_read_and_report_the_variant(good_jpeg: bytes) -> None:
    # One root variant, so the source is streamed (not materialised) and the error arises at encode.
    with pytest.raises(CorruptImage, match="variant 'only'"):
        run(good_jpeg[: len(good_jpeg) * 2 // 3], {"id": "only", "format": "png"})
