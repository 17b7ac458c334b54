"""The source described on request: what it is, how it was taken, its colours and placeholders."""

from __future__ import annotations

import base64
import io

import blurhash as reference_blurhash
import imagecodecs
import msgspec
import numpy as np
import pillow_heif
import pytest
import pyvips
import thumbhash as reference_thumbhash
from PIL import Image

from devstack.imagegen import encode, photo
from pipeline.details import SourceDetails
from pipeline.placeholders import blurhash, thumbhash
from tests.engine.conftest import run


def _photo_with_exif() -> bytes:
    image = photo(1200, 800, seed=31).copy()
    for name, value in (
        ("exif-ifd0-Make", "PhoneCo"),
        ("exif-ifd0-Model", "P 9"),
        ("exif-ifd2-LensModel", "P 9 back camera 6.86mm f/1.78"),
        ("exif-ifd2-DateTimeOriginal", "2026:05:01 12:34:56"),
        ("exif-ifd2-OffsetTimeOriginal", "+02:00"),
        ("exif-ifd3-GPSLatitudeRef", "S"),
        ("exif-ifd3-GPSLatitude", "33/1 51/1 3540/100"),
        ("exif-ifd3-GPSLongitudeRef", "E"),
        ("exif-ifd3-GPSLongitude", "151/1 12/1 3600/100"),
    ):
        image.set_type(pyvips.GValue.gstr_type, name, value)
    return image.write_to_buffer(".jpg", Q=90, keep="exif")


def test_info_describes_the_source_and_its_camera_without_gps_unless_asked() -> None:
    data = _photo_with_exif()
    out = run(data, {"id": "v", "action": "resize", "width": 100, "format": "webp"}, info={})
    d = out.details
    assert d is not None
    assert (d.format, d.width, d.height, d.orientation, d.frames, d.has_alpha) == ("jpeg", 1200, 800, 1, 1, False)
    assert d.camera is not None
    assert (d.camera.make, d.camera.model, d.camera.lens) == ("PhoneCo", "P 9", "P 9 back camera 6.86mm f/1.78")
    assert d.camera.taken_at == "2026-05-01T12:34:56+02:00"
    assert d.camera.location is None and d.blurhash is None and d.thumbhash is None
    located = run(data, {"id": "v", "format": "webp"}, info={"gps": True}).details
    assert located is not None and located.camera is not None and located.camera.location is not None
    assert located.camera.location.latitude == pytest.approx(-(33 + 51 / 60 + 35.4 / 3600), abs=1e-6)
    assert located.camera.location.longitude == pytest.approx(151 + 12 / 60 + 36 / 3600, abs=1e-6)
    assert run(data, {"id": "v", "format": "webp"}).details is None  # only when asked


def test_colours_profile_and_alpha() -> None:
    flat = (pyvips.Image.black(300, 200, bands=3) + [200, 30, 40]).cast("uchar").copy(interpretation="srgb")  # noqa: RUF005
    flat = flat.draw_rect([10, 10, 200], 0, 0, 60, 200, fill=True)  # a fifth is blue
    d = run(encode(flat, ".png"), {"id": "v", "format": "png"}, info={}).details
    assert d is not None and d.dominant_color == "#c81e28" and d.profile is None
    r, g, b = (int(d.average_color[i : i + 2], 16) for i in (1, 3, 5))
    assert (r, g, b) == pytest.approx((0.8 * 200 + 0.2 * 10, 0.8 * 30 + 0.2 * 10, 0.8 * 40 + 0.2 * 200), abs=2)
    p3 = flat.icc_transform("p3", input_profile="srgb", intent="relative")
    d3 = run(p3.write_to_buffer(".png", keep="icc"), {"id": "v", "format": "png"}, info={}).details
    assert d3 is not None and d3.profile is not None and "P3" in d3.profile
    assert d3.dominant_color == "#c81e28"  # described in sRGB
    alpha = run(encode(photo(200, 100, seed=2, alpha=True), ".png"), {"id": "v", "format": "png"}, info={}).details
    assert alpha is not None and alpha.has_alpha


def test_placeholders_decode_back_to_the_source_shape_and_colour() -> None:
    source = photo(900, 600, seed=7)
    out = run(encode(source, ".png"), {"id": "v", "format": "webp"}, info={"placeholders": ["blurhash", "thumbhash"]})
    d = out.details
    assert d is not None and d.blurhash and d.thumbhash
    hashed = base64.b64decode(d.thumbhash)
    # ThumbHash keeps the aspect ratio roughly (7x5 luminance terms here: 1.4)
    assert reference_thumbhash.thumb_hash_to_approximate_aspect_ratio(hashed) == pytest.approx(1.5, abs=0.15)
    average = np.asarray(reference_thumbhash.thumb_hash_to_average_rgba(hashed)[:3]) * 255
    expected = source.numpy()[..., :3].mean(axis=(0, 1))
    assert average == pytest.approx(expected, abs=6)
    decoded = np.asarray(reference_blurhash.decode(d.blurhash, 30, 20), dtype=float)[..., :3]
    assert decoded.mean(axis=(0, 1)) == pytest.approx(expected, abs=12)


