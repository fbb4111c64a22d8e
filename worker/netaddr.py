"""Which addresses are public: one answer for the URL checks of requests (before anything is
sent) and for the resolved addresses of every outbound connection."""

from __future__ import annotations

import ipaddress
import re
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Hosts that inet_aton would read as an IPv4 address: 127.1, 0x7f.0.0.1, 2130706433, 0177.0.0.1.
_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?")


def normal_host(host: str) -> str:
    """A host as compared with an allowlist: no brackets, no trailing dot, lower case."""
    return host.strip("[]").rstrip(".").lower()


def literal_ip(host: str) -> IPAddress | None:
    """The address a host names literally, in any form the resolver accepts; None for a name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if _NUMERIC_HOST.fullmatch(host) is None:
            return None
        try:  # a shorthand IPv4 form the resolver would accept
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return unmapped(ip)


def unmapped(ip: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) as the IPv4 address it carries."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_public(ip: IPAddress) -> bool:
    """True for a globally routable unicast address: never private, loopback, link-local,
    shared (100.64.0.0/10), reserved, unspecified or multicast."""
    ip = unmapped(ip)
    return ip.is_global and not ip.is_multicast


def is_loopback_host(host: str) -> bool:
    host = normal_host(host)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    ip = literal_ip(host)
    return ip is not None and ip.is_loopback
