"""Where outbound webhooks may go. Receivers on private, loopback, link-local or otherwise
non-public addresses are refused (SSRF) unless the deployment allows them explicitly."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = ["BlockedDestination", "check_literal", "resolve_public"]


class BlockedDestination(Exception):
    pass


def _blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedDestination("webhook URLs must be http(s) with a host")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def check_literal(url: str, *, allow_private: bool) -> None:
    """Cheap check at job creation: refuse URLs whose host is a literal non-public IP or 'localhost'."""
    host, _ = _host_port(url)
    if allow_private:
        return
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        raise BlockedDestination("webhook host resolves to a loopback address")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return
    if _blocked(ip):
        raise BlockedDestination("webhook host is not a public address")


async def resolve_public(url: str, *, allow_private: bool) -> None:
    """Resolve the host at send time; every address it resolves to must be public."""
    host, port = _host_port(url)
    if allow_private:
        return
    check_literal(url, allow_private=False)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BlockedDestination(f"webhook host does not resolve ({exc.strerror})") from None
    for info in infos:
        if _blocked(ipaddress.ip_address(info[4][0])):
            raise BlockedDestination("webhook host resolves to a non-public address")