@pytest.mark.parametrize("size", [(32, 24), (17, 9), (24, 32)])
def test_blurhash_is_the_reference_encoders(size: tuple[int, int]) -> None:
    rgb = photo(size[0] * 10, size[1] * 10, seed=sum(size)).resize(0.1).numpy()[..., :3].astype("uint8")
    assert blurhash(rgb) == reference_blurhash.encode(rgb, 4, 3)


@pytest.mark.parametrize("size", [(100, 75), (75, 100), (60, 20), (1, 1)])
def test_thumbhash_is_the_reference_encoders(size: tuple[int, int]) -> None:
    w, h = size
    rgb = photo(w * 4, h * 4, seed=w).resize(0.25).numpy()[..., :3].astype("uint8")[:h, :w]
    rgba = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], axis=2)
    expected = base64.b64encode(bytes(reference_thumbhash.rgba_to_thumb_hash(w, h, list(rgba.tobytes()))))
    assert thumbhash(rgb) == expected.decode()


def test_heic_exif_is_described() -> None:
    pil = Image.frombytes("RGB", (320, 240), photo(320, 240, seed=4).write_to_memory())
    exif = pil.getexif()
    exif[0x010F] = "PhoneCo"  # Make
    exif[0x0110] = "P 9"  # Model
    buf = io.BytesIO()
    pillow_heif.from_pillow(pil).save(buf, quality=90, exif=exif.tobytes())
    d = run(buf.getvalue(), {"id": "v", "format": "jpeg"}, info={}).details
    assert d is not None and d.format == "heic" and d.camera is not None
    assert (d.camera.make, d.camera.model) == ("PhoneCo", "P 9")


@pytest.mark.parametrize("alpha", [False, True])
def test_a_jpeg_xl_source_is_described_with_a_boolean_alpha(alpha: bool) -> None:
    """JPEG XL has no libvips header, so the alpha comes from the decoded pixels, where libvips
    answers 0 or 1: an int crossed the sandbox's typed pipe and failed the job (found by
    bench.fuzz)."""
    data = imagecodecs.jpegxl_encode(photo(120, 80, seed=5, alpha=alpha).numpy(), level=90, effort=3)
    d = run(data, {"id": "v", "format": "png"}, info={}).details
    assert d is not None and d.format == "jxl" and d.has_alpha is alpha
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(d), type=SourceDetails) == d  # as the sandbox sends it


@pytest.mark.parametrize("bands", [1, 2, 3])
def test_a_single_pixel_is_described(bands: int) -> None:
    pixel = (pyvips.Image.black(1, 1, bands=bands) + 200).cast("uchar")
    pixel = pixel.copy(interpretation="b-w" if bands < 3 else "srgb")
    d = run(
        encode(pixel, ".png"), {"id": "v", "format": "png"}, info={"placeholders": ["blurhash", "thumbhash"]}
    ).details
    assert d is not None and (d.width, d.height) == (1, 1) and d.blurhash and d.thumbhash
    assert all(abs(int(d.average_color[i : i + 2], 16) - 200) <= 4 for i in (1, 3, 5)), d.average_color


def test_an_animation_is_described_by_its_first_frame() -> None:
    frames = [photo(160, 120, seed=i) for i in range(3)]
    strip = pyvips.Image.arrayjoin(frames, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", 120)
    out = run(strip.gifsave_buffer(), {"id": "a", "format": "webp"}, info={"placeholders": ["thumbhash"]})
    assert out.details is not None and out.details.frames == 3 and out.variants[0].frames == 3
    ratio = reference_thumbhash.thumb_hash_to_approximate_aspect_ratio(base64.b64decode(out.details.thumbhash))
    assert ratio == pytest.approx(160 / 120, abs=0.15)  # a frame's shape, not the stack's


@pytest.mark.parametrize(
    "exif",
    [b"Exif\x00\x00" + b"\xff" * 64, b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff" + b"\x00" * 32, b"\x00" * 16],
)
def test_malformed_exif_is_no_failure(exif: bytes) -> None:
    """EXIF is the least trustworthy part of a file: a broken block describes nothing and keeps nothing."""
    image = photo(120, 80, seed=1).copy()
    image.set_type(pyvips.GValue.blob_type, "exif-data", exif)
    data = image.write_to_buffer(".jpg", Q=90, keep="exif")
    out = run(data, {"id": "v", "format": "jpeg", "keep": ["exif"]}, {"id": "w", "format": "webp"}, info={})
    assert out.details is not None and out.details.camera is None
    assert [v.width for v in out.variants] == [120, 120]
