"""Where outbound requests may go: webhooks and URL sources (the worker fetching a job's original).
Hosts on private, loopback, link-local or otherwise non-public addresses are refused (SSRF)
unless the deployment allows them explicitly (``webhook_allow_private``,
``url_sources_allow_private``: separate switches, since a LAN webhook receiver does not make
every internal service a fair image source).

Three layers, each closing a gap the one before leaves open:

- ``check_literal`` at job creation: the host as written, in every spelling a resolver accepts
  (``2130706433``, ``0x7f.1``, ``127.0.0.1.``, ``[::ffff:127.0.0.1]``, NAT64, 6to4, ...).
- ``resolve_public`` at send time: every address the name resolves to must be public.
- ``guarded_transport`` for the HTTP client: it resolves the name **once**, checks every
  answer, and connects to exactly the address it checked, so a DNS answer that changes between
  the check and the connection (rebinding) cannot reach an internal address. The ``Host``
  header, TLS SNI and certificate verification still use the name from the URL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

__all__ = [
    "BlockedDestination",
    "Resolver",
    "Unresolvable",
    "check_literal",
    "guard_refusal",
    "guarded_transport",
    "non_public_reason",
    "resolve_public",
    "system_resolver",
]

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


class BlockedDestination(Exception):
    pass


class Unresolvable(BlockedDestination):
    """The host has no address (yet): a failure to reach it, not a forbidden destination."""


def _nets(*cidrs: str) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]:
    return tuple((ipaddress.ip_network(c.split()[0]), c.split(maxsplit=1)[1]) for c in cidrs)


# Spelled out rather than left to ``ip.is_global``: its tables differ between Python releases
# (3.11 calls 192.88.99.0/24, 64:ff9b:1::/48, fec0::/10 and 3fff::/20 global).
_V4_BLOCKED = _nets(
    "0.0.0.0/8 this network",
    "10.0.0.0/8 private",
    "100.64.0.0/10 carrier-grade NAT",
    "127.0.0.0/8 loopback",
    "169.254.0.0/16 link-local",
    "172.16.0.0/12 private",
    "192.0.0.0/24 IETF protocol assignments",
    "192.0.2.0/24 documentation",
    "192.88.99.0/24 6to4 relay anycast",
    "192.168.0.0/16 private",
    "198.18.0.0/15 benchmarking",
    "198.51.100.0/24 documentation",
    "203.0.113.0/24 documentation",
    "224.0.0.0/4 multicast",
    "240.0.0.0/4 reserved",
)
_V6_BLOCKED = _nets(
    "::/128 unspecified",
    "::1/128 loopback",
    "64:ff9b:1::/48 local-use NAT64",
    "100::/64 discard-only",
    "2001::/23 IETF protocol assignments (Teredo, benchmarking, ORCHID)",
    "2001:db8::/32 documentation",
    "3fff::/20 documentation",
    "5f00::/16 segment routing",
    "fc00::/7 unique local",
    "fe80::/10 link-local",
    "fec0::/10 site-local",
    "ff00::/8 multicast",
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPAT = ipaddress.ip_network("::/96")  # IPv4-compatible (deprecated) ::a.b.c.d


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address is a wrapper for, if it is one: such an address reaches
    that IPv4 host (through the kernel, a NAT64 gateway or a 6to4 relay), so it is judged by it."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or (ip in _COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour  # 2002::/16


def non_public_reason(ip: IP) -> str | None:
    """Why ``ip`` is not a public unicast address, or None if it is one."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            reason = non_public_reason(inner)
            return f"{reason} (embedded in {ip})" if reason else None
        table = _V6_BLOCKED
    else:
        table = _V4_BLOCKED
    for net, reason in table:
        if ip in net:
            return reason
    if not ip.is_global or ip.is_multicast:
        return "not a global address"
    return None


