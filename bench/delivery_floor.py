"""The floor for bench/delivery.py: a bare ASGI app that reads a source from local disk, runs
pyvips ``thumbnail`` (shrink-on-load) and saves it with PixelFlow's own encoder settings, with
nothing around it: no framework, no cache, no checks. Run one process per core:

    DELIVERY_SOURCES=DIR uvicorn bench.delivery_floor:app --workers 2

``GET /{format}/{quality}/{size}/{name}`` -> the source ``name`` fit inside ``size`` x ``size``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

CONTENT_TYPES = {"jpeg": b"image/jpeg", "webp": b"image/webp", "avif": b"image/avif"}


def save_options(fmt: str, quality: int) -> tuple[str, dict[str, Any]]:
    """The suffix and options PixelFlow's encoders (pipeline/encoders.py) give libvips for ``fmt``."""
    from pipeline.formats import FORMATS

    effort = FORMATS[fmt].effort
    opts: dict[str, Any] = {"Q": quality, "keep": "none"}
    if fmt == "jpeg":
        opts["optimize_coding"] = True
    if fmt == "avif":
        opts["compression"] = "av1"
    if effort is not None:
        opts["effort"] = effort.default
    return FORMATS[fmt].extension, opts


def render(path: Path, fmt: str, quality: int, size: int) -> bytes:
    import pyvips

    suffix, opts = save_options(fmt, quality)
    data = path.read_bytes()  # read per request, as a server without a source cache does
    return pyvips.Image.thumbnail_buffer(data, size, height=size).write_to_buffer(suffix, **opts)


async def _reply(send: Any, status: int, body: bytes, content_type: bytes = b"text/plain") -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()  # lifespan.startup
        import pyvips

        pyvips.cache_set_max(0)  # libvips' operation cache would make a repeated URL a hit
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})
        return
    parts = scope["path"].strip("/").split("/")
    if len(parts) != 4 or parts[0] not in CONTENT_TYPES or "/" in parts[3] or parts[3].startswith("."):
        await _reply(send, 404, b"not found")
        return
    fmt, quality, size, name = parts
    path = Path(os.environ["DELIVERY_SOURCES"]) / name
    # a thread per request (libvips releases the GIL), so a process whose share of wrk's
    # keep-alive connections is uneven still keeps the cores busy
    body = await asyncio.to_thread(render, path, fmt, int(quality), int(size))
    await _reply(send, 200, body, CONTENT_TYPES[fmt])
