"""The source described, for a job that asks (``"info": {...}`` in the spec): what it is, how
it was taken, its colours and placeholders. Computed from the header and the decode the job
holds anyway (the planner keeps it in memory when info is asked for), so it costs one 100 px
resize, never a second decode.
"""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
import pyvips

from pipeline.animation import first_frame
from pipeline.details import Camera, Location, SourceDetails
from pipeline.dsl.job import InfoRequest
from pipeline.metadata import to_working_colour
from pipeline.placeholders import blurhash, thumbhash
from pipeline.vips import load_bytes, pixel_array

__all__ = ["describe"]

# libvips renders an EXIF field as "<value> (<value as text>, <type>, <n> components, <n> bytes)"
_EXIF_VALUE = re.compile(r"^(?P<raw>.*) \((?P<text>.*), [A-Za-z]+, \d+ components?, \d+ bytes?\)$", re.S)


def describe(
    data: bytes, *, fmt: str, width: int, height: int, orientation: int, frames: int,
    source: pyvips.Image, request: InfoRequest,
) -> SourceDetails:  # fmt: skip
    """``source`` is the job's decoded source (any size, upright; an animation's first frame is
    what its colours and placeholders describe)."""
    header = _header(data, fmt)
    fields = set(header.get_fields()) if header is not None else set()
    small = to_working_colour(first_frame(source).thumbnail_image(100, height=100), keep_profile=False)
    rgba = pixel_array(small)
    if rgba.shape[2] in (1, 2):  # grey (with alpha): as RGB(A)
        rgba = np.concatenate([np.repeat(rgba[..., :1], 3, axis=2), rgba[..., 1:]], axis=2)
    average, dominant = _colours(rgba)
    blur = thumb = None
    if "blurhash" in request.placeholders:
        scale = 32 / max(small.width, small.height)
        tiny = small.resize(scale) if scale < 1 else small
        tiny_px = pixel_array(tiny)
        blur = blurhash(np.repeat(tiny_px[..., :1], 3, axis=2) if tiny_px.shape[2] < 3 else tiny_px[..., :3])
    if "thumbhash" in request.placeholders:
        thumb = thumbhash(rgba if rgba.shape[2] == 4 else rgba[..., :3])
    profile = (
        _profile_name(header.get("icc-profile-data")) if header is not None and "icc-profile-data" in fields else None
    )
    return SourceDetails(
        format=fmt,
        width=width,
        height=height,
        orientation=orientation,
        frames=frames,
        has_alpha=bool((header if header is not None else source).hasalpha()),  # libvips answers 0 or 1
        average_color=average,
        dominant_color=dominant,
        profile=profile,
        camera=_camera(header, fields, gps=request.gps) if header is not None else None,
        blurhash=blur,
        thumbhash=thumb,
    )


def _header(data: bytes, fmt: str) -> pyvips.Image | None:
    """The source's header with its metadata as libvips parses it (HEIC: its EXIF and profile
    carried over from pi-heif; JPEG XL: none, imagecodecs does not return them)."""
    if fmt == "jxl":
        return None
    if fmt == "heic":
        import io

        import pi_heif

        heif = pi_heif.open_heif(io.BytesIO(data))
        header = pyvips.Image.black(1, 1, bands=4 if heif.has_alpha else 3).copy(interpretation="srgb")
        if heif.info.get("exif"):
            header.set_type(pyvips.GValue.blob_type, "exif-data", heif.info["exif"])
            # libvips parses EXIF into fields when it loads an image: round-trip one pixel
            header = pyvips.Image.new_from_buffer(header.cast("uchar").pngsave_buffer(keep="exif"), "")
        if heif.info.get("icc_profile"):
            header.set_type(pyvips.GValue.blob_type, "icc-profile-data", bytes(heif.info["icc_profile"]))
        return header
    return load_bytes(data, access="sequential")


