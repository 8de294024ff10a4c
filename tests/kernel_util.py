"""Helpers for tests that drive real processes under a running sensor."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


def cgroup2_root() -> Path:
    """Where the cgroup v2 hierarchy is mounted (unified, or hybrid's /sys/fs/cgroup/unified)."""
    with open("/proc/mounts") as fh:
        for line in fh:
            _dev, mnt, fstype, *_ = line.split()
            if fstype == "cgroup2":
                return Path(mnt)
    raise AssertionError("no cgroup2 mount")


@contextmanager
def scratch_cgroup(name: str) -> Iterator[Path]:
    path = cgroup2_root() / f"ringwatch-test-{name}-{os.getpid()}"
    path.mkdir()
    try:
        yield path
    finally:
        # Processes must have left before the directory can go.
        root_procs = cgroup2_root() / "cgroup.procs"
        for pid in (path / "cgroup.procs").read_text().split():
            with suppress(OSError):
                root_procs.write_text(pid)
        path.rmdir()


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def proc_starttime_ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # comm may contain spaces and parens: fields after the last ')' are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])  # field 22 overall: starttime in clock ticks since boot


def own_cgroup2() -> Path:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return cgroup2_root() / line[3:].lstrip("/")
    raise AssertionError("not in a cgroup v2 hierarchy")


@contextmanager
def traced_scope(name: str) -> Iterator[Path]:
    """A fresh cgroup holding this (test) process, hence everything it starts from now on;
    a monitor given it as sensor.cgroups traces only the test's own processes. On the way
    out the process goes home, stragglers with it, and the cgroup tree is removed."""
    home = own_cgroup2()
    path = cgroup2_root() / f"ringwatch-test-{name}-{os.getpid()}"
    path.mkdir()
    try:
        (path / "cgroup.procs").write_text(str(os.getpid()))
        yield path
    finally:
        (home / "cgroup.procs").write_text(str(os.getpid()))
        subdirs = sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for d in [*subdirs, path]:
            for pid in (d / "cgroup.procs").read_text().split():
                with suppress(OSError):
                    (home / "cgroup.procs").write_text(pid)
            with suppress(OSError):
                d.rmdir()
