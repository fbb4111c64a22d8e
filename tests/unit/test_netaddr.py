"""Which addresses are public (worker/netaddr.py), and the verdict of the outbound URL check on
literal addresses (worker/egress/netguard.py): no connection is ever opened here."""

from __future__ import annotations

import ipaddress

import pytest

from worker.egress.netguard import UnsafeURL, check_url
from worker.netaddr import is_loopback_host, is_public, literal_ip

REFUSED = [
    "127.0.0.1",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.100.100.200",  # shared address space (carrier-grade NAT; a metadata service)
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b:1::7f00:1",  # local-use NAT64 of 127.0.0.1
]
ALLOWED = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", REFUSED)
def test_private_and_embedded_private_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_global_unicast_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", REFUSED)
def test_the_outbound_check_refuses_each_of_them(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(UnsafeURL, match="private"):
        check_url(f"http://{host}/x")


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"),
     ("::ffff:127.0.0.1", "127.0.0.1"), ("example.com", None)],
)  # fmt: skip
def test_literal_ip_reads_every_form_the_resolver_accepts(host: str, expected: str | None) -> None:
    got = literal_ip(host)
    assert (None if got is None else str(got)) == expected


def test_loopback_hosts() -> None:
    assert all(map(is_loopback_host, ["localhost", "a.localhost", "127.0.0.1", "[::1]", "127.1"]))
    assert not any(map(is_loopback_host, ["example.com", "10.0.0.1"]))
