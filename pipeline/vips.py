"""Process-wide libvips settings, applied once per process before the first image."""

from __future__ import annotations

import logging
import threading

import pyvips

__all__ = ["configure_vips", "vips_memory"]

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


def vips_memory() -> tuple[int, int] | None:
    """(bytes libvips has allocated now, high-water mark), for metrics; None if unavailable.

    pyvips does not bind these, so they are read from the already-loaded libvips by name.
    """
    import ctypes
    import glob
    import os

    global _tracked  # noqa: PLW0603
    if _tracked is None:
        here = os.path.dirname(pyvips.__file__)
        candidates = glob.glob(os.path.join(here, "..", "pyvips_binary.libs", "libvips*.so*")) or ["libvips.so.42"]
        try:
            lib = ctypes.CDLL(candidates[0])
            lib.vips_tracked_get_mem.restype = ctypes.c_size_t
            lib.vips_tracked_get_mem_highwater.restype = ctypes.c_size_t
            _tracked = lib
        except OSError:
            _tracked = False
    if not _tracked:
        return None
    return _tracked.vips_tracked_get_mem(), _tracked.vips_tracked_get_mem_highwater()


_tracked = None
