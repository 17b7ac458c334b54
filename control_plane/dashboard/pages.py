"""The dashboard's HTML: one shell (``pages/_shell.html``) around each page's static markup
(``pages/<name>.html``). The server renders the frame, the navigation and the CSRF token; the
one script, ``static/app.js``, fills the page from the same JSON API machines use.

Pages carry a Content-Security-Policy: scripts and styles only from this server (no inline
script, no CDN), images and uploads only from here and the object store's public endpoint, and
no framing (clickjacking)."""

from __future__ import annotations

import string
from functools import cache
from html import escape
from pathlib import Path

from litestar import Response
from litestar.datastructures import Cookie

from infra.lifecycle import ACTIVE, TERMINAL
from infra.repo import User
from infra.settings import Settings
from pipeline.formats import FORMATS

__all__ = ["PAGES", "STATIC", "page_response"]

_DIR = Path(__file__).parent / "pages"
STATIC = Path(__file__).parent / "static"
# name -> title; the name is also the page's file and the script's entry point (body[data-page])
PAGES = {
    "login": "Sign in",
    "signup": "Sign up",
    "jobs": "Jobs",
    "job": "Job",
    "new": "New job",
    "keys": "API keys",
    "templates": "Templates",
    "images": "Image URLs",
    "usage": "Usage",
    "team": "Team",
    "invite": "Join a client",
}
_NAV = (("jobs", "/dashboard", "Jobs"), ("new", "/dashboard/new", "New job"), ("templates", "/dashboard/templates", "Templates"),
        ("keys", "/dashboard/keys", "API keys"), ("images", "/dashboard/images", "Image URLs"),
        ("usage", "/dashboard/usage", "Usage"), ("team", "/dashboard/team", "Team"))  # fmt: skip


# what the new-job page calls a dropped file's browser-given MIME type, from the format registry
_MIME_FORMATS = " ".join(f"{f.mime}={f.name}" for f in FORMATS.values())


@cache
def _markup(name: str) -> string.Template:
    """A page's HTML, ``$name`` placeholders and all (``pages/<name>.html``)."""
    return string.Template((_DIR / f"{name}.html").read_text())


def _store_origins(settings: Settings) -> str:
    """Where presigned URLs point (uploads, previews, downloads), for the CSP."""
    if settings.storage != "s3":
        return ""
    secure = settings.s3_secure if settings.s3_public_secure is None else settings.s3_public_secure
    scheme = "https" if secure else "http"
    host = settings.s3_public_endpoint or settings.s3_endpoint
    # virtual-hosted buckets (AWS: <bucket>.s3.<region>.amazonaws.com) are a subdomain of the endpoint
    return f"{scheme}://{host} {scheme}://*.{host}"


def _nav(page: str, user: User | None) -> str:
    if user is None:
        return ""
    current = ' aria-current="page"'
    links = "".join(
        f'<li><a href="{href}"{current if name == page else ""}>{label}</a></li>' for name, href, label in _NAV
    )
    return (
        f'<nav aria-label="Dashboard"><ul>{links}</ul></nav>'
        f'<p class="who"><span>{escape(user.email)} · {escape(user.client_name)} ({user.role})</span>'
        ' <button type="button" id="logout">Sign out</button></p>'
    )


def page_response(
    page: str,
    settings: Settings,
    *,
    csrf: str,
    user: User | None,
    cookies: list[Cookie] | None = None,
    fields: dict[str, str] | None = None,
) -> Response[str]:
    """``fields``: markup the page's ``$name`` placeholders take (already escaped)."""
    body = _markup(page).substitute(fields or {})
    html = _markup("_shell").substitute(
        title=escape(PAGES[page]), page=page, csrf=escape(csrf), nav=_nav(page, user), body=body,
        role=user.role if user else "", terminal=" ".join(sorted(TERMINAL)), active=" ".join(sorted(ACTIVE)),
        formats=_MIME_FORMATS,
    )  # fmt: skip
    store = _store_origins(settings)
    csp = (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob: {store}; connect-src 'self' {store}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    )
    return Response(
        html,
        media_type="text/html; charset=utf-8",
        cookies=cookies or [],
        headers={
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",  # pages carry the CSRF token
        },
    )
