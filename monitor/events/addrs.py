"""Addresses as sortable keys: what fd.sip.hex/fd.cip.hex hold and CIDR checks compare."""

from __future__ import annotations

import ipaddress


def addr_hex(ip: str) -> str:
    """An address as 32 hex digits, IPv4 as ::ffff:a.b.c.d: equal-length keys whose text
    order is numeric order, so a network is a range of them (Falco's fd.net, fd.snet
    lowered in monitor.rules.falco.lower). Raises ValueError for a non-address."""
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv4Address):
        addr = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + addr.packed)
    return addr.packed.hex()
