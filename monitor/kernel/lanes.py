"""The sensor's two ring buffers (lanes) and their accounting.

Process records (exec, fork, exit, deny, throttle) travel in the ring buffer `events`,
syscall records in `syscalls`. bcc's own manager serves every ring buffer of a program
in one poll, in whatever order epoll reports them; here each lane has a libbpf ring
buffer manager of its own, so the sensor can drain the process lane before, and between
chunks of, the syscall lane. A blocking wait is an epoll on both maps' fds.

Accounting per lane, exact once tracing stops:
    delivered + coalesced + throttled + lost == produced
delivered counts records read from the ring (decodable or not: undecodable ones are
also in decode_errors).
"""

from __future__ import annotations

import ctypes as ct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitor.kernel.records import (
    PROCESS_LANE_LOST,
    PROCESS_LANE_TYPES,
    SYSCALL_LANE_LOST,
    SYSCALL_LANE_TYPES,
    FloodStat,
)

PROCESS = "process"
SYSCALL = "syscall"
LANES = (PROCESS, SYSCALL)
# Ring buffer map of each lane in bpf/sensor.bpf.c.
MAP_NAMES = {PROCESS: "events", SYSCALL: "syscalls"}

RingCallback = Callable[[Any, int, int], int]


class RingManager:
    """One libbpf ring_buffer manager over some of the program's ring buffer maps."""

    def __init__(self, rings: list[tuple[int, RingCallback]]) -> None:
        from bcc.libbcc import _RINGBUF_CB_TYPE, lib

        self._lib = lib
        # consume() never blocks, and every record it reads calls back into Python. Through
        # bcc's CDLL each call released the interpreter lock and each callback took it
        # again: a lock round trip per record, and beside a busy output thread a wait for
        # it (the live profile had a third of the consumer's time there). The same function
        # through a PyDLL handle keeps the lock for the whole consume; callbacks then find
        # it held. poll() blocks, so it stays on the CDLL and lets other threads run.
        held = ct.PyDLL(lib._name)
        self._consume_held = held.bpf_consume_ringbuf
        self._consume_held.restype = ct.c_int
        self._consume_held.argtypes = [ct.c_void_p]
        # ctypes callbacks must outlive the manager: libbpf keeps their addresses.
        self._cbs = [_RINGBUF_CB_TYPE(cb) for _, cb in rings]
        fd0 = rings[0][0]
        self._mgr = lib.bpf_new_ringbuf(fd0, self._cbs[0], None)
        if not self._mgr:
            raise OSError(f"cannot open ring buffer (map fd {fd0})")
        for (fd, _), cb in zip(rings[1:], self._cbs[1:], strict=True):
            if lib.bpf_add_ringbuf(self._mgr, fd, cb, None) < 0:
                self.close()
                raise OSError(f"cannot add ring buffer (map fd {fd})")

    def consume(self) -> None:
        """Whatever is there now, without blocking (until a callback returns < 0)."""
        self._consume_held(self._mgr)

    def poll(self, timeout_ms: int) -> None:
        self._lib.bpf_poll_ringbuf(self._mgr, timeout_ms)

    def close(self) -> None:
        if self._mgr:
            self._lib.bpf_free_ringbuf(self._mgr)
            self._mgr = None


@dataclass
class LaneCounts:
    produced: int = 0
    delivered: int = 0
    coalesced: int = 0
    throttled: int = 0
    lost: int = 0

    def unaccounted(self) -> int:
        """produced minus everything accounted for: 0 when exact, > 0 while in flight."""
        return self.produced - self.delivered - self.coalesced - self.throttled - self.lost

    def as_dict(self) -> dict[str, int]:
        return {
            "produced": self.produced, "delivered": self.delivered, "coalesced": self.coalesced,
            "throttled": self.throttled, "lost": self.lost,
        }


def lane_counts(
    produced: Mapping[str, int],
    drops: Mapping[str, int],
    received: Mapping[str, int],
    flood: Mapping[str, int],
) -> dict[str, LaneCounts]:
    """Per-lane identity terms from the kernel's per-type and per-reason counters."""
    coalesced = flood.get(FloodStat.COALESCED.name.lower(), 0)
    throttled = flood.get(FloodStat.THROTTLED_PROCESS.name.lower(), 0) + flood.get(
        FloodStat.THROTTLED_CGROUP.name.lower(), 0
    )
    return {
        PROCESS: LaneCounts(
            produced=sum(produced.get(t.name.lower(), 0) for t in PROCESS_LANE_TYPES),
            delivered=received.get(PROCESS, 0),
            lost=sum(drops.get(r.name.lower(), 0) for r in PROCESS_LANE_LOST),
        ),
        SYSCALL: LaneCounts(
            produced=sum(produced.get(t.name.lower(), 0) for t in SYSCALL_LANE_TYPES),
            delivered=received.get(SYSCALL, 0),
            coalesced=coalesced,
            throttled=throttled,
            lost=sum(drops.get(r.name.lower(), 0) for r in SYSCALL_LANE_LOST),
        ),
    }

