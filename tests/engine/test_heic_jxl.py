"""HEIC/HEIF and JPEG XL sources (decoded by pi-heif and imagecodecs, handed to libvips once) and
JPEG XL output, over files made by pillow-heif's and libjxl's own encoders."""

from __future__ import annotations

import io

import imagecodecs
import numpy as np
import pillow_heif
import pytest
import pyvips
from PIL import Image

from devstack.imagegen import encode, photo
from pipeline.dsl import Limits
from pipeline.errors import CorruptImage, ImageTooLarge
from pipeline.jxl import jxl_header
from pipeline.load import probe
from tests.engine.conftest import load, run


def heic(image: pyvips.Image, **save: object) -> bytes:
    mode = {3: "RGB", 4: "RGBA"}[image.bands]
    pil = Image.frombytes(mode, (image.width, image.height), image.write_to_memory())
    out = io.BytesIO()
    pillow_heif.from_pillow(pil).save(out, quality=90, **save)
    return out.getvalue()


def jxl(image: pyvips.Image, *, lossless: bool = False, container: bool = False) -> bytes:
    if lossless:
        return imagecodecs.jpegxl_encode(image.numpy(), lossless=True, effort=3, usecontainer=container)
    return imagecodecs.jpegxl_encode(image.numpy(), level=90, effort=3, usecontainer=container)


def mean_difference(a: pyvips.Image, b: pyvips.Image) -> float:
    return float(np.abs(a.numpy().astype(float) - b.numpy().astype(float)).mean())


def test_heic_photo_becomes_every_variant() -> None:
    source = photo(900, 600, seed=3)
    data = heic(source)
    out = run(
        data,
        {"id": "w", "action": "resize", "width": 300, "format": "webp"},
        {"id": "j", "action": "resize", "width": 450, "format": "jpeg"},
        {"id": "auto", "action": "resize", "width": 200},
    )
    assert out.source.format == "heic" and (out.source.width, out.source.height) == (900, 600)
    w, j, auto = out.variants
    assert (w.width, w.height, j.width, j.height) == (300, 200, 450, 300)
    assert auto.format == "jpeg"  # `auto` of a HEIC: no HEVC encoder here
    reference = run(encode(source, ".png"), {"id": "j", "action": "resize", "width": 450, "format": "png"})
    assert mean_difference(load(j.data), load(reference.variants[0].data)) < 4  # HEVC + JPEG losses only


def test_heic_alpha_and_ten_bits() -> None:
    rgba = photo(120, 80, seed=4, alpha=True)
    png = run(heic(rgba), {"id": "p", "format": "png"}).variants[0]
    assert load(png.data).bands == 4
    assert load(png.data)[3].min() < 50  # the transparent edge survived
    ten = pillow_heif.from_bytes(mode="RGB;16", size=(64, 32), data=(np.full((32, 64, 3), 40000, np.uint16)).tobytes())
    out = io.BytesIO()
    ten.save(out, quality=95)
    assert pillow_heif.open_heif(io.BytesIO(out.getvalue())).info["bit_depth"] == 10
    v = run(out.getvalue(), {"id": "p", "format": "png"}).variants[0]
    assert abs(load(v.data).avg() - 40000 / 257) < 3  # scaled to 8 bits, not clipped


def test_heic_orientation_is_applied_once() -> None:
    pil = Image.new("RGB", (64, 32), (255, 255, 255))
    pil.paste((255, 0, 0), (0, 0, 16, 16))  # red at top-left of the stored image
    exif = pil.getexif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: red at top-right
    buf = io.BytesIO()
    pillow_heif.register_heif_opener()  # Pillow's save moves the EXIF orientation into HEIF's transforms
    pil.save(buf, "HEIF", quality=95, exif=exif.tobytes())
    info = probe(buf.getvalue(), Limits())
    assert (info.width, info.height) == (32, 64)
    out = load(run(buf.getvalue(), {"id": "p", "format": "png"}).variants[0].data)
    assert (out.width, out.height) == (32, 64)
    assert out.getpoint(28, 4)[0] > 200 and out.getpoint(28, 4)[2] < 80  # top-right is red
    assert out.getpoint(4, 4)[2] > 200  # top-left is white


def test_display_p3_heic_is_converted_to_srgb() -> None:
    srgb = (pyvips.Image.black(64, 64, bands=3) + [230, 40, 30]).cast("uchar").copy(interpretation="srgb")  # noqa: RUF005
    p3 = srgb.icc_transform("p3", input_profile="srgb", intent="relative")
    pil = Image.frombytes("RGB", (64, 64), p3.write_to_memory())
    buf = io.BytesIO()
    pillow_heif.from_pillow(pil).save(buf, quality=100, icc_profile=p3.get("icc-profile-data"))
    out = load(run(buf.getvalue(), {"id": "p", "format": "png"}).variants[0].data)
    assert mean_difference(out, srgb) < 4  # P3 values read through their profile
    assert mean_difference(out, pyvips.Image.new_from_memory(p3.write_to_memory(), 64, 64, 3, "uchar")) > 10


