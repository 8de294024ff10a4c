"""Addresses and host names as rules and events both need them (no dependency either way).

`addr_hex`: an address as a sortable key, what fd.sip.hex/fd.cip.hex hold and Falco's
CIDR checks compare. `is_hostname`: whether a text is worth asking the resolver about
(the names rules compare fd.sip.name with).
"""

from __future__ import annotations

import ipaddress
import re

# Letters, digits, '-', '_' and dots; at most 253 characters.
_HOSTNAME = re.compile(r"^(?=.{1,253}\Z)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?\Z")


def addr_hex(ip: str) -> str:
    """An address as 32 hex digits, IPv4 as ::ffff:a.b.c.d: equal-length keys whose text
    order is numeric order, so a network is a range of them (Falco's fd.net, fd.snet
    lowered in monitor.rules.falco.lower). Raises ValueError for a non-address."""
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv4Address):
        addr = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + addr.packed)
    return addr.packed.hex()


def is_hostname(text: str) -> bool:
    return bool(_HOSTNAME.match(text)) and ".." not in text
