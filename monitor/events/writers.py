"""Who wrote the executable: a small record of recent writers of files in writable dirs.

The drop-and-execute rule asks "was this program created moments ago, and by what?": a
binary gcc's linker just wrote is a build, one that curl, cp or python wrote is a drop.
The kernel says when the executed inode last changed (proc.exe_ino_ctime); this stage
remembers, from the open-for-write events the kernel keeps for the directories below,
which process last wrote each file there (by its kernel-resolved path), and gives an exec
of that file the writer's identity: proc.exe_writer_exepath (the writer's kernel-resolved
executable), proc.exe_writer_name, proc.exe_writer_pid.

A rename or hard link carries the source's writer to the new name (`mv a.out /tmp/x` is
still the linker's output); when the source's writer is unknown the renaming process
becomes the writer. The record is bounded (least recently written dropped first) and holds
paths, never contents. What it cannot see: writes through a descriptor opened before the
monitor started, io_uring, mmap of a file opened elsewhere; then the fields are absent and
the rule judges the inode's age alone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from monitor.events.fields import Field
from monitor.stage import Item

# The directories whose writers are recorded (the kernel keeps writes below them when a
# rule reads the fields): where an unprivileged user can drop a program. Any rule judging
# the writer of a program elsewhere gets no writer fields.
TRACKED_DIRS = frozenset({"/tmp/", "/var/tmp/", "/dev/shm/", "/run/shm/", "/run/lock/", "/var/lock/",
                          "/dev/mqueue/"})
MAX_ENTRIES = 8192

FIELDS = (
    Field("proc.exe_writer_exepath", str, "exec events of a file below /tmp, /var/tmp, /dev/shm and the "
          "other world-writable dirs: the kernel-resolved executable of the process that last opened "
          "it for writing (or renamed it into place), if seen"),
    Field("proc.exe_writer_name", str, "that writer's process name (exec events, as "
          "proc.exe_writer_exepath)"),
    Field("proc.exe_writer_pid", int, "that writer's pid (exec events, as proc.exe_writer_exepath)"),
)
FIELD_NAMES = frozenset(f.name for f in FIELDS)

_OPENS = frozenset({"open", "openat", "openat2"})
_MOVES = frozenset({"rename", "renameat", "renameat2", "link", "linkat"})
_EXECS = frozenset({"execve", "execveat"})
# What the kernel must record for this stage, when a rule reads its fields.
EVENT_TYPES = _OPENS | _MOVES


@dataclass(frozen=True, slots=True)
class Writer:
    pid: int
    name: str
    exepath: str


_TRACKED = tuple(sorted(TRACKED_DIRS))  # str.startswith takes a tuple: one call, in C


def tracked(path: str) -> bool:
    return path.startswith(_TRACKED)


def rules_need_writers(rules: Iterable[Any]) -> bool:
    """Whether some rule reads a writer field (then the kernel must keep the writes)."""
    return any(FIELD_NAMES & rule.fields for rule in rules)


class ExeWriters:
    """Pipeline stage after lineage (the writer's exepath comes from its lineage)."""

    name = "writers"

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._last: OrderedDict[str, Writer] = OrderedDict()

    def __len__(self) -> int:
        return len(self._last)

    def _remember(self, path: str, writer: Writer) -> None:
        self._last[path] = writer
        self._last.move_to_end(path)
        while len(self._last) > self.max_entries:
            self._last.popitem(last=False)

    def _writer_of(self, ev: dict[str, Any]) -> Writer:
        return Writer(int(ev.get("proc.pid", 0)), str(ev.get("proc.name", "")),
                      str(ev.get("proc.exepath") or ""))

    def __call__(self, item: Item) -> None:
        ev = item.event
        kind = ev.get("evt.type")
        if kind in _EXECS:
            w = self._last.get(ev.get("proc.exepath") or "")
            if w is not None:
                ev["proc.exe_writer_exepath"] = w.exepath
                ev["proc.exe_writer_name"] = w.name
                ev["proc.exe_writer_pid"] = w.pid
            return
        name = ev.get("fd.name")
        if not isinstance(name, str) or not tracked(name):
            return
        if kind in _OPENS:
            if ev.get("evt.is_open_write") and ev.get("fd.num", -1) >= 0:
                self._remember(name, self._writer_of(ev))
        elif kind in _MOVES and not ev.get("evt.failed", True):
            source = self._last.get(str(ev.get("evt.arg.oldpath", "")))
            self._remember(name, source or self._writer_of(ev))
