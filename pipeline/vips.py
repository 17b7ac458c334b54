"""Process-wide libvips settings, applied once per process before the first image."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pyvips

__all__ = [
    "configure_vips",
    "drop_cached_images",
    "in_memory",
    "load_bytes",
    "pixel_array",
    "thumbnail_bytes",
    "with_header_of",
]

# Loaders for the formats `pipeline.sniff` admits. Everything else stays blocked even if a
# crafted file gets past sniffing (libvips picks loaders by content, not by our label).
_ALLOWED_LOADERS = (
    "VipsForeignLoadJpeg",
    "VipsForeignLoadPng",
    "VipsForeignLoadNsgif",
    "VipsForeignLoadWebp",
    "VipsForeignLoadTiff",
    "VipsForeignLoadHeif",
    "VipsForeignLoadSvg",
    "VipsForeignLoadVips",  # libvips' own format: used only for copy_memory temporaries
)

_lock = threading.Lock()
_done = False


def configure_vips(*, concurrency: int | None = None, cache_max_ops: int = 64) -> None:
    """Block untrusted and unused loaders, keep the operation cache small.

    The cache is keyed on operation arguments, which for a stream of different images is
    mostly misses and memory, so it stays small.
    """
    global _done  # noqa: PLW0603
    with _lock:
        if _done:
            return
        # libvips reports every finished threadpool at INFO; that is noise in a service's logs.
        logging.getLogger("pyvips").setLevel(logging.WARNING)
        pyvips.block_untrusted_set(True)
        pyvips.operation_block_set("VipsForeignLoad", True)
        for loader in _ALLOWED_LOADERS:
            pyvips.operation_block_set(loader, False)
        pyvips.cache_set_max(cache_max_ops)
        pyvips.cache_set_max_mem(64 * 1024 * 1024)
        pyvips.cache_set_max_files(0)
        if concurrency:
            pyvips.concurrency_set(concurrency)
        _done = True


def drop_cached_images() -> None:
    """Empty the operation cache. Its entries hold their inputs and outputs, so after a job it keeps
    that job's decoded pixels alive (up to its 64 MB bound) for hits no other image can make."""
    size = pyvips.cache_get_max()
    pyvips.cache_set_max(0)  # libvips trims the cache to the new bound at once
    pyvips.cache_set_max(size)


def load_bytes(data: bytes, **options: Any) -> pyvips.Image:
    """``Image.new_from_buffer`` without its copy. pyvips copies a buffer into a blob it owns, a
    second copy of the whole file for as long as any image or cached operation refers to it (26 MB
    for a 12 MP PNG, held through the job: ``bench.probes`` item 10); a memory source reads the
    caller's bytes in place (and keeps them alive)."""
    return pyvips.Image.new_from_source(pyvips.Source.new_from_memory(data), "", **options)


def thumbnail_bytes(data: bytes, width: int, **options: Any) -> pyvips.Image:
    """``Image.thumbnail_buffer`` without its copy (see ``load_bytes``)."""
    source = pyvips.Source.new_from_memory(data)
    image = pyvips.Image.thumbnail_source(source, width, **options)
    # The image reads ``data`` lazily, but pyvips ties a Python object's life only to images made
    # from images: new_from_source adds its source to the image's references (which every image
    # made from it inherits), thumbnail_source does not. Without this the bytes can be freed
    # while libvips still reads them (seen: "premature end of JPEG image" in 16 of 60 jobs).
    image._references.append(source)
    return image


# set by libvips from the arguments of new_from_memory and copy, not metadata to carry over
_HEADER_FIELDS = frozenset(
    {"width", "height", "bands", "format", "coding", "interpretation", "xoffset", "yoffset", "xres", "yres", "filename"}
)


def with_header_of(pixels: pyvips.Image, header: pyvips.Image) -> pyvips.Image:
    """``pixels`` (made by new_from_memory) described as ``header`` is: its interpretation,
    resolution and every metadata field (profile, EXIF, XMP, orientation, an animation's timing)."""
    image = pixels.copy(interpretation=header.interpretation, xres=header.xres, yres=header.yres)
    for name in header.get_fields():
        if name not in _HEADER_FIELDS:
            image.set_type(header.get_typeof(name), name, header.get(name))
    return image


def pixel_array(image: pyvips.Image) -> Any:
    """The pixels as a numpy array of rows x columns x bands, whatever the size: ``numpy()`` drops
    a single band's axis, and a one-pixel single-band image comes back with no axes at all."""
    return image.numpy().reshape(image.height, image.width, image.bands)


def in_memory(image: pyvips.Image) -> tuple[pyvips.Image, bytes | None]:
    """``image.copy_memory()``, and its pixels as bytes when they can be had without a second copy.

    An encoder outside libvips (pipeline/pillow_encode.py) needs the pixels as bytes, and
    ``write_to_memory`` copies them: for a variant that is the held decode itself (the largest
    width of a set, usually), a second copy of the biggest image of the job, alive while its
    encoder runs (12.6 MB of a 12 MP PNG job's peak; ``bench.probes`` item 10). So the pixels are
    computed into bytes and libvips wraps those. A field whose value cannot be carried over (none
    known) falls back to ``copy_memory`` and no bytes."""
    pixels = image.write_to_memory()
    wrapped = pyvips.Image.new_from_memory(pixels, image.width, image.height, image.bands, image.format)
    try:
        return with_header_of(wrapped, image), pixels
    except (pyvips.Error, TypeError, ValueError):
        return image.copy_memory(), None
