"""Cgroup paths from the ids the kernel records, for processes gone before /proc was read.

A cgroup's id (bpf_get_current_cgroup_id(), the exec record's cgroup.v1_id) is its kernfs
node id, which is also the inode number of its directory in the cgroupfs mount (64-bit
hosts: the id itself, generation included, so a removed cgroup's number is never reused).
Walking a mounted hierarchy therefore maps ids to paths as /proc/PID/cgroup would show
them. Walks happen on a miss only, at most once per min_walk_interval_s per hierarchy
(a host has hundreds of cgroups: a walk reads that many directories), and each replaces
the map whole, so cgroups removed since are forgotten. A cgroup removed before its walk
(a short-lived container gone with its process) has no path: the caller says unknown.
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
    def __init__(self, mounts: dict[str, Mount], min_walk_interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.mounts = mounts
        self.min_walk_interval_s = min_walk_interval_s
        self._clock = clock
        self._paths: dict[str, dict[int, str]] = {}
        self._walked: dict[str, float] = {}
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
        if found is None:
            now = self._clock()
            last = self._walked.get(key)
            if last is None or now - last >= self.min_walk_interval_s:
                self._walked[key] = now
                self._paths[key] = walk(mount)
                self.walks += 1
                found = self._paths[key].get(cgroup_id)
        return found


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
