"""The guard's verdicts on names, with a resolver the test controls: a name is judged by every
address it resolves to, including IPv6 addresses that embed a private IPv4 one (6to4, Teredo,
NAT64), and shared address space (100.64.0.0/10). No connection is opened: the guard only
resolves (an audit hook fails the test on any connect)."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from worker.egress.netguard import UnsafeURL, check_url

_connects: list[Any] = []
_watching = [False]


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _watching[0]:
        _connects.append(args[1])
        raise ConnectionRefusedError("test: the guard must not connect")


sys.addaudithook(_audit)


@pytest.fixture()
def names(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, tuple[str, ...]]]:
    """name -> the addresses the resolver answers for it."""
    table: dict[str, tuple[str, ...]] = {}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "unknown name")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
             (a, int(port), 0, 0) if ":" in a else (a, int(port)))
            for a in table[host]
        ]  # fmt: skip

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    _connects.clear()
    _watching[0] = True
    yield table
    _watching[0] = False
    assert _connects == []


REFUSED = {
    "cgnat.test": "100.64.0.1",  # shared address space (RFC 6598)
    "alibaba-metadata.test": "100.100.100.200",  # Alibaba Cloud's metadata service
    "metadata.test": "169.254.169.254",
    "sixtofour.test": "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "sixtofour-private.test": "2002:a00:1::",  # 6to4 of 10.0.0.1
    "teredo.test": "2001:0:102:304::80ff:fffe",  # Teredo, client 127.0.0.1
    "nat64.test": "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "nat64-local.test": "64:ff9b:1::a9fe:a9fe",  # local-use NAT64 of 169.254.169.254
    "mapped.test": "::ffff:10.0.0.1",
    "private.test": "192.168.1.10",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_name_resolving_to_a_private_or_embedded_private_address_is_refused(
    names: dict[str, tuple[str, ...]], name: str
) -> None:
    names[name] = (REFUSED[name],)
    with pytest.raises(UnsafeURL, match="private"):
        check_url(f"https://{name}/x")


def test_a_public_name_passes_with_the_addresses_to_connect_to(
    names: dict[str, tuple[str, ...]],
) -> None:
    names["files.test"] = ("93.184.216.34", "2606:4700:4700::1111", "64:ff9b::808:808")
    checked = check_url("https://files.test:8443/a.mp3")
    assert checked.addresses == ("93.184.216.34", "2606:4700:4700::1111", "64:ff9b::808:808")
    assert (checked.host, checked.port, checked.netloc) == ("files.test", 8443, "files.test:8443")


def test_one_private_address_among_public_ones_refuses_the_name(
    names: dict[str, tuple[str, ...]],
) -> None:
    names["mixed.test"] = ("93.184.216.34", "100.100.100.200")
    with pytest.raises(UnsafeURL, match=r"100\.100\.100\.200"):
        check_url("http://mixed.test/")


def test_allowlisting_a_name_or_an_address(names: dict[str, tuple[str, ...]]) -> None:
    names["sandbox.test"] = ("127.0.0.1",)
    names["other.test"] = ("127.0.0.2",)
    # A name in the list: whatever it resolves to.
    assert check_url("http://sandbox.test/", ["sandbox.test"]).addresses == ("127.0.0.1",)
    # An address in the list: that address, whatever name led to it; no other address.
    assert check_url("http://other.test/", ["127.0.0.2"]).addresses == ("127.0.0.2",)
    with pytest.raises(UnsafeURL):
        check_url("http://sandbox.test/", ["127.0.0.2"])
    # Only an address written in its usual form allows an address.
    with pytest.raises(UnsafeURL):
        check_url("http://other.test/", ["127.2"])
