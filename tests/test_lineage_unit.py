"""Lineage identity logic without a kernel: pid reuse, misses, records feeding the cache."""

from __future__ import annotations

from monitor.kernel.records import ExecRecord, ExecTask, ForkRecord, Header, RecordType
from monitor.lineage.cache import Lineage, decode_proc, encode_key, encode_proc
from monitor.lineage.process import ProcInfo

TICK = 10_000_000


def _snap(tgid: int, start: int, ppid: int, pstart: int, comm: str) -> ProcInfo:
    return ProcInfo(tgid, start, ppid, pstart, 0, comm, f"/bin/{comm}", [comm, "--flag"], backfilled=True)


def _header(kind: RecordType, tgid: int, start_ticks: int, ppid: int, comm: str) -> Header:
    return Header(kind, 0, 0, tgid, tgid, ppid, 0, 0, 1, start_ticks * TICK, comm)


def test_reused_pid_never_inherits_ancestry() -> None:
    lin = Lineage(None, depth=10, cache_entries=100, ns_per_tick=TICK)
    lin.backfill([
        _snap(1, 1, 0, 0, "init"),
        _snap(50, 40, 1, 1, "sshd"),
        _snap(60, 45, 1, 1, "nginx"),
        _snap(100, 5, 50, 40, "bash"),      # the first process with pid 100: under sshd
        _snap(100, 900, 60, 45, "worker"),  # pid 100 reused much later: under nginx
        _snap(200, 6, 100, 5, "vim"),       # child of the first
        _snap(300, 901, 100, 900, "sh"),    # child of the second
        _snap(400, 950, 100, 700, "cat"),   # child of a third pid-100 nobody saw
    ])
    first_child = lin.get((200, 6))
    second_child = lin.get((300, 901))
    unknown_child = lin.get((400, 950))
    assert first_child and second_child and unknown_child
    assert [a.comm for a in lin.ancestors(first_child)] == ["bash", "sshd", "init"]
    assert [a.comm for a in lin.ancestors(second_child)] == ["worker", "nginx", "init"]
    # Neither pid-100 process may stand in for the one that was never seen.
    assert lin.ancestors(unknown_child) == []
    assert lin.stats.misses == 1


def test_records_feed_identity_through_fork_and_exec() -> None:
    lin = Lineage(None, depth=10, cache_entries=100, ns_per_tick=TICK)
    lin.backfill([_snap(1, 1, 0, 0, "init"), _snap(10, 2, 1, 1, "bash")])
    fork = ForkRecord(_header(RecordType.FORK, 11, 3, 10, "bash"), 10, 10, 2 * TICK)
    child = lin.observe(fork)
    assert child is not None and (child.ppid, child.pstart_ticks) == (10, 2)
    assert child.exe == "/bin/bash"  # the image is inherited until exec
    ex = ExecRecord(_header(RecordType.EXEC, 11, 3, 10, "sleep"), 0, 59, "/bin/sleep",
                    ["sleep", "5"], -100, 0, False, False, False, False)
    info = lin.observe(ex)
    assert info is not None and info.exe == "/bin/sleep" and info.cmdline() == "sleep 5"
    assert [a.comm for a in lin.ancestors(info)] == ["bash", "init"]
    # A failed exec leaves the image alone.
    bad = ExecRecord(_header(RecordType.EXEC, 11, 3, 10, "sleep"), -2, 59, "/nope",
                     ["/nope"], -100, 0, False, False, False, False)
    assert lin.observe(bad) is info and info.exe == "/bin/sleep"