def _colours(rgba: np.ndarray) -> tuple[str, str]:
    """Average and dominant colour of the visible pixels, as #rrggbb. Dominant: the most common
    colour once each channel is cut to 32 levels, averaged over the pixels in that bin."""
    px = rgba.reshape(-1, rgba.shape[2]).astype(np.int64)
    if px.shape[1] == 4:
        visible = px[px[:, 3] >= 128]
        px = visible if len(visible) else px
    rgb = px[:, :3]
    bins = (rgb[:, 0] >> 3) << 10 | (rgb[:, 1] >> 3) << 5 | rgb[:, 2] >> 3
    values, counts = np.unique(bins, return_counts=True)
    dominant = rgb[bins == values[np.argmax(counts)]].mean(axis=0)
    return _hex(rgb.mean(axis=0)), _hex(dominant)


def _hex(rgb: np.ndarray) -> str:
    return "#" + "".join(f"{round(float(c)):02x}" for c in rgb)


def _profile_name(icc: bytes) -> str | None:
    """The profile's description tag: 'desc' (ICC v2, ASCII) or 'mluc' (v4, first record, UTF-16)."""
    try:
        count = int.from_bytes(icc[128:132], "big")
        for i in range(min(count, 100)):
            entry = icc[132 + 12 * i : 144 + 12 * i]
            if entry[:4] != b"desc":
                continue
            offset, size = int.from_bytes(entry[4:8], "big"), int.from_bytes(entry[8:12], "big")
            tag = icc[offset : offset + size]
            if tag[:4] == b"desc":
                length = int.from_bytes(tag[8:12], "big")
                return tag[12 : 12 + length].split(b"\0")[0].decode("latin-1").strip() or None
            if tag[:4] == b"mluc" and int.from_bytes(tag[8:12], "big") > 0:
                length, start = int.from_bytes(tag[20:24], "big"), int.from_bytes(tag[24:28], "big")
                return tag[start : start + length].decode("utf-16-be").strip("\0 ") or None
    except (ValueError, UnicodeDecodeError):
        return None
    return None


def _exif(header: pyvips.Image, fields: set[str], name: str) -> tuple[str, str] | None:
    """(raw, text) of an EXIF field, e.g. ("51/1 30/1 2580/100", "51, 30, 25.80")."""
    for ifd in (0, 2, 3):
        key = f"exif-ifd{ifd}-{name}"
        if key in fields:
            match = _EXIF_VALUE.match(str(header.get(key)))
            if match:
                return match["raw"].strip(), match["text"].strip()
    return None


def _camera(header: pyvips.Image, fields: set[str], *, gps: bool) -> Camera | None:
    def text(name: str) -> str | None:
        found = _exif(header, fields, name)
        return found[1] or None if found else None

    taken = text("DateTimeOriginal")
    if taken and re.fullmatch(r"\d{4}:\d\d:\d\d \d\d:\d\d:\d\d", taken):
        taken = taken[:10].replace(":", "-") + "T" + taken[11:] + (text("OffsetTimeOriginal") or "")
    camera = Camera(
        make=text("Make"),
        model=text("Model"),
        lens=text("LensModel"),
        taken_at=taken,
        location=_location(header, fields) if gps else None,
    )
    return camera if camera != Camera() else None


def _location(header: pyvips.Image, fields: set[str]) -> Location | None:
    lat, lat_ref = _exif(header, fields, "GPSLatitude"), _exif(header, fields, "GPSLatitudeRef")
    lon, lon_ref = _exif(header, fields, "GPSLongitude"), _exif(header, fields, "GPSLongitudeRef")
    if not (lat and lon):
        return None
    try:
        latitude, longitude = _degrees(lat[0]), _degrees(lon[0])
    except (ValueError, ZeroDivisionError):
        return None
    if lat_ref and lat_ref[1].upper().startswith("S"):
        latitude = -latitude
    if lon_ref and lon_ref[1].upper().startswith("W"):
        longitude = -longitude
    return Location(round(latitude, 6), round(longitude, 6))


def _degrees(rationals: str) -> float:
    """'51/1 30/1 2580/100' (degrees, minutes, seconds) as decimal degrees."""
    d, m, s = (float(Fraction(part)) for part in rationals.split()[:3])
    return d + m / 60 + s / 3600
