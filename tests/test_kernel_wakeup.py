"""Batched wake-ups on the running kernel: syscall records wait in the ring unannounced
until sensor.wakeup_records of them came on a CPU; the next poll reads them anyway.

The sensor runs in this process (which it never traces); a child pinned to one CPU opens
files in a directory of its own, the only opens the kernel's path filter keeps, so the
per-CPU count of unannounced records moves only with the child's opens.
"""

from __future__ import annotations

import ctypes as ct
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.config import LineageConfig, SensorConfig
from monitor.events.catalog import CATALOGUE
from monitor.kernel.lanes import SYSCALL
from monitor.kernel.records import SC_WIRE_HEAD, Record, SyscallRecord
from monitor.kernel.sensor import Sensor

pytestmark = pytest.mark.kernel
BATCH = 64
CPU = 0

# Opens the file once per number read from stdin, then says "done".
CHILD = f"""
import os, sys
os.sched_setaffinity(0, {{{CPU}}})
for line in sys.stdin:
    for _ in range(int(line)):
        os.close(os.open(sys.argv[1], os.O_RDONLY))
    print("done", flush=True)
"""


class Opener:
    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def opens(self, n: int) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "done\n"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wakeup")


@pytest.fixture(scope="module")
def sensor(watched: Path) -> Iterator[tuple[Sensor, list[Record]]]:
    assert os.geteuid() == 0, "kernel tests need root"
    seen: list[Record] = []
    pin = Path("/sys/fs/bpf") / f"rw-test-wakeup-{os.getpid()}"
    pin.mkdir(exist_ok=True)
    cfg = SensorConfig(wakeup_records=BATCH, coalesce_window_ms=0, throttle_process_rate=0,
                       throttle_cgroup_rate=0, ringbuf_bytes=1 << 20)
    s = Sensor(cfg, seen.append, lineage=LineageConfig(bpffs_dir=str(pin)))
    try:
        s.start()  # inside: a load that fails must not leave the pin directory behind
        s.set_wanted_syscalls(CATALOGUE.wanted_numbers({"openat"}))
        s.set_open_prefixes(frozenset({f"{watched}/"}))
        yield s, seen
    finally:
        s.close()
        for f in pin.iterdir():
            f.unlink()
        pin.rmdir()


def _unannounced(s: Sensor) -> int:
    """Records sent on CPU without a wake-up since its last one (the kernel's count)."""
    assert s._bpf is not None
    return int(s._bpf["syscall_unwoken"][ct.c_int(0)][CPU])


def test_records_below_the_batch_wait_unannounced_and_the_batch_wakes(
        sensor: tuple[Sensor, list[Record]], watched: Path) -> None:
    s, seen = sensor
    target = watched / "f"
    target.write_text("x")
    opener = Opener(target)
    try:
        opener.opens(1)  # the child's own start-up is behind it
        s.drain()
        ring = s._bpf["syscalls"] if s._bpf is not None else None
        assert ring is not None
        ep = select.epoll()
        ep.register(ring.map_fd, select.EPOLLIN)  # the ring is empty: not readable
        short = BATCH - 1 - _unannounced(s)
        assert short > 0
        opener.opens(short)
        assert _unannounced(s) == BATCH - 1
        # The records are in the ring, but nothing woke a reader. Each is the wire form:
        # the fixed part and its two strings' bytes (the path, and the file the open
        # resolved: the same here), behind the ring's 8-byte header, rounded up to 8.
        size = SC_WIRE_HEAD + 2 * len(str(target))
        assert s.lane_fill()[SYSCALL] == short * (-(-(size + 8) // 8) * 8)
        assert ep.poll(0.5) == []
        opener.opens(1)  # the batch's last record forces the wake-up
        assert ep.poll(5) != []
        assert _unannounced(s) == 0
        ep.close()
        before = len(seen)
        s.poll(0)
        mine = [r for r in seen[before:] if isinstance(r, SyscallRecord) and r.path == str(target)]
        assert len(mine) == short + 1
        assert all(r.resolved == str(target) and r.path2 == "" and r.base2 is None for r in mine)
    finally:
        opener.close()


def test_a_poll_reads_records_nobody_announced(sensor: tuple[Sensor, list[Record]], watched: Path) -> None:
    """What bounds their wait: the daemon polls at least every poll_timeout_ms, and a poll
    reads what the ring holds whether or not a wake-up came."""
    s, seen = sensor
    target = watched / "g"
    target.write_text("x")
    opener = Opener(target)
    try:
        opener.opens(1)
        s.drain()
        short = BATCH - 1 - _unannounced(s)
        opener.opens(min(short, 5))
        before = len(seen)
        s.poll(0)
        mine = [r for r in seen[before:] if isinstance(r, SyscallRecord) and r.path == str(target)]
        assert len(mine) == min(short, 5)
    finally:
        opener.close()
