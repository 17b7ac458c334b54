"""The widths a client's signed URLs may ask for (``url_widths``): ``"320,640,1024"``, parsed and
checked once here for the settings, the policy and the URL route."""

from __future__ import annotations

__all__ = ["parse_widths"]

_MAX_WIDTHS = 64


def parse_widths(text: str) -> tuple[int, ...]:
    """Ascending and without repeats; empty for any width. ValueError naming what is wrong."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) > _MAX_WIDTHS:
        raise ValueError(f"at most {_MAX_WIDTHS} widths")
    widths = set()
    for part in parts:
        if not part.isdigit() or not 1 <= int(part) <= 16384:
            raise ValueError(f"{part!r} is not a width from 1 to 16384")
        widths.add(int(part))
    return tuple(sorted(widths))
