"""pipeline/vips.py reads a source's bytes in place (no copy into a libvips blob). The bytes must
live as long as any image that may still read them, and no longer."""

from __future__ import annotations

import array
import gc
import weakref

import pytest

from devstack.imagegen import encode, photo
from pipeline.vips import load_bytes, thumbnail_bytes


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
