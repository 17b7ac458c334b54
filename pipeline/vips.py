"""Process-wide libvips settings, applied once per process before the first image."""

from __future__ import annotations

import logging
import threading

import pyvips

__all__ = ["configure_vips", "drop_cached_images"]

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
