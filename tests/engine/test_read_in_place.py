"""The engine copies no image it need not: pipeline/vips.py reads a source's bytes in place (no
copy into a libvips blob; the bytes must live as long as any image that may still read them, and
no longer), and an image held in memory hands its bytes to the encoder without another copy."""

from __future__ import annotations

import array
import gc
import weakref

import pytest
import pyvips

from devstack.imagegen import encode, photo
from pipeline.vips import load_bytes, thumbnail_bytes
from tests.engine.conftest import run


@pytest.mark.parametrize("read", [load_bytes, lambda data: thumbnail_bytes(data, 100)])
def test_the_bytes_live_exactly_as_long_as_the_images_that_read_them(read) -> None:
    png = encode(photo(300, 200, seed=4), ".png")
    data = array.array("B", png)  # bytes cannot be weakly referenced; an array can, and reads the same
    alive = weakref.ref(data)
    derived = read(data).resize(0.5)  # lazy: nothing is decoded yet
    del data
    gc.collect()
    assert alive() is not None  # held by the lazy image, through everything made from it
    assert derived.copy_memory().avg() > 0
    del derived
    gc.collect()
    assert alive() is None  # and released with it


def test_an_image_held_in_memory_is_copy_memory_with_its_pixels_as_bytes() -> None:
    from pipeline.vips import in_memory

    image = photo(120, 80, seed=5, alpha=True).copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", 6)
    image.set_type(pyvips.GValue.blob_type, "icc-profile-data", b"\x00" * 8)
    image.set_type(pyvips.GValue.array_int_type, "delay", [1, 2])
    held, pixels = in_memory(image.resize(0.5))
    reference = image.resize(0.5).copy_memory()
    assert pixels == reference.write_to_memory()
    assert (held - reference).abs().max() == 0
    assert (held.interpretation, held.xres, held.format) == (reference.interpretation, reference.xres, "uchar")
    for name in reference.get_fields():
        if name != "filename":
            assert held.get(name) == reference.get(name), name


@pytest.mark.parametrize(
    ("source", "big", "small"), [("png", (400, 300), (100, 75)), ("camera jpeg", (400, 267), (100, 67))]
)
def test_the_decode_a_variant_is_equal_to_is_not_copied_again_to_encode_it(
    source: str, big: tuple[int, int], small: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 12 MP PNG's 2048 px variant is the held decode itself: its encoder takes the held bytes.
    So does a camera JPEG's, whose EXIF preview is dropped only where EXIF is kept."""
    if source == "png":
        data = encode(photo(800, 600, seed=5, alpha=True), ".png")
    else:
        from tests.engine.test_metadata import jpeg_with_exif_thumbnail

        data = jpeg_with_exif_thumbnail()[0]
        assert "jpeg-thumbnail-data" in pyvips.Image.new_from_buffer(data, "").get_fields()
    copies: list[tuple[int, int]] = []
    original = pyvips.Image.write_to_memory

    def counting(self: pyvips.Image) -> bytes:
        copies.append((self.width, self.height))
        return original(self)

    monkeypatch.setattr(pyvips.Image, "write_to_memory", counting)
    out = run(
        data,
        {"id": "big", "action": "resize", "width": 400, "format": "webp"},
        {"id": "small", "action": "resize", "width": 100, "format": "webp"},
    ).variants
    assert [(v.width, v.height) for v in out] == [big, small]
    assert sorted(copies) == [small, big]  # the decode held once; the small variant's pixels
