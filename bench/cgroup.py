"""`--cgroup`: the benchmark's processes in a cgroup of their own, ringwatch told to trace
only that cgroup (sensor.cgroups).

On a machine shared with other work, everything the neighbours do is an event to a
host-wide monitor; confined, the numbers are ringwatch's cost for the benchmark's own
workloads alone. syscount-bpfcc and the floor still see the whole host (they have no
such filter), which only flatters them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

from bench.errors import BenchError


def cgroup2_root(mounts: str) -> Path:
    """The cgroup v2 mount point, from the text of /proc/self/mounts."""
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            return Path(parts[1])
    raise BenchError("--cgroup: no cgroup2 hierarchy is mounted (see /proc/self/mounts)")


def own_cgroup(proc_cgroup: str) -> str:
    """This process's cgroup v2 path, from the text of /proc/self/cgroup ("0::/path")."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise BenchError("--cgroup: /proc/self/cgroup has no cgroup v2 line")


@contextlib.contextmanager
def confined() -> Iterator[Path]:
    """Moves this process into a new cgroup (children follow) and back out at the end."""
    root = cgroup2_root(Path("/proc/self/mounts").read_text())
    original = root / own_cgroup(Path("/proc/self/cgroup").read_text()).lstrip("/")
    mine = root / f"ringwatch-bench-{os.getpid()}"
    try:
        mine.mkdir()
        (mine / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as exc:
        raise BenchError(f"--cgroup: cannot use {mine}: {exc.strerror}") from exc
    try:
        yield mine
    finally:
        (original / "cgroup.procs").write_text(str(os.getpid()))
        # Children that just exited may linger a moment as zombies reaped by init.
        for _ in range(50):
            try:
                mine.rmdir()
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    break
                time.sleep(0.1)
