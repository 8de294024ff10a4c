"""Cgroup paths from the ids the kernel records, for processes gone before /proc was read.

A cgroup's id (bpf_get_current_cgroup_id(), the exec record's cgroup.v1_id) is its kernfs
node id, which is also the inode number of its directory in the cgroupfs mount (64-bit
hosts: the id itself, generation included, so a removed cgroup's number is never reused).
Walking a mounted hierarchy therefore maps ids to paths as /proc/PID/cgroup would show
them. A hierarchy's ids only grow (kernfs allocates them cyclically and bumps the
generation in the high 32 bits when the low ones wrap), so a missing id at or below the
highest one the last walk saw belongs to a cgroup removed before it: no walk can find it.
Only a newer id walks again, within a budget per hierarchy (a token bucket: walk_burst
at once, walk_rate a second after that), because a walk reads every cgroup directory and
a user with a delegated subtree can make cgroups quickly; each walk replaces the map
whole, so removed cgroups are forgotten. A cgroup removed before its walk (a short-lived
container gone with its process) has no path: the caller says unknown.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

V2 = ""  # the key of the unified hierarchy; v1 hierarchies are keyed by controller
MAX_CGROUPS = 100_000  # a walk stops there: a bound on memory, whatever the host holds
_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Mount:
    dir: str  # where the hierarchy is mounted
    root: str  # the cgroup at that directory, as /proc/PID/cgroup names it


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \ooo.
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def cgroup_mounts(mountinfo: str) -> dict[str, Mount]:
    """The first mount of each hierarchy, from /proc/self/mountinfo: V2 for cgroup2, each
    option of a v1 mount (its controllers, name=..., and harmless ones like rw) for v1."""
    out: dict[str, Mount] = {}
    for line in mountinfo.splitlines():
        pre, sep, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        mount = Mount(_unescape(fields[4]), _unescape(fields[3]))
        if tail[0] == "cgroup2":
            out.setdefault(V2, mount)
        elif tail[0] == "cgroup":
            for option in tail[2].split(","):
                out.setdefault(option, mount)
    return out


class CgroupPaths:
    def __init__(self, mounts: dict[str, Mount], walk_rate: float = 5.0, walk_burst: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.mounts = mounts
        self.walk_rate = walk_rate
        self.walk_burst = walk_burst
        self._clock = clock
        self._paths: dict[str, dict[int, str]] = {}
        self._budget: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)
        self._newest: dict[str, int] = {}  # the highest id the last walk saw
        self.walks = 0

    @classmethod
    def of_host(cls, mountinfo: Path = Path("/proc/self/mountinfo")) -> CgroupPaths:
        try:
            return cls(cgroup_mounts(mountinfo.read_text()))
        except OSError:
            return cls({})

    @property
    def has_v1(self) -> bool:
        return any(key != V2 for key in self.mounts)

    def path(self, key: str, cgroup_id: int) -> str | None:
        """The path of the cgroup with this id in hierarchy `key`, or None (unknown, or
        not walked again yet)."""
        mount = self.mounts.get(key)
        if mount is None or not cgroup_id:
            return None
        found = self._paths.get(key, {}).get(cgroup_id)
        if found is None and cgroup_id > self._newest.get(key, 0) and self._may_walk(key):
            paths = self._paths[key] = walk(mount)
            self._newest[key] = max(paths, default=0)
            self.walks += 1
            found = paths.get(cgroup_id)
        return found

    def _may_walk(self, key: str) -> bool:
        now = self._clock()
        tokens, when = self._budget.get(key, (self.walk_burst, now))
        tokens = min(self.walk_burst, tokens + (now - when) * self.walk_rate)
        if tokens < 1:
            self._budget[key] = (tokens, now)
            return False
        self._budget[key] = (tokens - 1, now)
        return True


def walk(mount: Mount) -> dict[int, str]:
    """Directory inode -> cgroup path, for every cgroup under the mount."""
    root = mount.root.rstrip("/")
    try:
        out = {os.stat(mount.dir).st_ino: mount.root}
    except OSError:
        return {}
    stack = [(mount.dir, root)]
    while stack and len(out) < MAX_CGROUPS:
        where, rel = stack.pop()
        try:
            with os.scandir(where) as entries:
                for entry in entries:
                    # d_type and d_ino from getdents: no stat per directory.
                    if entry.is_dir(follow_symlinks=False):
                        path = f"{rel}/{entry.name}"
                        out[entry.inode()] = path
                        stack.append((entry.path, path))
        except OSError:
            continue  # removed while walking
    return out
