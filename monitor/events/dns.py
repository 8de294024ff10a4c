"""fd.sip.name: the names rules compare the server address with, resolved in the background.

Falco's semantics (libsinsp dns_manager, sinsp_filter_check_fd::compare_domain): a check
`fd.sip.name = N` holds when the event's server IP is one of the addresses N resolves
to; `in (N1, N2)` when it is one of any of theirs; `!=` is the negation. The names are
the ones the loaded rules name; nothing is resolved from the event's address (no reverse
lookup, which an attacker controlling a PTR record could steer).

Unlike Falco, which resolves a name the first time an event meets it (on its event
path), resolution here never happens while an event is judged: a thread resolves every
watched name when the rules load and again periodically, and the enrich stage only
looks the event's address up in the last complete answer (a dict swapped whole, so the
reader needs no lock). Refresh follows Falco's timing: every 10 s, doubling while the
answer stays the same, up to 320 s. A name that does not resolve matches nothing;
until a name's first answer arrives, it matches nothing either.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from monitor.netaddr import is_hostname

FIELD = "fd.sip.name"
BASE_REFRESH_S = 10.0
MAX_REFRESH_S = 320.0

Resolver = Callable[[str], frozenset[str]]


def resolve(name: str) -> frozenset[str]:
    """Every address getaddrinfo gives for name (IPv4 and IPv6), as the decoder writes
    fd.sip; empty if it does not resolve."""
    try:
        infos = socket.getaddrinfo(name, None)
    except (OSError, UnicodeError):
        return frozenset()
    out = set()
    for family, *_rest, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            out.add(str(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])))
    return frozenset(out)


@dataclass(slots=True)
class _Entry:
    addrs: frozenset[str]
    due: float  # monotonic time of the next resolution
    interval: float


class DnsWatch:
    """The watched names' addresses, refreshed by a daemon thread; names_for() is a dict lookup."""

    def __init__(self, resolver: Resolver = resolve, base_s: float = BASE_REFRESH_S,
                 max_s: float = MAX_REFRESH_S) -> None:
        self._resolver = resolver
        self._base_s = base_s
        self._max_s = max_s
        self._names: frozenset[str] = frozenset()
        self._entries: dict[str, _Entry] = {}  # the thread's own
        self._by_addr: dict[str, tuple[str, ...]] = {}  # replaced whole, never changed in place
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.resolutions = 0

    def watch(self, names: Iterable[str]) -> None:
        """The names the loaded rules compare fd.sip.name with (replaces the previous set)."""
        self._names = frozenset(n for n in names if is_hostname(n))
        if self._names and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ringwatch-dns", daemon=True)
            self._thread.start()
        self._wake.set()

    def names_for(self, ip: str) -> list[str]:
        """The watched names that resolved to ip at the last refresh, sorted."""
        return list(self._by_addr.get(ip, ()))

    def stats(self) -> dict[str, int]:
        return {"names": len(self._names), "resolved": sum(1 for n in self._entries.values() if n.addrs),
                "resolutions": self.resolutions}

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def refresh_once(self, now: float) -> float:
        """Resolve the names that are due; publish; the time until the next is due."""
        names = self._names
        for gone in set(self._entries) - names:
            del self._entries[gone]
        for name in sorted(names):
            entry = self._entries.get(name)
            if entry is not None and entry.due > now:
                continue
            addrs = self._resolver(name)
            self.resolutions += 1
            if entry is None or addrs != entry.addrs:
                self._entries[name] = _Entry(addrs, now + self._base_s, self._base_s)
            else:
                entry.interval = min(entry.interval * 2, self._max_s)
                entry.due = now + entry.interval
        by_addr: dict[str, list[str]] = {}
        for name in sorted(self._entries):
            for addr in self._entries[name].addrs:
                by_addr.setdefault(addr, []).append(name)
        self._by_addr = {a: tuple(ns) for a, ns in by_addr.items()}
        if not self._entries:
            return self._max_s
        return max(0.0, min(e.due for e in self._entries.values()) - now)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            wait = self.refresh_once(time.monotonic())
            self._wake.wait(wait)
