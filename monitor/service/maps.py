"""`ringwatch maps`: the running daemon's BPF maps, as bpftool sees them.

Map memory is charged to the memory cgroup, not to any process's RSS, so `free` and `ps`
do not show it; bpftool does. A map belongs to ringwatch if the daemon's pid holds it
open (bpftool's "pids") or it is pinned under the configured bpffs directory (maps the
daemon keeps across restarts). Entry counts are not in bpftool's listing; they are
walked with BPF_MAP_GET_NEXT_KEY.
"""

from __future__ import annotations

import ctypes as ct
import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from monitor.errors import UserError
from monitor.kernel.bpfsys import bpf as _bpf

# Types whose every slot always exists: their entry count is max_entries.
ARRAY_TYPES = frozenset({
    "array", "percpu_array", "prog_array", "perf_event_array", "cgroup_array",
    "array_of_maps", "cgroup_storage", "percpu_cgroup_storage",
})
# Types with no keys to walk (entries are meaningless).
KEYLESS_TYPES = frozenset({"ringbuf", "user_ringbuf", "queue", "stack", "bloom_filter"})

_BPF_MAP_GET_NEXT_KEY = 4
_BPF_MAP_GET_FD_BY_ID = 14
_ENOENT = 2


class MapsError(UserError):
    pass


@dataclass
class MapInfo:
    id: int
    name: str
    type: str
    key_size: int
    value_size: int
    max_entries: int
    entries: int | None
    memlock_bytes: int
    pinned: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)


@dataclass
class MapsReport:
    pid: int | None
    pin_dir: str
    maps: list[MapInfo]

    @property
    def memlock_total(self) -> int:
        return sum(m.memlock_bytes for m in self.maps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "pin_dir": self.pin_dir,
            "memlock_total_bytes": self.memlock_total,
            "maps": [asdict(m) for m in self.maps],
        }


