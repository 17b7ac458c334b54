"""Lossy WebP and JPEG written by Pillow's codecs instead of libvips'.

Measured (``bench.probes``, item 4; noisy, see docs/BENCHMARKS.md): the same libwebp 1.6.0
behind Pillow's wheel writes the same bytes as ``pyvips-binary``'s 0-30 % faster (level at
2560 px), and Pillow's libjpeg-turbo 3 writes JPEGs 5-30 % faster than ``pyvips-binary``'s
mozjpeg in its libjpeg-turbo-compatible mode, with the same quantisation tables and chroma
subsampling: the same bytes once libjpeg's JFIF segment is dropped, as libvips drops it. Only pixels PixelFlow made are handed over; Pillow never parses an
untrusted file here.

Animated WebP is not the same bytes, and better for it: libvips hands libwebp's animation encoder
each frame as YUV (``use_argb`` off), which the encoder turns back into RGB ("this incurs a small
loss", libwebp says) before encoding it as YUV again, so chroma is subsampled twice. Pillow hands
over RGB. Measured on bench.versus' animation (``bench.probes``, item 9): at the same quality the
file is ~3.6 % larger and SSIMULACRA2 ~7 points higher; at a smaller size still ~6 higher; and
~20 % faster to write.

Everything else (metadata kept, lossless, 16-bit, CMYK, other formats, images larger than the
formats allow) stays with libvips.
"""

from __future__ import annotations

import io

import pyvips
from PIL import Image

from pipeline.animation import frame_count, frame_size, is_animated

__all__ = ["can_write_jpeg", "can_write_webp", "write_jpeg", "write_webp"]

_MODES = {("srgb", 3): "RGB", ("srgb", 4): "RGBA", ("b-w", 1): "L"}
_WEBP_MAX = 16383  # libwebp's side limit; larger images keep libvips' error
_JPEG_MAX = 65500
# libvips' jpegsave subsamples chroma 4:2:0 below this quality and keeps it whole (4:4:4) from it on
_JPEG_FULL_CHROMA_FROM = 90
_JFIF = b"\xff\xe0\x00\x10JFIF\x00"  # the APP0 marker, its length (16) and identifier
_JFIF_BYTES = 2 + 16  # the marker and the segment
# libvips' animated WebP defaults: keyframes only where the encoder finds one worth it (sharp's
# too); a frame of 10 ms or less shown for 100 ms, as browsers show it; a white background hint
_NO_FORCED_KEYFRAMES = {"kmin": 2**31 - 2, "kmax": 2**31 - 1}
_SHORTEST_DELAY_MS, _SHORT_DELAY_SHOWN_MS = 10, 100
_BACKGROUND = (255, 255, 255, 255)


def _mode(image: pyvips.Image) -> str | None:
    if image.format != "uchar":
        return None
    interpretation = "b-w" if image.bands <= 2 and image.interpretation in ("b-w", "grey16") else image.interpretation
    return _MODES.get((interpretation, image.bands))


def can_write_webp(image: pyvips.Image) -> bool:
    """Whether Pillow can write ``image`` (lossless and metadata stay with libvips: the caller's
    choice, pipeline/encoders.py)."""
    mode = _mode(image)
    return mode is not None and mode != "L" and max(frame_size(image)) <= _WEBP_MAX


def can_write_jpeg(image: pyvips.Image) -> bool:
    mode = _mode(image)
    return mode not in (None, "RGBA") and not is_animated(image) and max(image.width, image.height) <= _JPEG_MAX


# ``image`` must pass ``can_write_*``. Computing its pixels (``write_to_memory``) is where the lazy
# libvips pipeline runs, unless the caller has them (``pixels``: exactly the image's, as
# ``write_to_memory`` would return them); the encode itself releases the GIL.


def write_webp(image: pyvips.Image, *, quality: int, effort: int | None, pixels: bytes | None = None) -> bytes:
    mode, raw = _pixels(image, pixels)
    if is_animated(image):
        return _animated_webp(image, mode, raw, quality=quality, effort=effort)
    out = io.BytesIO()
    # libvips' defaults for the options PixelFlow does not expose: alpha at quality 100, invisible
    # pixels not kept exactly, the "default" preset
    _picture(image, mode, raw).save(out, "WEBP", quality=quality, method=effort, alpha_quality=100, exact=False)
    return out.getvalue()


def write_jpeg(image: pyvips.Image, *, quality: int, progressive: bool, pixels: bytes | None = None) -> bytes:
    mode, raw = _pixels(image, pixels)
    out = io.BytesIO()
    # grey has no chroma: 1x1 sampling factors, as libvips writes them
    subsampling = 0 if quality >= _JPEG_FULL_CHROMA_FROM or mode == "L" else 2
    _picture(image, mode, raw).save(
        out, "JPEG", quality=quality, optimize=True, progressive=progressive, subsampling=subsampling
    )
    data = out.getvalue()
    # libjpeg always writes a JFIF segment (density only); libvips drops it with the metadata.
    # Without it the file is byte for byte what libvips writes.
    return data[:2] + data[2 + _JFIF_BYTES :] if data[2 : 2 + len(_JFIF)] == _JFIF else data


def _pixels(image: pyvips.Image, pixels: bytes | None) -> tuple[str, bytes]:
    mode = _mode(image)
    assert mode is not None
    return mode, pixels if pixels is not None else image.write_to_memory()


def _picture(image: pyvips.Image, mode: str, raw: bytes) -> Image.Image:
    return Image.frombuffer(mode, (image.width, image.height), raw, "raw", mode, 0, 1)


def _animated_webp(image: pyvips.Image, mode: str, raw: bytes, *, quality: int, effort: int | None) -> bytes:
    """Every frame of the stack, with libvips' timing rules (see ``_delays``) and loop count."""
    (width, height), count = frame_size(image), frame_count(image)
    pixels = memoryview(raw)
    step = width * height * len(mode)
    frames = [
        Image.frombuffer(mode, (width, height), pixels[i * step : (i + 1) * step], "raw", mode, 0, 1)  # type: ignore[arg-type]  # any buffer; the stubs say bytes
        for i in range(count)
    ]
    fields = image.get_fields()
    out = io.BytesIO()
    frames[0].save(
        out, "WEBP", save_all=True, append_images=frames[1:], duration=_delays(image, count),
        loop=image.get("loop") if "loop" in fields else 0, background=_BACKGROUND,
        quality=quality, method=effort, alpha_quality=100, **_NO_FORCED_KEYFRAMES,
    )  # fmt: skip
    return out.getvalue()


def _delays(image: pyvips.Image, count: int) -> list[int]:
    """Each frame's display time in ms as libvips' WebP writer sets it: ``delay`` where given, 100
    ms otherwise, and 100 ms for any frame of 10 ms or less."""
    given = list(image.get("delay")) if "delay" in image.get_fields() else []
    shown = [given[i] if i < len(given) else _SHORT_DELAY_SHOWN_MS for i in range(count)]
    return [_SHORT_DELAY_SHOWN_MS if ms <= _SHORTEST_DELAY_MS else ms for ms in shown]
