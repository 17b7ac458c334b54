"""Signed image URLs (docs/delivery.md): build one, or a ``srcset`` of several widths.

>>> image_url("https://img.example.com", "sk_1a2b3c", SECRET, job=job_id, width=640, format="auto")
'https://img.example.com/img/<sig>/sk_1a2b3c/w:640/f:auto/job:...'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

__all__ = ["image_url", "sign_path", "srcset"]


def sign_path(secret: str, path: str) -> str:
    """The signature of ``/{kid}/{options...}/{source}``: unpadded base64url HMAC-SHA256."""
    mac = hmac.new(secret.encode(), path.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _source(job: str | None, asset: str | None, url: str | None) -> str:
    given = [(kind, value) for kind, value in (("job", job), ("asset", asset), ("url", url)) if value is not None]
    if len(given) != 1:
        raise ValueError("name exactly one source: job=, asset= or url=")
    kind, value = given[0]
    if kind == "asset":
        return "asset:" + quote(str(value), safe="")
    if kind == "url":
        return "url:" + base64.urlsafe_b64encode(str(value).encode()).rstrip(b"=").decode()
    return f"job:{value}"


def _option(text: str) -> str:
    return quote(text, safe=":=@,.-_")


def image_url(
    base_url: str,
    kid: str,
    secret: str,
    *,
    job: str | None = None,
    asset: str | None = None,
    url: str | None = None,
    template: str | None = None,
    variant: str | None = None,
    params: Mapping[str, object] | None = None,
    width: int | None = None,
    height: int | None = None,
    fit: str | None = None,
    format: str | None = None,
    quality: int | None = None,
    dpr: float | None = None,
    steps: Iterable[tuple[str, Mapping[str, object]]] = (),
) -> str:
    """A signed URL for one source (``job=`` id, ``asset=`` key or ``url=``) with either a
    ``template`` (``"hero@3"``; ``variant`` when it makes several; ``params``) or the shorthand
    (``width``, ``height``, ``fit``, ``steps``: ``[("blur", {"sigma": 2})]``), and ``format``
    (``auto``: negotiated from the browser's ``Accept``), ``quality``, ``dpr``."""
    options: list[str] = []
    if template is not None:
        options.append(f"t:{template}" + (f":{variant}" if variant else ""))
    for name, value in (params or {}).items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        options.append(f"p:{name}={text}")
    for key, value in (("w", width), ("h", height), ("fit", fit), ("dpr", dpr)):
        if value is not None:
            options.append(f"{key}:{value}")
    for op, fields in steps:
        options.append(":".join([f"s:{op}", *(f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                                              for k, v in fields.items())]))  # fmt: skip
    for key, value in (("f", format), ("q", quality)):
        if value is not None:
            options.append(f"{key}:{value}")
    path = "/" + "/".join([kid, *(_option(o) for o in options), _source(job, asset, url)])
    return f"{base_url.rstrip('/')}/img/{sign_path(secret, path)}{path}"


def srcset(base_url: str, kid: str, secret: str, widths: Iterable[int], **options: Any) -> str:
    """``srcset`` for an ``<img>``: one signed URL per width, ``"<url> 320w, <url> 640w"``."""
    return ", ".join(f"{image_url(base_url, kid, secret, width=w, **options)} {w}w" for w in widths)
