"""Colour helpers shared by the ops: hex parsing and matching a colour to an image's bands."""

from __future__ import annotations

import pyvips

__all__ = ["background", "ensure_alpha", "parse_hex"]


def parse_hex(color: str) -> tuple[int, int, int, int]:
    """``#rrggbb`` or ``#rrggbbaa`` (validated by the spec) as RGBA."""
    h = color[1:]
    r, g, b = int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
    a = int(h[6:8], 16) if len(h) == 8 else 255
    return r, g, b, a


def ensure_alpha(image: pyvips.Image) -> pyvips.Image:
    return image if image.hasalpha() else image.bandjoin_const([255])


def background(image: pyvips.Image, color: str | None, default: str = "#000000") -> tuple[pyvips.Image, list[float]]:
    """The image (given an alpha band if the colour is translucent) and the colour as band values."""
    r, g, b, a = parse_hex(color or default)
    if a < 255:
        image = ensure_alpha(image)
    colour: list[float] = [r, g, b] if image.bands >= 3 else [round(0.2126 * r + 0.7152 * g + 0.0722 * b)]
    if image.hasalpha():
        colour.append(a)
    return image, colour
