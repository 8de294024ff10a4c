"""The exe writers' record (monitor/events/writers.py) and the writes-only trie values."""

from __future__ import annotations

from typing import Any

from monitor.events.writers import ExeWriters
from monitor.kernel.filters import PREFIX_ANY, PREFIX_WRITES_ONLY, open_prefix_values
from monitor.stage import Item


def _feed(w: ExeWriters, **ev: Any) -> dict[str, Any]:
    item = Item(record=None)  # type: ignore[arg-type]
    item.event = dict(ev)
    w(item)
    return item.event


def _write(w: ExeWriters, path: str, pid: int, exe: str, **extra: Any) -> None:
    _feed(w, **{"evt.type": "openat", "fd.name": path, "evt.is_open_write": True, "fd.num": 3,
                "proc.pid": pid, "proc.name": exe.rsplit("/", 1)[-1], "proc.exepath": exe, **extra})


def _exec(w: ExeWriters, path: str) -> dict[str, Any]:
    return _feed(w, **{"evt.type": "execve", "proc.exepath": path, "proc.pid": 99})


def test_last_writer_of_a_tracked_file_is_given_to_its_exec() -> None:
    w = ExeWriters()
    _write(w, "/tmp/x", 10, "/usr/bin/x86_64-linux-gnu-ld.bfd")
    _write(w, "/tmp/x", 11, "/usr/bin/curl")
    ev = _exec(w, "/tmp/x")
    assert (ev["proc.exe_writer_exepath"], ev["proc.exe_writer_name"], ev["proc.exe_writer_pid"]) == \
        ("/usr/bin/curl", "curl", 11)


def test_reads_failures_and_untracked_paths_are_not_writers() -> None:
    w = ExeWriters()
    _feed(w, **{"evt.type": "openat", "fd.name": "/tmp/r", "evt.is_open_write": False, "fd.num": 3,
                "proc.pid": 1, "proc.exepath": "/usr/bin/cat"})
    _write(w, "/tmp/failed", 2, "/usr/bin/cp", **{"fd.num": -1})
    _write(w, "/home/u/x", 3, "/usr/bin/cp")
    assert len(w) == 0
    assert "proc.exe_writer_exepath" not in _exec(w, "/tmp/r")


def test_rename_carries_the_source_writer_else_the_renamer() -> None:
    w = ExeWriters()
    _write(w, "/tmp/a.out", 10, "/usr/bin/ld.gold")
    _feed(w, **{"evt.type": "renameat2", "evt.failed": False, "fd.name": "/tmp/tool",
                "evt.arg.oldpath": "/tmp/a.out", "proc.pid": 20, "proc.exepath": "/usr/bin/mv"})
    assert _exec(w, "/tmp/tool")["proc.exe_writer_exepath"] == "/usr/bin/ld.gold"
    _feed(w, **{"evt.type": "rename", "evt.failed": False, "fd.name": "/tmp/other",
                "evt.arg.oldpath": "/root/unseen", "proc.pid": 21, "proc.exepath": "/usr/bin/mv"})
    assert _exec(w, "/tmp/other")["proc.exe_writer_exepath"] == "/usr/bin/mv"


def test_the_record_is_bounded_oldest_first() -> None:
    w = ExeWriters(max_entries=3)
    for i in range(5):
        _write(w, f"/tmp/f{i}", i, "/usr/bin/cp")
    assert len(w) == 3
    assert "proc.exe_writer_pid" not in _exec(w, "/tmp/f1")
    assert _exec(w, "/tmp/f4")["proc.exe_writer_pid"] == 4


def test_writes_only_prefix_inside_a_wanted_prefix_keeps_every_open() -> None:
    got = open_prefix_values(frozenset({"/etc/", "/tmp/sub/"}), frozenset({"/tmp/", "/etc/x/", "/tmp/sub/"}))
    assert got == {"/etc/": PREFIX_ANY, "/tmp/sub/": PREFIX_ANY, "/tmp/": PREFIX_WRITES_ONLY,
                   "/etc/x/": PREFIX_ANY}
