"""Format and width negotiation for signed image URLs: what the request's ``Accept`` and client
hints allow, and what the source's first bytes say about alpha and animation."""

from __future__ import annotations

import math
from collections.abc import Mapping

from pipeline.formats import FORMATS

__all__ = ["ACCEPT_CH", "HINT_HEADERS", "choose_format", "hinted_dpr", "hinted_width", "snap", "source_features"]

ACCEPT_CH = "Sec-CH-Width, Sec-CH-DPR, Width"
WIDTH_HINTS = ("Sec-CH-Width", "Width")
DPR_HINT = "Sec-CH-DPR"
HINT_HEADERS = frozenset({*WIDTH_HINTS, DPR_HINT})


def _accepted(accept: str) -> set[str]:
    """The media types ``Accept`` names with a quality above 0 (wildcards kept as they are)."""
    types = set()
    for part in accept.lower().split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = next((p.partition("=")[2] for p in params if p.startswith("q=")), "1")
        try:
            if float(q) > 0 and media:
                types.add(media)
        except ValueError:
            continue
    return types


def choose_format(accept: str, *, alpha: bool, animated: bool) -> str:
    """AVIF if accepted, else WebP, else JPEG (PNG for alpha); an animation: WebP, else GIF.
    Only an explicit ``image/avif`` or ``image/webp`` counts: ``*/*`` promises nothing."""
    accepted = _accepted(accept)
    if animated:
        return "webp" if "image/webp" in accepted else "gif"
    if "image/avif" in accepted:
        return "avif"
    if "image/webp" in accepted:
        return "webp"
    return "png" if alpha else "jpeg"


def source_features(fmt: str, head: bytes) -> tuple[bool, bool]:
    """(alpha, animated) of a source from its first bytes; a format this cannot read in its header
    is taken to have alpha if it can (so the fallback is PNG, never a flattened JPEG)."""
    if fmt == "jpeg":
        return False, False
    if fmt == "png":
        chunks = head[: head.find(b"IDAT")] if b"IDAT" in head else head
        return (len(head) > 25 and head[25] in (4, 6)) or b"tRNS" in chunks, b"acTL" in chunks
    if fmt == "webp":
        kind = head[12:16]
        if kind == b"VP8X" and len(head) > 20:
            return bool(head[20] & 0x10), bool(head[20] & 0x02)
        if kind == b"VP8L" and len(head) > 24:
            return bool(head[24] & 0x10), False
        return False, False
    if fmt == "gif":
        return b"\x21\xf9\x04" in head, head.count(b"\x21\xf9\x04") > 1 or b"NETSCAPE2.0" in head
    return FORMATS[fmt].alpha, False


def hinted_width(headers: Mapping[str, str]) -> tuple[int | None, str | None]:
    """The width (physical pixels) a client hint asks for, and which header said it."""
    for name in WIDTH_HINTS:
        value = headers.get(name)
        if value:
            try:
                width = math.ceil(float(value))
            except ValueError:
                continue
            if 1 <= width <= 16384:
                return width, name
    return None, None


def hinted_dpr(headers: Mapping[str, str]) -> float | None:
    try:
        dpr = float(headers.get(DPR_HINT) or "")
    except ValueError:
        return None
    return dpr if 0 < dpr <= 8 else None


def snap(width: int, allowed: tuple[int, ...]) -> int:
    """The smallest allowed width at least ``width`` (the largest when none is); any without a list."""
    if not allowed:
        return width
    return next((w for w in allowed if w >= width), allowed[-1])
