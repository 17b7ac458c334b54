"""What a client's signed image URLs may ask for, as the settings and its policy say it: the widths
(``url_widths``: ``"320,640,1024"``) and the origins of URL sources (``url_source_origins``:
``"https://images.example.com,https://cdn.example.org"``). Parsed and checked here for the
settings, the policy and the URL route."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["origin_of", "parse_origins", "parse_widths"]

_ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$")

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


def parse_origins(text: str) -> frozenset[str]:
    """``scheme://host[:port]`` each, lower-cased; empty: URL sources are off."""
    origins = {part.strip().lower().rstrip("/") for part in text.split(",") if part.strip()}
    for origin in origins:
        if not _ORIGIN.match(origin):
            raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path)")
    return frozenset(origins)


def origin_of(url: str) -> str | None:
    """The origin of an http(s) URL as ``parse_origins`` writes it (the default port left out)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{parts.hostname.lower()}" + (f":{port}" if port and port != default else "")
