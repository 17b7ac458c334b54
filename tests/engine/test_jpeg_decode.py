"""JPEG decoded at a DCT scale by libjpeg-turbo (pipeline/jpeg.py) must be indistinguishable from
libvips' own decode: the same pixels and size, the same metadata, the same failures, and a
fallback for what it does not take."""

from __future__ import annotations

import numpy as np
import pytest
import pyvips

from devstack.imagegen import encode, photo
from pipeline.errors import CorruptImage
from pipeline.jpeg import decode_jpeg_scaled
from tests.engine.conftest import load, run
from tests.engine.test_metadata import tagged_jpeg


def libvips(data: bytes, shrink: int) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "", shrink=shrink, fail_on="warning")


def pixels(image: pyvips.Image) -> np.ndarray:
    return np.asarray(image.numpy())


SOURCES = {
    "420": ((1600, 1200), {"Q": 90}),
    "odd sizes": ((1601, 1199), {"Q": 85}),
    "portrait, odd": ((333, 777), {"Q": 80}),
    "progressive": ((1200, 900), {"Q": 80, "interlace": True}),
    "444": ((800, 600), {"Q": 90, "subsample_mode": "off"}),
    "tiny": ((17, 9), {"Q": 90}),
}


@pytest.mark.parametrize("shrink", [2, 4, 8])
@pytest.mark.parametrize("name", SOURCES)
def test_same_pixels_and_size_as_libvips(name: str, shrink: int) -> None:
    (w, h), opts = SOURCES[name]
    data = encode(photo(w, h, seed=5), ".jpg", **opts)
    ours, theirs = decode_jpeg_scaled(data, shrink, fail_on="warning"), libvips(data, shrink)
    assert ours is not None
    assert (ours.width, ours.height, ours.bands, ours.interpretation) == (
        theirs.width,
        theirs.height,
        theirs.bands,
        theirs.interpretation,
    )
    assert np.array_equal(pixels(ours), pixels(theirs))


def test_greyscale() -> None:
    data = encode(photo(900, 600, seed=2).colourspace("b-w"), ".jpg", Q=90)
    ours, theirs = decode_jpeg_scaled(data, 4, fail_on="warning"), libvips(data, 4)
    assert ours is not None and ours.bands == 1 and ours.interpretation == "b-w"
    assert np.array_equal(pixels(ours), pixels(theirs))


def test_the_files_metadata_comes_along() -> None:
    data = tagged_jpeg()
    p3 = photo(400, 300, seed=1).icc_transform("p3", input_profile="srgb")
    p3 = p3.copy()
    p3.set_type(pyvips.GValue.gint_type, "orientation", 6)
    for source in (data, p3.write_to_buffer(".jpg", Q=90, keep="icc|exif")):
        ours, theirs = decode_jpeg_scaled(source, 2, fail_on="warning"), libvips(source, 2)
        assert ours is not None
        fields = [f for f in theirs.get_fields() if f not in ("filename", "vips-loader")]  # which libvips call read it
        assert set(fields) <= set(ours.get_fields())
        for name in fields:
            assert ours.get(name) == theirs.get(name), name


def test_cmyk_is_left_to_libvips() -> None:
    cmyk = photo(400, 300, seed=1).icc_transform("cmyk", input_profile="srgb")
    data = cmyk.write_to_buffer(".jpg", Q=90)
    assert libvips(data, 2).interpretation == "cmyk"
    assert decode_jpeg_scaled(data, 2, fail_on="warning") is None
    out = run(data, {"id": "a", "action": "resize", "width": 100, "format": "png"}).variants[0]
    assert load(out.data).interpretation == "srgb"


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[: len(d) // 2],  # stops mid-scan
        lambda d: d[: len(d) // 2] + b"\xff\xd9",  # stops mid-scan at an EOI: only a libjpeg *warning*
    ],
    ids=["cut", "cut at an EOI"],
)
@pytest.mark.parametrize("shrink", [2, 8])
def test_corrupt_data_fails_as_it_does_in_libvips(damage, shrink: int) -> None:
    data = damage(encode(photo(1600, 1200, seed=5), ".jpg", Q=90))
    with pytest.raises(pyvips.Error):
        libvips(data, shrink).copy_memory()
    with pytest.raises(CorruptImage, match="corrupt or truncated"):
        decode_jpeg_scaled(data, shrink, fail_on="warning")


def test_an_oriented_jpeg_comes_out_upright_through_the_engine() -> None:
    upright = photo(1200, 800, seed=4)
    turned = upright.rot270().copy()  # stored turned; orientation 6 says "rotate 90 clockwise to show"
    turned.set_type(pyvips.GValue.gint_type, "orientation", 6)
    data = turned.write_to_buffer(".jpg", Q=95, keep="exif")
    out = run(data, {"id": "a", "action": "resize", "width": 300, "format": "png"}).variants[0]
    image = load(out.data)
    assert (image.width, image.height) == (300, 200)
    expected = upright.resize(300 / 1200)
    assert np.abs(pixels(image).astype(int) - pixels(expected).astype(int)).mean() < 4
