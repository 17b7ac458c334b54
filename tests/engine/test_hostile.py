"""Hostile and odd inputs: every one ends in a typed error or a correct image, never a crash or hang."""

from __future__ import annotations

import struct
import zlib

import pytest
import pyvips

from devstack.imagegen import encode, photo
from pipeline.dsl import Limits
from pipeline.errors import CorruptImage, DeadlineExceeded, ImageTooLarge, UnsupportedFormat
from tests.engine.conftest import load, run


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


def _jxl(image: pyvips.Image) -> bytes:
    import imagecodecs

    return imagecodecs.jpegxl_encode(image.numpy(), level=90, effort=3)


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
        "heic with nothing after its brand",
        lambda j: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64,
        CorruptImage,
        "heic header cannot be read",
    ),
    (
        "truncated jpeg xl",
        lambda j: _jxl(photo(300, 200))[:400],
        CorruptImage,
        "jxl image data is corrupt or truncated",
    ),
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


def test_the_engine_starts_no_step_once_its_time_is_up() -> None:
    """In process the deadline is looked at between steps; the hard stop inside libvips is the
    sandbox killing its child (test_sandbox.py)."""
    data = encode(photo(300, 200, seed=1), ".png", compression=1)
    with pytest.raises(DeadlineExceeded, match=r"longer than 1e-09 s"):
        run(
            data,
            {"id": "a", "steps": [{"op": "blur", "sigma": 60}], "format": "png"},
            limits=Limits(deadline_seconds=1e-9),
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


def claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its frame header (SOF) patched to claim ``width`` x ``height``."""
    i = 2
    while i < len(jpeg):
        marker, length = jpeg[i + 1], struct.unpack(">H", jpeg[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xC2:
            return jpeg[: i + 5] + struct.pack(">HH", height, width) + jpeg[i + 9 :]
        i += 2 + length
    raise ValueError("no SOF segment")


def scan_start(jpeg: bytes) -> int:
    return jpeg.index(b"\xff\xda")


@pytest.fixture(scope="module")
def big_photo() -> pyvips.Image:
    return photo(2400, 1600, seed=4)


def truncated_jpeg(progressive: bool, eoi: bool) -> bytes:
    """A 400x300 JPEG claiming 10000x10000, cut a few hundred bytes into its scan, optionally
    closed by an EOI marker. libjpeg calls data that stops at a marker only a warning, fills the
    rest with grey, and libvips used to report success: a 100 MP grey image from 1 KB."""
    data = claiming(encode(photo(400, 300, seed=1), ".jpg", Q=90, keep="none", interlace=progressive), 10_000, 10_000)
    cut = data[: scan_start(data) + 300]
    return cut + b"\xff\xd9" if eoi else cut


def cut_webp(data: bytes, drop: int) -> bytes:
    """``data`` less its last ``drop`` bytes, with the RIFF and bitstream chunk sizes rewritten to
    match, so the header reads and only the pixels run short."""
    out = bytearray(data[:-drop])
    out[4:8] = struct.pack("<I", len(out) - 8)
    assert out[12:16] in (b"VP8 ", b"VP8L")  # simple format: the bitstream is the first chunk
    out[16:20] = struct.pack("<I", len(out) - 20)
    return bytes(out)


TRUNCATED = [
    ("jpeg cut in its scan", lambda p: truncated_jpeg(progressive=False, eoi=False)),
    ("jpeg cut in its scan, then EOI", lambda p: truncated_jpeg(progressive=False, eoi=True)),
    ("progressive jpeg cut, then EOI", lambda p: truncated_jpeg(progressive=True, eoi=True)),
    ("jpeg cut, then a restart marker", lambda p: truncated_jpeg(progressive=False, eoi=False) + b"\xff\xd0"),
    ("png cut in its IDAT", lambda p: encode(p, ".png", compression=1)[:40_000]),
    ("png cut, then IEND", lambda p: encode(p, ".png", compression=1)[:40_000] + PNG_IEND),
    ("interlaced png cut", lambda p: encode(p, ".png", compression=1, interlace=True)[:40_000]),
    ("webp cut in its bitstream", lambda p: cut_webp(encode(p, ".webp", Q=80, keep="none"), 100)),
    ("lossless webp cut", lambda p: cut_webp(encode(p, ".webp", lossless=True, effort=0, keep="none"), 3_000_000)),
]
PNG_IEND = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


@pytest.mark.parametrize("make", [c[1] for c in TRUNCATED], ids=[c[0] for c in TRUNCATED])
@pytest.mark.parametrize("variants", [1, 2], ids=["streamed", "materialised"])
def test_truncated_sources_fail_even_when_shrunk_on_load(big_photo: pyvips.Image, make, variants: int) -> None:
    # 300 px wide from 2400+ px: JPEG DCT-scales, WebP scales on load, PNG is shrunk after decoding.
    # One variant streams the source into its encoder; two hold the decoded source in memory.
    wanted = [{"id": "a", "action": "resize", "width": 300}, {"id": "b", "action": "resize", "width": 100}]
    with pytest.raises(CorruptImage, match="corrupt or truncated") as info:
        run(make(big_photo), *wanted[:variants])
    assert info.value.code == "corrupt_image"


def test_a_whole_jpeg_still_decodes_when_shrunk_on_load(big_photo: pyvips.Image) -> None:
    data = encode(big_photo, ".jpg", Q=90)
    v = run(data, {"id": "a", "action": "resize", "width": 300, "format": "png"}).variants[0]
    assert (v.width, v.height) == (300, 200) and load(v.data).deviate() > 10


def test_stray_bytes_between_jpeg_segments_are_refused_too(good_jpeg: bytes) -> None:
    # The price of failing JPEG loads on libjpeg's warnings (pipeline/load.py): this file is
    # viewable, but libjpeg warns about it exactly as it does about data cut short.
    frame = good_jpeg.index(b"\xff\xc0")
    with pytest.raises(CorruptImage, match="corrupt or truncated") as info:
        run(good_jpeg[:frame] + b"\x00\x00" + good_jpeg[frame:], {"id": "a", "action": "resize", "width": 100})
    assert "extraneous bytes" in (info.value.detail or "")