def test_jpeg_xl_in_and_out() -> None:
    source = photo(640, 480, seed=5)
    out = run(
        jxl(source),
        {"id": "small", "action": "resize", "width": 320, "format": "webp"},
        {"id": "same", "format": "auto"},
        {"id": "exact", "format": "jxl", "lossless": True},
        {"id": "lossy", "format": "jxl", "quality": 60, "effort": 3},
    )
    assert out.source.format == "jxl" and (out.source.width, out.source.height) == (640, 480)
    small, same, exact, lossy = out.variants
    assert (small.width, small.height) == (320, 240)
    assert same.format == "jxl" and same.content_type == "image/jxl" and same.data.startswith(b"\xff\x0a")
    decoded = pyvips.Image.new_from_array(imagecodecs.jpegxl_decode(exact.data))
    png = load(run(jxl(source), {"id": "p", "format": "png"}).variants[0].data)
    assert (decoded - png).abs().max() == 0  # lossless is exact
    assert lossy.bytes < exact.bytes


@pytest.mark.parametrize("lossless", [False, True])
@pytest.mark.parametrize("bands", [1, 2, 3])
def test_jpeg_xl_output_of_a_single_pixel(bands: int, lossless: bool) -> None:
    """pyvips gives a 1x1 single-band image as a numpy array with no axes, which libjxl refused
    (internal_error; found by bench.fuzz)."""
    pixel = photo(1, 1, seed=2, alpha=bands == 2)
    pixel = pixel.colourspace("b-w") if bands < 3 else pixel
    v = run(encode(pixel, ".png"), {"id": "x", "format": "jxl", "lossless": lossless}).variants[0]
    assert (v.width, v.height) == (1, 1) and v.data.startswith(b"\xff\x0a")


def test_jpeg_xl_wrapping_a_jpeg_decodes_as_that_jpeg() -> None:
    jpeg = encode(photo(800, 600, seed=6), ".jpg", Q=90)
    wrapped = imagecodecs.jpegxl_encode_jpeg(jpeg)
    assert len(wrapped) < len(jpeg)  # the lossless JPEG recompression
    spec = {"id": "v", "action": "resize", "width": 200, "format": "png"}
    via_jxl, direct = run(wrapped, spec).variants[0], run(jpeg, spec).variants[0]
    assert (via_jxl.width, via_jxl.height) == (direct.width, direct.height) == (200, 150)
    assert mean_difference(load(via_jxl.data), load(direct.data)) < 1  # the same JPEG, resampled alike


@pytest.mark.parametrize(
    ("size", "container"),
    [((1, 1), False), ((8, 8), False), ((641, 479), False), ((1920, 1080), True), ((1600, 1200), False),
     ((300, 7000), True), ((7000, 9), False), ((1000, 1250), False), ((4096, 2048), True)],
)  # fmt: skip
def test_jpeg_xl_size_is_read_from_the_header(size: tuple[int, int], container: bool) -> None:
    image = (pyvips.Image.black(*size, bands=3) + 90).cast("uchar")
    header = jxl_header(jxl(image, container=container))
    assert (header.width, header.height, header.orientation) == (*size, 1)


def _jxl_claiming(width: int, height: int, orientation: int = 1) -> bytes:
    """A codestream header (ISO/IEC 18181-1 SizeHeader + ImageMetadata start), then garbage."""
    bits = [0]  # not small
    for value in (height, None, width):
        if value is None:
            bits += [0, 0, 0]  # ratio 0: the width follows
            continue
        bits += [1, 1] + [(value - 1) >> i & 1 for i in range(30)]  # U32 selector 3: 1 + u(30)
    bits += [0, 1] + [(orientation - 1) >> i & 1 for i in range(3)]  # not all_default, extra_fields
    bits += [0] * (-len(bits) % 8)
    packed = bytes(sum(b << i for i, b in enumerate(bits[k : k + 8])) for k in range(0, len(bits), 8))
    return b"\xff\x0a" + packed + b"\x5a" * 200


def test_hostile_heic_and_jpeg_xl_are_refused_before_any_pixel() -> None:
    bomb = _jxl_claiming(100_000, 100_000)
    with pytest.raises(ImageTooLarge, match="100000x100000"):
        probe(bomb, Limits())
    assert jxl_header(_jxl_claiming(300, 200, orientation=6)).orientation == 6
    info = probe(_jxl_claiming(300, 200, orientation=6), Limits())
    assert (info.width, info.height) == (200, 300)  # shown turned
    with pytest.raises(CorruptImage):
        run(_jxl_claiming(300, 200), {"id": "v", "format": "png"})
    good = heic(photo(200, 100, seed=1))
    at = good.index(b"ispe") + 8  # box type, version and flags, then width and height
    huge = good[:at] + (100_000).to_bytes(4, "big") * 2 + good[at + 8 :]
    with pytest.raises(ImageTooLarge):
        probe(huge, Limits())
    with pytest.raises(CorruptImage):
        run(good[: len(good) // 2], {"id": "v", "format": "png"})
    with pytest.raises(CorruptImage):
        run(good[:40] + b"\x00" * 300, {"id": "v", "format": "png"})


def test_an_animated_jpeg_xl_gives_its_first_frame() -> None:
    frames = np.stack([photo(60, 40, seed=i).numpy()[..., :3] for i in range(3)])
    data = imagecodecs.jpegxl_encode(frames, lossless=True, photometric="RGB")
    v = run(data, {"id": "v", "format": "png"}).variants[0]
    assert (v.width, v.height, v.frames) == (60, 40, 1)
    assert (load(v.data).numpy()[..., :3] == frames[0]).all()
