"""Overlay text or an asset image at a compass position, with opacity and a margin."""

from __future__ import annotations

import html

import pyvips

from pipeline.dsl.steps import Watermark
from pipeline.errors import AssetNotFound, CorruptImage, ImageTooLarge
from pipeline.geometry import gravity_offset
from pipeline.ops._color import ensure_alpha, parse_hex
from pipeline.ops.context import OpContext
from pipeline.ops.resize import scale
from pipeline.sniff import SNIFF_BYTES, sniff
from pipeline.vips import load_bytes


def apply(image: pyvips.Image, step: Watermark, ctx: OpContext) -> pyvips.Image:
    overlay = _text(step) if step.text is not None else _image(step, ctx)
    room = (max(1, image.width - 2 * step.margin), max(1, image.height - 2 * step.margin))
    if overlay.width > room[0] or overlay.height > room[1]:
        # A mark larger than the picture would be cut off; shrink it to fit instead.
        f = min(room[0] / overlay.width, room[1] / overlay.height)
        overlay = scale(overlay, max(1, int(overlay.width * f)), max(1, int(overlay.height * f)))
    if image.bands < 3:
        overlay = overlay.colourspace("b-w")
    x, y = gravity_offset(step.gravity, (image.width, image.height), (overlay.width, overlay.height), step.margin)
    out = image.composite2(overlay, "over", x=x, y=y).cast("uchar")
    if not image.hasalpha():
        out = out.extract_band(0, n=image.bands)
    return out.copy(interpretation=image.interpretation)


def _text(step: Watermark) -> pyvips.Image:
    assert step.text is not None
    font = f"{step.font or 'sans'} {step.font_size or 48}"
    # Image.text reads Pango markup; escaping keeps client text literal.
    mask = pyvips.Image.text(html.escape(step.text), font=font, dpi=72)
    r, g, b, a = parse_hex(step.color or "#ffffff")
    alpha = (mask * (step.opacity * a / 255)).cast("uchar")
    return mask.new_from_image([r, g, b]).copy(interpretation="srgb").bandjoin(alpha)


def _image(step: Watermark, ctx: OpContext) -> pyvips.Image:
    assert step.image is not None
    base = ctx.asset_cache.get(step.image)
    if base is None:
        base = _load_asset(step.image, ctx)
        ctx.asset_cache[step.image] = base
    overlay = base
    if step.width is not None and step.width != overlay.width:
        overlay = scale(overlay, step.width, max(1, round(overlay.height * step.width / overlay.width)))
    if step.opacity < 1:
        alpha = (overlay.extract_band(3) * step.opacity).cast("uchar")
        overlay = overlay.extract_band(0, n=3).bandjoin(alpha)
    return overlay


def _load_asset(key: str, ctx: OpContext) -> pyvips.Image:
    if ctx.assets is None:
        raise AssetNotFound(f"watermark image '{key}' cannot be read: no asset store is configured")
    try:
        data = ctx.assets(key)
    except KeyError:
        raise AssetNotFound(f"watermark image '{key}' does not exist") from None
    sniff(data[:SNIFF_BYTES])
    try:
        header = load_bytes(data, access="sequential", fail_on="error")
        if header.width * header.height > ctx.limits.max_source_pixels:
            raise ImageTooLarge(f"watermark image '{key}' is larger than the source pixel limit")
        image = load_bytes(data, fail_on="error")
        if image.format != "uchar" or image.interpretation not in ("srgb",):
            image = image.colourspace("srgb").cast("uchar")
        # Small and reused by every variant: decode it now, once.
        return ensure_alpha(image.extract_band(0, n=min(image.bands, 4))).copy_memory()
    except pyvips.Error as exc:
        raise CorruptImage(f"watermark image '{key}' cannot be decoded", detail=str(exc)) from None
