"""Item 3: webhooks cannot be pointed at internal addresses, in any spelling, nor rebound there
by DNS between the check and the connection."""

from __future__ import annotations

import socket

import httpx
import pytest

from devstack.receiver import WebhookReceiver
from infra.netguard import BlockedDestination, check_literal
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration

# (url, why it must be refused). Every spelling here reaches a non-public address.
BLOCKED = [
    ("http://127.0.0.1/", "loopback"),
    ("http://127.1/", "loopback, short form"),
    ("http://2130706433/", "loopback as one decimal number"),
    ("http://0x7f.1/", "loopback, hex and short"),
    ("http://0x7f000001/", "loopback as one hex number"),
    ("http://0177.0.0.1/", "loopback, octal"),
    ("http://017700000001/", "loopback as one octal number"),
    ("http://127.0.0.1./", "trailing dot"),
    ("http://localhost./", "localhost, trailing dot"),
    ("http://LOCALHOST/", "localhost, upper case"),
    ("http://api.localhost/", "a .localhost name"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://0/", "unspecified as a number"),
    ("http://0.1.2.3/", "0.0.0.0/8"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://169.254.169.254/", "link-local: cloud metadata"),
    ("http://192.0.0.8/", "IETF protocol assignments"),
    ("http://192.0.2.1/", "documentation"),
    ("http://198.51.100.1/", "documentation"),
    ("http://203.0.113.1/", "documentation"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://192.88.99.1/", "6to4 relay anycast"),
    ("http://224.0.0.1/", "multicast"),
    ("http://233.252.0.1/", "multicast (documentation)"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://[::1]/", "IPv6 loopback"),
    ("http://[::]/", "IPv6 unspecified"),
    ("http://[::ffff:127.0.0.1]/", "IPv4-mapped loopback"),
    ("http://[::ffff:7f00:1]/", "IPv4-mapped loopback, hex"),
    ("http://[::ffff:169.254.169.254]/", "IPv4-mapped metadata"),
    ("http://[::127.0.0.1]/", "IPv4-compatible loopback"),
    ("http://[::10.0.0.1]/", "IPv4-compatible private"),
    ("http://[64:ff9b::127.0.0.1]/", "NAT64 of loopback"),
    ("http://[64:ff9b::a9fe:a9fe]/", "NAT64 of metadata"),
    ("http://[64:ff9b:1::a00:1]/", "local-use NAT64"),
    ("http://[2002:7f00:1::]/", "6to4 of loopback"),
    ("http://[2002:a00:1::1]/", "6to4 of private"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"),
    ("http://[2001:db8::1]/", "IPv6 documentation"),
    ("http://[2001:2::1]/", "IPv6 benchmarking"),
    ("http://[fec0::1]/", "site-local"),
    ("http://[fc00::1]/", "unique local"),
    ("http://[fd12:3456::1]/", "unique local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local with zone"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[100::1]/", "discard-only"),
    ("ftp://example.com/", "not http(s)"),
    ("http:///path", "no host"),
]

ALLOWED = [
    "https://example.com/hooks",
    "http://93.184.216.34/",
    "http://1558243362/",  # 92.225.77.34 spelled as one number: odd but public
    "http://[2606:4700:4700::1111]/",
    "http://[::ffff:93.184.216.34]/",
    "http://[64:ff9b::5db8:d822]/",  # NAT64 of a public address: how IPv6-only networks reach IPv4
    "http://[2002:5db8:d822::1]/",  # 6to4 of a public address
    "https://hooks.example.com./x",
]


@pytest.mark.parametrize(("url", "why"), BLOCKED, ids=[u for u, _ in BLOCKED])
def test_literal_non_public_hosts_are_refused(url: str, why: str) -> None:
    with pytest.raises(BlockedDestination):
        check_literal(url, allow_private=False)


@pytest.mark.parametrize("url", ALLOWED)
def test_public_hosts_pass(url: str) -> None:
    check_literal(url, allow_private=False)


class Rebinder:
    """A DNS answer that changes: a public address for the first lookup, loopback afterwards."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.calls = 0
        self.real = socket.getaddrinfo

    def __call__(self, host, port, *args, **kwargs):  # socket.getaddrinfo's signature
        name = host.decode() if isinstance(host, bytes) else host  # anyio passes IDNA bytes
        if name != self.host:
            return self.real(host, port, *args, **kwargs)
        self.calls += 1
        ip = "93.184.216.34" if self.calls == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, int(port or 80)))]


async def test_dns_rebinding_cannot_reach_loopback(
    stack: Stack, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the worker does for a delivery (check the host, then POST with its client), with a
    resolver that answers a public address to the check and loopback to whoever asks next."""
    from data_plane.deps import open_deps
    from infra.netguard import resolve_public

    host = "hooks.rebind.test"
    rebinder = Rebinder(host)
    monkeypatch.setattr(socket, "getaddrinfo", rebinder)
    url = f"http://{host}:{receiver.port}/rebind"
    async with open_deps(stack.settings(webhook_allow_private=False)) as deps:
        await resolve_public(url, allow_private=False)  # the check sees the public address
        with pytest.raises(httpx.HTTPError):
            await deps.http.post(url, content=b"{}")
    assert receiver.at("/rebind") == [], "the webhook reached a loopback receiver after DNS rebinding"


async def test_guarded_transport_checks_and_pins_the_resolved_address(receiver: WebhookReceiver) -> None:
    from infra.netguard import guarded_transport

    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["93.184.216.34", "127.0.0.1"] if host == "mixed.test" else ["127.0.0.1"]

    # Refused: one of the answers is loopback, even though the first one is public.
    async with httpx.AsyncClient(transport=guarded_transport(allow_private=False, resolver=resolver)) as http:
        with pytest.raises(httpx.ConnectError, match="public address"):
            await http.post(f"http://mixed.test:{receiver.port}/pinned", content=b"{}")
        with pytest.raises(httpx.ConnectError, match="public address"):
            await http.post(f"http://[::ffff:127.0.0.1]:{receiver.port}/pinned", content=b"{}")
    assert asked == ["mixed.test"] and receiver.at("/pinned") == []

    # Allowed on a private network: it connects to the exact address the resolver gave, and the
    # receiver sees the original host name.
    async with httpx.AsyncClient(transport=guarded_transport(allow_private=True, resolver=resolver)) as http:
        response = await http.post(f"http://hooks.internal.test:{receiver.port}/pinned", content=b"{}")
    assert response.status_code == 200
    (got,) = receiver.at("/pinned")
    assert got.headers["host"] == f"hooks.internal.test:{receiver.port}"
    assert asked == ["mixed.test", "hooks.internal.test"]
