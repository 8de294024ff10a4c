"""A process as lineage knows it: identity, parent identity and image."""

from __future__ import annotations

from dataclasses import dataclass

Key = tuple[int, int]  # (tgid, start_ticks)


@dataclass(slots=True)
class ProcInfo:
    tgid: int
    start_ticks: int
    ppid: int
    pstart_ticks: int
    uid: int
    comm: str
    exe: str
    argv: list[str]
    exec_ns: int = 0
    exit_ns: int = 0
    cgroup_id: int = 0
    backfilled: bool = False
    # Its cgroup in the v1 hierarchy fork and exec records name (0: none seen); the
    # container lookup of a process gone before it was read needs it (monitor/events/container.py).
    cgroup1_id: int = 0

    @property
    def key(self) -> Key:
        return (self.tgid, self.start_ticks)

    @property
    def parent_key(self) -> Key:
        return (self.ppid, self.pstart_ticks)

    def cmdline(self) -> str:
        return " ".join([self.comm, *self.argv[1:]])
