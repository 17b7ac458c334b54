"""URL sources: the worker fetching a job's original from ``"source": {"url": ...}``.

Every hop (the URL, then each redirect, followed here and never by httpx) is checked by the SSRF
guard twice: ``resolve_public`` refuses a name that resolves to a non-public address, and the
guarded transport resolves it again and connects only to an address it checked, so a DNS answer
that changes in between (rebinding) cannot reach an internal host. The body is read as it
arrives and abandoned as soon as it passes the source-bytes limit (a ``Content-Length`` above it
is refused before reading), and one deadline covers connecting, every redirect and the whole
body, so a trickling origin cannot hold a worker. The ``Content-Type`` is never trusted: the
bytes are sniffed like an upload's.

Errors carry a ``Reason`` and whether trying again later may help (connection failures, 429,
502-504); URLs in messages are cut to their origin, since paths and queries carry tokens.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urljoin, urlsplit

import httpx

from infra.lifecycle import Reason
from infra.netguard import (
    BlockedDestination,
    Resolver,
    Unresolvable,
    check_literal,
    guard_refusal,
    guarded_transport,
    resolve_public,
    system_resolver,
)
from infra.settings import Settings

__all__ = ["SourceError", "fetch_source", "origin", "source_client"]

# Answers worth another try later: the origin is overloaded or a gateway in front of it is.
_TRANSIENT_STATUS = frozenset({408, 429, 502, 503, 504})


class SourceError(Exception):
    def __init__(self, code: Reason, public: str, *, transient: bool = False) -> None:
        super().__init__(public)
        self.code = code
        self.public = public
        self.transient = transient


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what logs and messages show (no credentials, path or query)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced IPv6 bracket: the guard refuses it; the message must not fail
        return "(an invalid URL)"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # userinfo dropped


def source_client(settings: Settings, resolver: Resolver = system_resolver) -> httpx.AsyncClient:
    """The worker's client for URL sources: guarded, no proxy, no redirects of its own."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.source_fetch_timeout_seconds),
        follow_redirects=False,  # followed by fetch_source, each hop checked by the guard again
        # identity: a compressed body would be inflated by httpx past the byte count we enforce
        headers={"User-Agent": "PixelFlow-Fetch/1", "Accept": "image/*", "Accept-Encoding": "identity"},
        transport=guarded_transport(
            allow_private=settings.url_sources_allow_private,
            resolver=resolver,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=0),
        ),
        trust_env=False,  # an environment proxy would resolve the name itself, past the guard
    )


async def fetch_source(
    http: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    max_redirects: int,
    allow_private: bool,
    resolver: Resolver = system_resolver,
) -> bytes:
    """The body at ``url``, within the limits; raises ``SourceError``."""
    try:
        async with asyncio.timeout(timeout):
            return await _follow(http, url, max_bytes, max_redirects, allow_private, resolver)
    except TimeoutError:
        raise SourceError(
            Reason.SOURCE_TIMEOUT, f"{origin(url)} did not send the whole image within {timeout:g} s"
        ) from None


async def _follow(
    http: httpx.AsyncClient, url: str, max_bytes: int, max_redirects: int, allow_private: bool, resolver: Resolver
) -> bytes:
    for _ in range(max_redirects + 1):
        try:
            check_literal(url, allow_private=allow_private)
            await resolve_public(url, allow_private=allow_private, resolver=resolver)
        except Unresolvable as exc:
            raise SourceError(Reason.SOURCE_UNREACHABLE, f"{origin(url)}: {exc}", transient=True) from None
        except BlockedDestination as exc:
            raise SourceError(Reason.SOURCE_BLOCKED, f"{origin(url)} is not allowed: {exc}") from None
        try:
            async with http.stream("GET", url) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise SourceError(
                        Reason.SOURCE_UNREACHABLE,
                        f"{origin(url)} answered {response.status_code}",
                        transient=response.status_code in _TRANSIENT_STATUS,
                    )
                return await _body(response, url, max_bytes)
        except httpx.HTTPError as exc:
            if (refusal := guard_refusal(exc)) is not None:
                raise SourceError(Reason.SOURCE_BLOCKED, f"{origin(url)} is not allowed: {refusal}") from None
            if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
                raise SourceError(Reason.SOURCE_TIMEOUT, f"{origin(url)} stopped sending") from None
            message = f"{origin(url)} could not be reached ({type(exc).__name__})"
            raise SourceError(Reason.SOURCE_UNREACHABLE, message, transient=True) from None
    raise SourceError(Reason.SOURCE_UNREACHABLE, f"more than {max_redirects} redirects")


async def _body(response: httpx.Response, url: str, max_bytes: int) -> bytes:
    too_large = f"the image at {origin(url)} is larger than the limit of {max_bytes} bytes"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise SourceError(Reason.SOURCE_TOO_LARGE, too_large)
    body = bytearray()
    # Counted as it arrives: a chunked body declares no length (a Content-Length is held by the
    # HTTP parser, which reads no further than it says).
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > max_bytes:
            raise SourceError(Reason.SOURCE_TOO_LARGE, too_large)
    return bytes(body)
