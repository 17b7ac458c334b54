"""The client address of a request: forwarding headers believed only from trusted proxies, the
rightmost untrusted hop of the chain, IPv6 limited per /64; PIXELFLOW_TRUSTED_PROXIES refused
at start-up when it is not IPs and CIDRs."""

from __future__ import annotations

import pytest

from control_plane.auth.peers import address_bucket, forwarded_client
from infra.settings import SettingsError, load_settings

PROXIES = load_settings({"PIXELFLOW_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8, fd00::/8"}).trusted_proxy_networks


@pytest.mark.parametrize(
    ("peer", "xff", "forwarded", "client"),
    [
        # an untrusted peer: its headers say nothing
        ("203.0.113.9", ["1.2.3.4"], [], "203.0.113.9"),
        ("203.0.113.9", [], ["for=1.2.3.4"], "203.0.113.9"),
        # a trusted peer: the rightmost hop it did not write itself
        ("127.0.0.1", ["198.51.100.7"], [], "198.51.100.7"),
        ("127.0.0.1", ["6.6.6.6, 198.51.100.7"], [], "198.51.100.7"),  # the client's own entry is ignored
        ("127.0.0.1", ["6.6.6.6", "198.51.100.7, 10.1.2.3"], [], "198.51.100.7"),  # headers join; proxies skipped
        ("127.0.0.1", [], [], "127.0.0.1"),  # no header: the proxy itself
        ("127.0.0.1", ["10.0.0.5, 10.0.0.6"], [], "10.0.0.5"),  # every hop trusted: the leftmost
        ("127.0.0.1", ["unknown"], [], "127.0.0.1"),  # not an address: the proxy that wrote it
        ("127.0.0.1", ["198.51.100.7, garbage"], [], "127.0.0.1"),
        ("127.0.0.1", ["198.51.100.7:4711"], [], "198.51.100.7"),
        ("127.0.0.1", ["[2001:db8::1]:4711"], [], "2001:db8::1"),
        ("127.0.0.1", ["::ffff:198.51.100.7"], [], "198.51.100.7"),
        ("::ffff:127.0.0.1", ["198.51.100.7"], [], "198.51.100.7"),
        # Forwarded (RFC 7239), read only without X-Forwarded-For
        ("127.0.0.1", [], ['for=6.6.6.6, for="[2001:db8::17]:4711";proto=https'], "2001:db8::17"),
        ("127.0.0.1", [], ["for=198.51.100.7;by=10.0.0.1, for=10.2.2.2"], "198.51.100.7"),
        ("127.0.0.1", ["198.51.100.7"], ["for=6.6.6.6"], "198.51.100.7"),
        ("127.0.0.1", [], ["for=_hidden"], "127.0.0.1"),
    ],
)
def test_the_client_is_the_rightmost_untrusted_hop(
    peer: str, xff: list[str], forwarded: list[str], client: str
) -> None:
    assert forwarded_client(peer, xff, forwarded, PROXIES) == client


def test_without_trusted_proxies_no_header_is_believed() -> None:
    assert forwarded_client("127.0.0.1", ["198.51.100.7"], ["for=6.6.6.6"], ()) == "127.0.0.1"


def test_ipv6_clients_are_limited_per_64() -> None:
    assert address_bucket("2001:db8:1:2:aaaa::1") == address_bucket("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_bucket("2001:db8:1:3::1") != address_bucket("2001:db8:1:2::1")
    assert address_bucket("198.51.100.7") == "198.51.100.7"
    assert address_bucket("unknown") == "unknown"


def test_trusted_proxies_are_ips_and_cidrs() -> None:
    assert load_settings({}).trusted_proxy_networks == ()
    assert [str(n) for n in PROXIES] == ["127.0.0.1/32", "10.0.0.0/8", "fd00::/8"]
    for bad in ("10.0.0.1/8", "proxy.internal", "*", "10.0.0.0/33"):
        with pytest.raises(SettingsError, match="PIXELFLOW_TRUSTED_PROXIES"):
            load_settings({"PIXELFLOW_TRUSTED_PROXIES": bad})
