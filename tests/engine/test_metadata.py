"""Colour profiles and metadata per variant (`keep`), read back from the outputs."""

from __future__ import annotations

import numpy as np
import pytest
import pyvips

from pipeline.dsl import decode_job_spec
from pipeline.errors import SpecError
from tests.engine.conftest import load, run

SRGB_RED = [230, 40, 30]  # outside nothing; in Display P3 it reads (211, 61, 45)


def p3_source(suffix: str = ".png", size: tuple[int, int] = (320, 240)) -> tuple[bytes, pyvips.Image]:
    """A flat sRGB colour written as Display P3 pixels with their profile, and the sRGB original."""
    srgb = (pyvips.Image.black(*size, bands=3) + SRGB_RED).cast("uchar").copy(interpretation="srgb")
    p3 = srgb.icc_transform("p3", input_profile="srgb", intent="relative")
    opts = {"Q": 98} if suffix == ".jpg" else {}
    return p3.write_to_buffer(suffix, keep="icc", **opts), srgb


def centre(data: bytes) -> list[float]:
    image = load(data)
    return image.getpoint(image.width // 2, image.height // 2)[:3]


def tagged_jpeg() -> bytes:
    image = (pyvips.Image.black(200, 100, bands=3) + 120).cast("uchar").copy(interpretation="srgb")
    for name, value in (
        ("exif-ifd0-Make", "PhoneCo"),
        ("exif-ifd0-Copyright", "(c) ACME 2026"),
        ("exif-ifd0-Artist", "Ada"),
        ("exif-ifd3-GPSLatitudeRef", "N"),
        ("exif-ifd3-GPSLongitudeRef", "E"),
    ):
        image.set_type(pyvips.GValue.gstr_type, name, value)
    image.set_type(pyvips.GValue.blob_type, "xmp-data", b'<x:xmpmeta xmlns:x="adobe:ns:meta/">pf</x:xmpmeta>')
    data = image.write_to_buffer(".jpg", Q=90, keep="all")
    assert "exif-ifd3-GPSLatitudeRef" in load(data).get_fields()
    return data


def exif_tags(data: bytes) -> set[str]:
    return {f.split("-", 2)[2] for f in load(data).get_fields() if f.startswith("exif-ifd")}


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_sources_with_a_profile_become_srgb_by_default(suffix: str) -> None:
    data, _ = p3_source(suffix)
    full, small = run(
        data, {"id": "full", "format": "png"}, {"id": "small", "action": "resize", "width": 40, "format": "png"}
    ).variants
    for v in (full, small):
        assert np.allclose(centre(v.data), SRGB_RED, atol=4), (suffix, centre(v.data))
        assert "icc-profile-data" not in load(v.data).get_fields()


def test_a_kept_profile_keeps_the_source_gamut_and_the_others_are_converted() -> None:
    data, _ = p3_source(".png")
    profile = pyvips.Image.new_from_buffer(data, "").get("icc-profile-data")
    kept, converted, jpeg = run(
        data,
        {"id": "kept", "action": "resize", "width": 160, "format": "png", "keep": ["icc"]},
        {"id": "srgb", "action": "resize", "width": 160, "format": "png"},
        {"id": "jpeg", "action": "resize", "width": 160, "format": "webp", "quality": 95},
    ).variants
    assert load(kept.data).get("icc-profile-data") == profile
    assert np.allclose(centre(kept.data), [211, 61, 45], atol=2)  # the P3 values, not clipped to sRGB
    assert np.allclose(centre(converted.data), SRGB_RED, atol=4)
    assert np.allclose(centre(jpeg.data), SRGB_RED, atol=6)
    assert "icc-profile-data" not in load(converted.data).get_fields()


def test_exif_is_kept_without_gps_unless_named() -> None:
    data = tagged_jpeg()
    none, exif, gps, rights, everything = run(
        data,
        {"id": "none", "format": "jpeg"},
        {"id": "exif", "format": "jpeg", "keep": ["exif"]},
        {"id": "gps", "format": "webp", "keep": ["exif", "gps"]},
        {"id": "rights", "action": "resize", "width": 100, "format": "jpeg", "keep": ["copyright"]},
        {"id": "all", "format": "png", "strip": False},
    ).variants
    assert exif_tags(none.data) == set() and b"Exif" not in none.data[:4096]
    assert {"Make", "Copyright", "Artist"} <= exif_tags(exif.data)
    assert not {t for t in exif_tags(exif.data) if t.startswith("GPS")}
    assert {"Make", "GPSLatitudeRef", "GPSLongitudeRef"} <= exif_tags(gps.data)
    assert {"Copyright", "Artist"} <= exif_tags(rights.data)
    assert "Make" not in exif_tags(rights.data) and not {t for t in exif_tags(rights.data) if t.startswith("GPS")}
    assert "Make" in exif_tags(everything.data) and not {t for t in exif_tags(everything.data) if t.startswith("GPS")}
    assert "xmp-data" in load(everything.data).get_fields()
    assert "xmp-data" not in load(exif.data).get_fields()


def test_xmp_alone() -> None:
    v = run(tagged_jpeg(), {"id": "x", "format": "jpeg", "keep": ["xmp"]}).variants[0]
    assert b"pf</x:xmpmeta>" in load(v.data).get("xmp-data")
    assert exif_tags(v.data) == set()


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ({"format": "jpeg", "keep": ["gps"]}, "'gps' is kept as part of EXIF"),
        ({"format": "jpeg", "keep": ["icc"], "strip": False}, "use one"),
        ({"format": "gif", "keep": ["exif"]}, "'keep' does not apply to gif"),
        ({"format": "jpeg", "keep": ["location"]}, "$.pipeline[0].keep[0]"),
    ],
)
def test_keep_is_validated(variant: dict, message: str) -> None:
    with pytest.raises(SpecError) as bad:
        decode_job_spec({"version": 1, "pipeline": [{"id": "v", **variant}]})
    assert message in str(bad.value)


