"""Reads processes that already exist from /proc, for lineage backfill at start."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from monitor.lineage.process import ProcInfo


def _stat(pid: int, root: Path) -> tuple[str, int, int] | None:
    """(comm, ppid, starttime ticks), or None if the process is gone."""
    try:
        raw = (root / str(pid) / "stat").read_bytes().decode("utf-8", "surrogateescape")
    except OSError:
        return None
    # comm is inside the first '(' and the last ')': it may hold both.
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    return comm, int(rest[1]), int(rest[19])


def _uid(pid: int, root: Path) -> int:
    try:
        for line in (root / str(pid) / "status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def scan(root: Path = Path("/proc")) -> Iterator[ProcInfo]:
    """Every process visible now; kernel threads (no exe, no cmdline) included."""
    stats: dict[int, tuple[str, int, int]] = {}
    for name in os.listdir(root):
        if name.isdigit():
            st = _stat(int(name), root)
            if st is not None:
                stats[int(name)] = st
    for pid, (comm, ppid, start) in stats.items():
        base = root / str(pid)
        try:
            exe = os.readlink(base / "exe")
        except OSError:
            exe = ""
        try:
            raw = (base / "cmdline").read_bytes()
        except OSError:
            raw = b""
        argv = [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0")[:-1]] if raw else []
        pstart = stats[ppid][2] if ppid in stats else 0
        yield ProcInfo(pid, start, ppid, pstart, _uid(pid, root), comm, exe, argv, backfilled=True)