def test_a_process_keeps_the_v1_cgroup_of_its_fork_until_its_exec_names_another() -> None:
    """What a container lookup of the process gone before it was read needs (cgroup.v1_id):
    the child's own at fork, then the one its exec ran in (a runtime's init moves first)."""
    lin = Lineage(None, depth=10, cache_entries=100, ns_per_tick=TICK)
    lin.backfill([_snap(1, 1, 0, 0, "init"), _snap(10, 2, 1, 1, "runc")])
    child = lin.observe(ForkRecord(_header(RecordType.FORK, 11, 3, 10, "runc"), 10, 10, 2 * TICK, 501))
    assert child is not None and child.cgroup1_id == 501
    task = ExecTask(0, 11, 11, 0xFFFFFFFF, "/", cgroup1_id=502)
    ex = ExecRecord(_header(RecordType.EXEC, 11, 3, 10, "sh"), 0, 59, "/bin/sh", ["sh"], -100, 0,
                    False, False, False, False, task=task)
    info = lin.observe(ex)
    assert info is child and info.cgroup1_id == 502


def test_depth_bounds_the_ancestor_list() -> None:
    lin = Lineage(None, depth=3, cache_entries=100, ns_per_tick=TICK)
    lin.backfill([_snap(i, i, i - 1, i - 1, f"p{i}") for i in range(1, 10)])
    leaf = lin.get((9, 9))
    assert leaf is not None
    assert [a.tgid for a in lin.ancestors(leaf)] == [8, 7, 6]


def test_kernel_value_encoding_round_trips() -> None:
    s = ProcInfo(42, 7, 1, 1, 1000, "comm-x", "/usr/bin/x", ["x", "-a", "b c"], backfilled=True)
    info = decode_proc(encode_key(42, 7), encode_proc(s))
    assert (info.tgid, info.start_ticks, info.ppid, info.pstart_ticks, info.uid) == (42, 7, 1, 1, 1000)
    assert (info.comm, info.exe, info.backfilled) == ("comm-x", "/usr/bin/x", True)
    assert info.argv == ["x", "-a", "b c"]


def test_stage_ancestry_follows_lineage_changes_between_events() -> None:
    """The lineage stage keeps a process's ancestry between events; an exec, fork or exit
    anywhere (or a cleared cache) must show in the next event, as without the memo."""
    from monitor.kernel.records import SyscallRecord
    from monitor.lineage.stage import LineageStage
    from monitor.stage import Item

    lin = Lineage(None, depth=10, cache_entries=100, ns_per_tick=TICK)
    lin.backfill([_snap(1, 1, 0, 0, "init"), _snap(10, 2, 1, 1, "bash"), _snap(20, 3, 10, 2, "vim")])
    stage = LineageStage(lin)

    def event() -> dict[str, object]:
        rec = SyscallRecord(_header(RecordType.SYSCALL, 20, 3, 10, "vim"), 257, 3, (0,) * 6, 0, 0, 0,
                            bytes(16), "", "/etc/passwd", "")
        item = Item(rec)
        stage(item)
        return item.event

    first, again = event(), event()
    # [0] is the process itself, as Falco indexes them.
    assert first["proc.aname"] == again["proc.aname"] == ["vim", "bash", "init"]
    assert first["proc.pname"] == "bash" and first["proc.apid"] == [20, 10, 1]
    assert first["proc.aname"] is not again["proc.aname"]  # each event owns its lists
    # The parent execs: the child's next event names the new image.
    ex = ExecRecord(_header(RecordType.EXEC, 10, 2, 1, "zsh"), 0, 59, "/bin/zsh", ["zsh"], -100, 0,
                    False, False, False, False)
    stage(Item(ex))
    after = event()
    assert after["proc.pname"] == "zsh" and after["proc.aname"] == ["vim", "zsh", "init"]
    assert after["proc.pexepath"] == "/bin/zsh"
    assert after["proc.aexepath"] == ["/bin/vim", "/bin/zsh", "/bin/init"]
    assert after["proc.pexe"] == "zsh" and after["proc.aexe"] == ["vim", "zsh", "init"]  # argv[0]s
    # The cache cleared (records lost), then only the process itself seen again: its
    # parent is unknown now, not remembered from before.
    lin.invalidate()
    lin.backfill([_snap(20, 3, 10, 2, "vim")])
    assert event()["proc.aname"] == ["vim"]