def test_compact_form_takes_keep() -> None:
    spec = decode_job_spec(
        {"version": 1, "pipeline": [{"id": "v", "action": "resize", "width": 10, "keep": ["icc"], "format": "png"}]}
    )
    assert spec.pipeline[0].keep == ["icc"]


def jpeg_with_exif_thumbnail() -> tuple[bytes, bytes]:
    """A camera-like JPEG whose EXIF carries a preview of the whole picture in IFD1, and that preview."""
    import io
    import struct

    from PIL import Image

    from devstack.imagegen import photo

    picture = Image.fromarray(photo(1200, 800, seed=3).numpy())
    out = io.BytesIO()
    picture.resize((160, 107)).save(out, "JPEG", quality=70)
    preview = out.getvalue()

    def ifd(entries: list[tuple[int, int, int, bytes]], next_offset: int) -> bytes:
        body = struct.pack(">H", len(entries)) + b"".join(struct.pack(">HHI", *e[:3]) + e[3] for e in entries)
        return body + struct.pack(">I", next_offset)

    make = b"PhoneCo\0"  # IFD0 at 8 (18 bytes), its Make string at 26, IFD1 at 34 (42 bytes), preview at 76
    ifd0 = ifd([(0x010F, 2, len(make), struct.pack(">I", 26))], 34)
    ifd1 = ifd(
        [
            (0x0103, 3, 1, struct.pack(">HH", 6, 0)),  # Compression: JPEG
            (0x0201, 4, 1, struct.pack(">I", 76)),  # JPEGInterchangeFormat
            (0x0202, 4, 1, struct.pack(">I", len(preview))),  # JPEGInterchangeFormatLength
        ],
        0,
    )
    tiff = b"MM\0*" + struct.pack(">I", 8) + ifd0 + make + ifd1 + preview
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90, exif=b"Exif\0\0" + tiff)
    return out.getvalue(), preview


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
@pytest.mark.parametrize("keep", [{"keep": ["exif"]}, {"keep": ["exif", "gps"]}, {"strip": False}], ids=str)
def test_the_exif_preview_of_the_original_never_survives(keep: dict, fmt: str) -> None:
    # it shows the whole original: after a crop it would show what the crop removed
    data, preview = jpeg_with_exif_thumbnail()
    assert "jpeg-thumbnail-data" in load(data).get_fields() and preview[2:400] in data
    crop = {"id": "c", "steps": [{"op": "crop", "width": 300, "height": 300, "gravity": "northwest"}], "format": fmt}
    out = run(data, crop | keep).variants[0]
    assert load(out.data).get("exif-ifd0-Make").startswith("PhoneCo")  # the EXIF itself is kept
    assert preview[2:400] not in out.data
    assert "jpeg-thumbnail-data" not in load(out.data).get_fields()


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png", "avif", "tiff"])
@pytest.mark.parametrize("keep", [{}, {"keep": ["icc"]}, {"keep": ["xmp"]}], ids=str)
def test_without_exif_the_preview_is_not_written_either(keep: dict, fmt: str) -> None:
    data, preview = jpeg_with_exif_thumbnail()
    crop = {"id": "c", "steps": [{"op": "crop", "width": 300, "height": 300, "gravity": "northwest"}], "format": fmt}
    out = run(data, crop | keep).variants[0]
    assert preview[2:400] not in out.data
    assert "jpeg-thumbnail-data" not in load(out.data).get_fields()
