"""Who is on the other end of a request: its client address, and whether it came over HTTPS.

``X-Forwarded-For``, ``Forwarded`` and ``X-Forwarded-Proto`` are anyone's to write, so they are
believed only from a peer in ``PIXELFLOW_TRUSTED_PROXIES`` (none by default). From a trusted
peer, the client is the rightmost address in the chain that is not itself a trusted proxy: each
proxy appends the address it saw, so everything left of that was written by the client and
proves nothing. ``X-Forwarded-For`` is read when present (what nginx, HAProxy, Traefik, Caddy
and cloud load balancers append to), else ``Forwarded`` (RFC 7239).

``trusted_proxies`` rewrites the ASGI scope's ``client`` and ``scheme`` once, first thing, so the
access log, traces, secure cookies and every per-address limit see the same address. uvicorn's
own proxy-header handling is off (control_plane/uvicorn_config.py): it would believe 127.0.0.1 whatever
the setting says.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence

from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from infra.settings import Settings

__all__ = ["address_bucket", "client_address", "forwarded_client", "trusted_proxies"]

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


def client_address(request: Request) -> str:
    """The client address of this request (after ``trusted_proxies``): what per-address limits count."""
    return request.client.host if request.client else "unknown"


def address_bucket(address: str) -> str:
    """What a per-address limit keys on: an IPv4 address, or an IPv6 address's /64 (one
    subscriber's usual allocation: otherwise one home could be 2^64 addresses)."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip) if ip is not None else address


def _ip(text: str) -> IP | None:
    """An address as a proxy writes it: bare, ``[v6]:port``, ``v4:port``, quoted; None for
    ``unknown``, obfuscated identifiers (``_hidden``) and anything else."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # one client, one spelling
    return ip


def _trusted(ip: IP, networks: Networks) -> bool:
    return any(ip in network for network in networks)


def _forwarded_pairs(values: Iterable[str], name: str) -> list[str]:
    """The ``name=`` parameter of each element of ``Forwarded``, in order ('' where absent)."""
    out = []
    for element in ",".join(values).split(","):
        found = ""
        for pair in element.split(";"):
            key, _, value = pair.strip().partition("=")
            if key.lower() == name:
                found = value.strip().strip('"')
        out.append(found)
    return out


def forwarded_client(peer: str, x_forwarded_for: Sequence[str], forwarded: Sequence[str], networks: Networks) -> str:
    """The client address: ``peer`` itself unless it is a trusted proxy; else the rightmost
    untrusted address of the chain. A hop that is not an address (``unknown``, garbage) ends the
    walk at the last trusted hop: whoever wrote it cannot be told apart from that proxy."""
    ip = _ip(peer)
    if ip is None or not _trusted(ip, networks):
        return peer
    if x_forwarded_for:
        chain = ",".join(x_forwarded_for).split(",")
    else:
        chain = _forwarded_pairs(forwarded, "for") if forwarded else []
    for hop in reversed(chain):
        hop_ip = _ip(hop)
        if hop_ip is None:
            break
        ip = hop_ip
        if not _trusted(ip, networks):
            break
    return str(ip)  # every hop trusted: the leftmost, an internal caller


def _forwarded_https(x_forwarded_proto: Sequence[str], forwarded: Sequence[str]) -> bool:
    # the nearest proxy's word: the last value
    if x_forwarded_proto:
        return ",".join(x_forwarded_proto).split(",")[-1].strip().lower() == "https"
    protos = [p for p in _forwarded_pairs(forwarded, "proto") if p]
    return bool(protos) and protos[-1].lower() == "https"


def trusted_proxies(settings: Settings) -> Callable[[ASGIApp], ASGIApp]:
    """The app's first middleware: the scope's ``client`` and ``scheme`` as the trusted proxies tell them."""
    networks = settings.trusted_proxy_networks

    def middleware(app: ASGIApp) -> ASGIApp:
        async def rewrite(scope: Scope, receive: Receive, send: Send) -> None:
            client = scope.get("client")
            if networks and scope["type"] == ScopeType.HTTP and client:
                headers: dict[str, list[str]] = {}
                for name, value in scope["headers"]:
                    if name in (b"x-forwarded-for", b"forwarded", b"x-forwarded-proto"):
                        headers.setdefault(name.decode(), []).append(value.decode("latin-1"))
                peer = _ip(client[0])
                if headers and peer is not None and _trusted(peer, networks):
                    xff, fwd = headers.get("x-forwarded-for", []), headers.get("forwarded", [])
                    scope["client"] = (forwarded_client(client[0], xff, fwd, networks), 0)
                    if _forwarded_https(headers.get("x-forwarded-proto", []), fwd):
                        scope["scheme"] = "https"
            await app(scope, receive, send)

        return rewrite

    return middleware