# The numeric forms inet_aton (and so getaddrinfo) accepts: 1-4 parts, decimal, 0-octal or 0x-hex.
_NUMERIC_PART = re.compile(r"^(0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$", re.I)


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.match(p) for p in parts):
        return None
    values = [
        int(p[2:] or "0", 16) if p[:2].lower() == "0x" else int(p, 8) if p.startswith("0") else int(p) for p in parts
    ]
    *head, last = values
    if any(v > 255 for v in head) or last >= 1 << (8 * (5 - len(parts))):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (24 - 8 * i)
    return ipaddress.IPv4Address(number)


def parse_ip(host: str) -> IP | None:
    """``host`` as an IP address in any spelling a resolver would accept, or None if it is a name."""
    host = host.rstrip(".")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return _inet_aton(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    return ip


def _host_port(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BlockedDestination("URLs must be http(s) with a host") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedDestination("URLs must be http(s) with a host")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _check_host(host: str) -> None:
    name = host.rstrip(".").lower()
    if name in ("localhost", "localhost.localdomain") or name.endswith(".localhost"):
        raise BlockedDestination("the host resolves to a loopback address")
    ip = parse_ip(host)
    if ip is not None and (reason := non_public_reason(ip)):
        raise BlockedDestination(f"the host is not a public address ({reason})")


def check_literal(url: str, *, allow_private: bool) -> None:
    """Cheap check at job creation: refuse URLs whose host is a literal non-public IP or 'localhost'."""
    host, _ = _host_port(url)
    if not allow_private:
        _check_host(host)


async def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"the host does not resolve ({exc})") from None
    return [str(info[4][0]) for info in infos]


async def _resolve_checked(host: str, port: int, *, allow_private: bool, resolver: Resolver) -> list[str]:
    if not allow_private:
        _check_host(host)
    literal = parse_ip(host)
    addresses = [str(literal)] if literal is not None else await resolver(host, port)
    if not addresses:
        raise Unresolvable("the host does not resolve")
    if not allow_private:
        for address in addresses:
            if reason := non_public_reason(parse_ip(address) or ipaddress.ip_address(address)):
                raise BlockedDestination(f"the host resolves to a non-public address ({reason})")
    return addresses


async def resolve_public(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
    """Resolve the host at send time; every address it resolves to must be public."""
    host, port = _host_port(url)
    if not allow_private:
        await _resolve_checked(host, port, allow_private=False, resolver=resolver)


class _BlockedConnect(httpcore.ConnectError):
    """httpx maps it to ``httpx.ConnectError``: to a caller the receiver is unreachable."""


def guard_refusal(exc: BaseException) -> str | None:
    """Why the guarded transport refused to connect, if that is what ``exc`` (an httpx error)
    comes from; None for an ordinary network failure. httpx re-raises the transport's refusal as
    a plain ``ConnectError``, so the refusal is found in the exception's cause chain."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _BlockedConnect):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host once per connection and connects to an address it has checked."""

    def __init__(self, *, allow_private: bool, resolver: Resolver) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private
        self._resolver = resolver

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await _resolve_checked(host, port, allow_private=self._allow_private, resolver=self._resolver)
        except Unresolvable as exc:
            raise httpcore.ConnectError(str(exc)) from None
        except BlockedDestination as exc:
            raise _BlockedConnect(str(exc)) from None
        failure: Exception | None = None
        for address in addresses:
            try:
                # TLS is started on this stream later with server_hostname=<the URL's host>, so
                # SNI and certificate checks are for the name, not the address.
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise _BlockedConnect("outbound requests never go to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, *, allow_private: bool, resolver: Resolver, limits: httpx.Limits, verify: ssl.SSLContext | bool):
        super().__init__(limits=limits, verify=verify, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend(allow_private=allow_private, resolver=resolver),
        )


def guarded_transport(
    *,
    allow_private: bool,
    resolver: Resolver = system_resolver,
    limits: httpx.Limits | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncHTTPTransport:
    """An httpx transport that only connects to addresses it has checked (see the module doc).
    ``resolver`` is injectable so tests can play a rebinding DNS server. No proxy is used: a
    proxy would do its own resolution, out of this guard's sight."""
    return _GuardedTransport(
        allow_private=allow_private, resolver=resolver, limits=limits or httpx.Limits(), verify=verify
    )