def bpftool_maps(bpftool: str = "bpftool") -> list[dict[str, Any]]:
    """`bpftool -j -f map show`: every map on the host, with owner pids and pin paths."""
    exe = shutil.which(bpftool)
    if exe is None:
        raise MapsError(f"{bpftool} not found on PATH (Debian package bpftool)")
    # -f lists pinned paths; it needs bpffs mounted, which ringwatch needs anyway.
    proc = subprocess.run([exe, "-j", "-f", "map", "show"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise MapsError(f"bpftool map show failed ({proc.returncode}): {proc.stderr.strip()}")
    try:
        data = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise MapsError(f"bpftool map show: unreadable JSON: {exc}") from exc
    if not isinstance(data, list):
        raise MapsError("bpftool map show: expected a JSON list")
    return data


def _under(path: str, root: str) -> bool:
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def held_map_ids(pid: int, proc: Path = Path("/proc")) -> set[int]:
    """Ids of the maps `pid` holds file descriptors on, from /proc/PID/fdinfo.

    bpftool fills "pids" only when built with BPF skeletons, which Debian 12's is not;
    the kernel's fdinfo says the same thing for any bpftool."""
    ids: set[int] = set()
    fd_dir = proc / str(pid) / "fd"
    try:
        fds = list(fd_dir.iterdir())
    except OSError as exc:
        raise MapsError(f"cannot list {fd_dir}: {exc.strerror} (is pid {pid} running?)") from exc
    for fd in fds:
        try:
            if os.readlink(fd) != "anon_inode:bpf-map":
                continue
            info = (proc / str(pid) / "fdinfo" / fd.name).read_text()
        except OSError:
            continue  # closed meanwhile
        for line in info.splitlines():
            key, _, value = line.partition(":")
            if key == "map_id":
                ids.add(int(value))
    return ids


def select(
    raw: Iterable[dict[str, Any]], pid: int | None, pin_dir: str, held: set[int] | None = None
) -> list[dict[str, Any]]:
    """The maps the daemon `pid` holds open, plus those pinned under pin_dir."""
    out = []
    for m in raw:
        pids = {p.get("pid") for p in m.get("pids", [])}
        pinned = m.get("pinned", [])
        owned = pid is not None and (pid in pids or m.get("id") in (held or set()))
        if owned or any(_under(p, pin_dir) for p in pinned):
            out.append(m)
    return out


class _AttrFdById(ct.Structure):
    _fields_ = [("map_id", ct.c_uint32), ("next_id", ct.c_uint32), ("open_flags", ct.c_uint32)]


class _AttrNextKey(ct.Structure):
    _fields_ = [
        ("map_fd", ct.c_uint32),
        ("_pad", ct.c_uint32),
        ("key", ct.c_uint64),
        ("next_key", ct.c_uint64),
    ]


def count_entries(map_id: int, key_size: int, limit: int) -> int:
    """Keys in the map, walked with GET_NEXT_KEY; stops at `limit` so that a map being
    rewritten underneath (an LRU evicting) cannot make the walk endless."""
    fd = _bpf(_BPF_MAP_GET_FD_BY_ID, _AttrFdById(map_id=map_id))
    try:
        key = ct.create_string_buffer(max(key_size, 1))
        nxt = ct.create_string_buffer(max(key_size, 1))
        attr = _AttrNextKey(map_fd=fd, key=0, next_key=ct.addressof(nxt))
        n = 0
        while n < limit:
            try:
                _bpf(_BPF_MAP_GET_NEXT_KEY, attr)
            except OSError as exc:
                if exc.errno == _ENOENT:
                    break
                raise
            n += 1
            ct.memmove(key, nxt, key_size)
            attr.key = ct.addressof(key)
        return n
    finally:
        os.close(fd)


def entries_of(m: dict[str, Any]) -> int | None:
    mtype = str(m.get("type", ""))
    max_entries = int(m.get("max_entries", 0))
    if mtype in KEYLESS_TYPES:
        return None
    if mtype in ARRAY_TYPES:
        return max_entries
    try:
        return count_entries(int(m["id"]), int(m.get("bytes_key", 0)), 2 * max_entries + 1)
    except OSError:
        # The map went away between listing and walking (the daemon stopped).
        return None


def to_info(m: dict[str, Any], pid: int | None = None, held: set[int] | None = None,
            count: bool = True) -> MapInfo:
    return MapInfo(
        id=int(m["id"]),
        name=str(m.get("name", "")),
        type=str(m.get("type", "")),
        key_size=int(m.get("bytes_key", 0)),
        value_size=int(m.get("bytes_value", 0)),
        max_entries=int(m.get("max_entries", 0)),
        entries=entries_of(m) if count else None,
        memlock_bytes=int(m.get("bytes_memlock", 0)),
        pinned=list(m.get("pinned", [])),
        pids=sorted(
            {int(p["pid"]) for p in m.get("pids", []) if "pid" in p}
            | ({pid} if pid is not None and m.get("id") in (held or set()) else set())
        ),
    )


def report(pid: int | None, pin_dir: str, bpftool: str = "bpftool", count: bool = True) -> MapsReport:
    """count=False skips walking keys (entries None): the metrics need memory, not counts."""
    held = held_map_ids(pid) if pid is not None else set()
    chosen = select(bpftool_maps(bpftool), pid, pin_dir, held)
    infos = (to_info(m, pid, held, count) for m in chosen)
    return MapsReport(pid, pin_dir, sorted(infos, key=lambda i: i.id))


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n} {unit}"
        n //= 1024
    return f"{n} GiB"


def render_text(rep: MapsReport) -> str:
    head = ("ID", "NAME", "TYPE", "KEY", "VALUE", "MAX", "ENTRIES", "MEMLOCK", "PINNED")
    rows = [head]
    for m in rep.maps:
        rows.append((
            str(m.id), m.name, m.type, str(m.key_size), str(m.value_size), str(m.max_entries),
            "-" if m.entries is None else str(m.entries), _human(m.memlock_bytes),
            ",".join(m.pinned) or "-",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows]
    lines.append(
        f"{len(rep.maps)} maps (pid {rep.pid}, pinned under {rep.pin_dir}); "
        f"locked memory {_human(rep.memlock_total)} ({rep.memlock_total} bytes)"
    )
    return "\n".join(lines)
