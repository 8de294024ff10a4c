"""Pure logic of the operations modules: notify, control socket, drop alert, stats, maps.

Sockets here are real (unix datagram and stream sockets on this host); only the kernel
is absent. The same modules run against a live daemon in tests/test_service_daemon.py.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from monitor import config
from monitor.service import maps, stats
from monitor.service.control import ControlError, ControlServer, request
from monitor.service.dropwatch import PRIORITY, RULE, DropWatch
from monitor.service.notify import Notifier
from monitor.service.ops import Operations
from monitor.service.stats import LossCounts

# ---------------------------------------------------------------- notify


@pytest.fixture
def notify_listener() -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket in the abstract namespace, as systemd's NOTIFY_SOCKET may be."""
    name = f"@ringwatch-test-{uuid.uuid4().hex}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(b"\0" + name[1:].encode())
    s.settimeout(5)
    try:
        yield name, s
    finally:
        s.close()


def _fields(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().split("\n"))


def test_notify_sends_state_changes(notify_listener: tuple[str, socket.socket]) -> None:
    name, s = notify_listener
    n = Notifier({"NOTIFY_SOCKET": name})
    assert n.enabled
    assert n.ready("watching")
    got = _fields(s.recv(4096))
    assert got == {"READY": "1", "STATUS": "watching", "MAINPID": str(os.getpid())}
    assert n.reloading()
    got = _fields(s.recv(4096))
    assert got["RELOADING"] == "1" and int(got["MONOTONIC_USEC"]) > 0
    assert n.stopping()
    assert _fields(s.recv(4096))["STOPPING"] == "1"
    assert n.sent == 3 and n.errors == 0


def test_notify_to_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        s.settimeout(5)
        assert Notifier({"NOTIFY_SOCKET": str(path)}).status("hello")
        assert _fields(s.recv(4096)) == {"STATUS": "hello"}


def test_notify_without_socket_is_a_no_op() -> None:
    n = Notifier({})
    assert not n.enabled
    assert not n.ready("x")
    assert n.sent == 0 and n.errors == 0


def test_notify_failure_is_counted_not_raised(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert not n.ready("x")
    assert n.errors == 1 and "No such file" in n.last_error


# ---------------------------------------------------------------- control socket


def _serve_while(server: ControlServer, fn: Callable[[], Any]) -> Any:
    """Run the client `fn` in a thread while the main thread serves, as the daemon does."""
    out: dict[str, Any] = {}

    def client() -> None:
        try:
            out["result"] = fn()
        except Exception as exc:
            out["error"] = exc

    t = threading.Thread(target=client)
    t.start()
    while t.is_alive():
        server.serve_pending()
        t.join(0.01)
    if "error" in out:
        raise out["error"]
    return out["result"]


def test_control_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    calls = []

    def stats_handler() -> dict[str, Any]:
        calls.append(1)
        return {"events": {"exec": len(calls)}}

    server = ControlServer(path, {"stats": stats_handler})
    server.open()
    try:
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert _serve_while(server, lambda: request(path, "stats")) == {"events": {"exec": 1}}
        assert _serve_while(server, lambda: request(path, "stats")) == {"events": {"exec": 2}}
        with pytest.raises(ControlError, match=r"unknown command 'nope' \(known: stats\)"):
            _serve_while(server, lambda: request(path, "nope"))
        assert server.requests == 3 and server.errors == 1
    finally:
        server.close()
    assert not path.exists()


def test_control_handler_failure_is_reported_and_server_survives(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"

    def broken() -> None:
        raise RuntimeError("map vanished")

    server = ControlServer(path, {"stats": broken, "info": lambda: {"pid": 1}})
    server.open()
    try:
        with pytest.raises(ControlError, match="stats: RuntimeError: map vanished"):
            _serve_while(server, lambda: request(path, "stats"))
        assert _serve_while(server, lambda: request(path, "info")) == {"pid": 1}
    finally:
        server.close()


def test_control_replaces_stale_socket_but_not_a_live_one(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a killed daemon's leftover
    first = ControlServer(path, {"info": lambda: "first"})
    first.open()
    try:
        with pytest.raises(ControlError, match="in use: another ringwatch is running"):
            ControlServer(path, {}).open()
        assert _serve_while(first, lambda: request(path, "info")) == "first"
    finally:
        first.close()


def test_control_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    path.write_text("precious")
    with pytest.raises(ControlError, match="exists and is not a socket"):
        ControlServer(path, {}).open()
    assert path.read_text() == "precious"


def test_control_client_names_the_socket_when_no_daemon(tmp_path: Path) -> None:
    path = tmp_path / "none.sock"
    with pytest.raises(ControlError, match=f"cannot reach ringwatch at {path}.*is ringwatch running"):
        request(path, "stats")


def test_control_slow_client_does_not_block_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    server = ControlServer(path, {"info": lambda: 1})
    server.open()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
            idle.connect(str(path))  # connects, never sends its command
            assert server.serve_pending() == 1
        assert server.errors == 1
        assert server.serve_pending() == 0  # nothing waiting: returns at once
    finally:
        server.close()


# ---------------------------------------------------------------- drop alert


def _loss(ringbuf: int = 0, decode: int = 0, sink: int = 0) -> LossCounts:
    return LossCounts(
        {"ringbuf_full": ringbuf, "pending_full": 0, "exit_no_enter": 0},
        {"decode_errors": decode, "output.kafka.dropped": sink},
    )


def test_drop_alert_carries_counts_since_the_last_one_and_is_rate_limited() -> None:
    w = DropWatch(min_interval_s=10, check_interval_s=1)
    w.start(100.0)
    assert w.check(_loss(), 101.0) is None  # nothing lost, nothing said
    first = w.check(_loss(ringbuf=5, decode=1), 102.0)
    assert first is not None
    assert first["rule"] == RULE == "ringwatch: events dropped"
    assert first["priority"] == PRIORITY == "CRITICAL"
    # The shape of rule alerts, so outputs and consumers need no special case.
    assert first["action"] == "alert" and first["host"] == socket.gethostname()
    assert first["time"].endswith("Z") and first["event"] == {}
    f = first["output_fields"]
    assert (f["n_drops"], f["n_drops_kernel"], f["n_drops_userspace"]) == (6, 5, 1)
    assert f["kernel.ringbuf_full"] == 5 and f["userspace.decode_errors"] == 1
    assert f["window_s"] == 2.0
    assert "6 records dropped" in first["output"]
    # More drops 3 s later: held back by the 10 s limit.
    assert w.check(_loss(ringbuf=9, decode=1), 105.0) is None
    assert w.check(_loss(ringbuf=12, decode=1, sink=2), 108.0) is None
    assert w.suppressed == 2
    # Once the limit has passed, one alert with everything since the first.
    second = w.check(_loss(ringbuf=12, decode=1, sink=2), 112.5)
    assert second is not None
    g = second["output_fields"]
    assert g["n_drops"] == 9 and g["kernel.ringbuf_full"] == 7 and g["userspace.output.kafka.dropped"] == 2
    assert "userspace.decode_errors" not in g  # did not grow
    assert g["window_s"] == 10.5
    # No growth since: silence, however long.
    assert w.check(_loss(ringbuf=12, decode=1, sink=2), 500.0) is None
    assert w.alerts == 2


def test_drop_alert_reads_counters_only_when_due() -> None:
    w = DropWatch(min_interval_s=10, check_interval_s=1)
    assert w.due(0.0)
    w.check(_loss(), 0.0)
    assert not w.due(0.5)
    assert w.due(1.0)


# ---------------------------------------------------------------- stats


@dataclass
class FakeCounters:
    produced: dict[str, int] = field(default_factory=lambda: {"exec": 10, "fork": 4, "exit": 4})
    drops: dict[str, int] = field(default_factory=lambda: {
        "ringbuf_full": 3, "pending_full": 1, "exit_no_enter": 0,
        "argv_truncated": 2, "filename_failed": 0, "arg_read_failed": 0, "filename_truncated": 0,
    })
    delivered: dict[str, int] = field(default_factory=lambda: {"exec": 6, "fork": 4, "exit": 4})
    decode_errors: int = 1


def test_losses_count_whole_records_from_kernel_decoder_and_outputs() -> None:
    loss = stats.losses(FakeCounters(), {"kafka": {"sent": 5, "dropped": 7}, "stdout": {"written": 3}})
    assert loss.kernel == {"ringbuf_full": 3, "pending_full": 1, "exit_no_enter": 0,
                           "syscall_ringbuf_full": 0}
    assert loss.userspace == {"decode_errors": 1, "output.kafka.dropped": 7}
    # argv_truncated loses part of a record, not a record.
    assert loss.total() == 12


def test_snapshot_sections_and_text() -> None:
    snap = stats.collect(
        FakeCounters(), started_monotonic=0.0, config_source="/etc/x.yaml", ringbuf_bytes=4096,
        outputs={"stdout": {"written": 3, "errors": 0}}, alerts_by_rule={"b": 1, "a": 2},
    )
    assert snap["events"] == {"exec": 6, "fork": 4, "exit": 4}
    assert snap["alerts"] == {"total": 3, "by_rule": {"a": 2, "b": 1}}
    assert snap["drops"]["records_lost"] == 5
    assert snap["drops"]["partial"]["argv_truncated"] == 2
    assert snap["ringbuf"] == {"bytes": 4096}
    text = stats.render_text(snap)
    assert "events:\n  exec: 6\n" in text
    assert "  by_rule:\n    a: 2\n    b: 1" in text


def test_sink_stats_keeps_same_named_sinks_apart() -> None:
    @dataclass
    class S:
        name: str
        n: int

        def stats(self) -> dict[str, int]:
            return {"written": self.n}

    assert stats.sink_stats([S("file", 1), S("file", 2)]) == {
        "file": {"written": 1}, "file#2": {"written": 2},
    }


# ---------------------------------------------------------------- maps


def _fake_proc(root: Path, pid: int, fds: dict[str, tuple[str, str]]) -> None:
    (root / str(pid) / "fd").mkdir(parents=True)
    (root / str(pid) / "fdinfo").mkdir()
    for fd, (target, info) in fds.items():
        os.symlink(target, root / str(pid) / "fd" / fd)
        (root / str(pid) / "fdinfo" / fd).write_text(info)


def test_held_map_ids_from_fdinfo(tmp_path: Path) -> None:
    _fake_proc(tmp_path, 42, {
        "3": ("anon_inode:bpf-map", "pos:\t0\nmap_type:\t1\nmap_id:\t17\n"),
        "4": ("anon_inode:bpf-prog", "prog_type:\t17\nprog_id:\t9\n"),
        "5": ("anon_inode:bpf-map", "map_type:\t27\nmap_id:\t18\n"),
        "6": ("/dev/null", "pos:\t0\n"),
    })
    assert maps.held_map_ids(42, proc=tmp_path) == {17, 18}
    with pytest.raises(maps.MapsError, match="is pid 43 running"):
        maps.held_map_ids(43, proc=tmp_path)


def test_select_by_owner_and_pin_dir() -> None:
    raw = [
        {"id": 1, "name": "owned_by_pids", "pids": [{"pid": 42, "comm": "python"}]},
        {"id": 2, "name": "held_fd"},
        {"id": 3, "name": "pinned", "pinned": ["/sys/fs/bpf/ringwatch/procs"]},
        {"id": 4, "name": "lookalike", "pinned": ["/sys/fs/bpf/ringwatch2/x"]},
        {"id": 5, "name": "other", "pids": [{"pid": 7}]},
    ]
    got = maps.select(raw, 42, "/sys/fs/bpf/ringwatch/", held={2})
    assert [m["id"] for m in got] == [1, 2, 3]


def test_report_text_totals_memlock() -> None:
    rep = maps.MapsReport(42, "/sys/fs/bpf/ringwatch", [
        maps.MapInfo(1, "events", "ringbuf", 0, 0, 4096, None, 8192),
        maps.MapInfo(2, "procs", "lru_hash", 16, 64, 1024, 5, 2048, ["/sys/fs/bpf/ringwatch/procs"]),
    ])
    assert rep.memlock_total == 10240
    assert rep.to_dict()["memlock_total_bytes"] == 10240
    text = maps.render_text(rep)
    assert "procs" in text and "/sys/fs/bpf/ringwatch/procs" in text
    assert text.splitlines()[-1].endswith("locked memory 10 KiB (10240 bytes)")


# ---------------------------------------------------------------- operations (the main loop's side)


def test_operations_ready_status_and_drop_alert(
    tmp_path: Path, notify_listener: tuple[str, socket.socket]
) -> None:
    name, listener = notify_listener
    cfg = config.from_mapping({
        "control": {"socket": str(tmp_path / "c.sock")},
        "drop_alert": {"min_interval_s": 60, "check_interval_s": 0.001},
    })
    lost = {"n": 0}
    alerts: list[dict[str, Any]] = []
    snap = {"events": {"exec": 7, "exit": 3}, "drops": {"records_lost": 2}, "alerts": {"total": 1}}
    ops = Operations(
        cfg, stats=lambda: snap, losses=lambda: _loss(ringbuf=lost["n"]), alert=alerts.append,
        pin_dir="/sys/fs/bpf/x", notifier=Notifier({"NOTIFY_SOCKET": name}), status_interval_s=0,
    )
    ops.started("monitoring")
    try:
        assert _fields(listener.recv(4096))["READY"] == "1"
        # The control socket is up before READY=1 is sent.
        assert _serve_while(ops.control, lambda: request(tmp_path / "c.sock", "info"))["pin_dir"] == (
            "/sys/fs/bpf/x")
        ops.tick()
        assert _fields(listener.recv(4096)) == {
            "STATUS": "watching: 10 events, 2 records lost, 1 alerts"}
        assert alerts == []
        lost["n"] = 4
        time.sleep(0.002)
        ops.tick()
        assert len(alerts) == 1 and alerts[0]["output_fields"]["n_drops"] == 4
    finally:
        ops.close()
    assert not (tmp_path / "c.sock").exists()


def test_operations_reload_moves_the_control_socket(tmp_path: Path) -> None:
    first = config.from_mapping({"control": {"socket": str(tmp_path / "a.sock")}})
    ops = Operations(first, stats=dict, losses=_loss, alert=lambda a: None, pin_dir="/x",
                     notifier=Notifier({}))
    ops.started("up")
    try:
        second = config.from_mapping({"control": {"socket": str(tmp_path / "b.sock")},
                                      "drop_alert": {"min_interval_s": 3}})
        ops.reloaded(second, "reloaded")
        assert not (tmp_path / "a.sock").exists() and (tmp_path / "b.sock").exists()
        assert ops.drops.min_interval_s == 3 and ops.reloads == 1
        ops.reloaded(None, "failed")
        assert ops.reload_errors == 1 and ops.cfg is second
    finally:
        ops.close()


def test_a_partly_rejected_reload_counts_as_failed_and_tells_the_manager(
        tmp_path: Path, notify_listener: tuple[str, socket.socket]) -> None:
    name, listener = notify_listener
    first = config.from_mapping({"control": {"socket": str(tmp_path / "c.sock")}})
    ops = Operations(first, stats=dict, losses=_loss, alert=lambda a: None, pin_dir="/x",
                     notifier=Notifier({"NOTIFY_SOCKET": name}))
    try:
        second = config.from_mapping({"control": {"socket": str(tmp_path / "c.sock")},
                                      "drop_alert": {"min_interval_s": 3}})
        # The config was good (taken over), the rules were not: a failed reload.
        ops.reloaded(second, "reload failed, previous rules kept: bad.yaml:1: x", error="bad.yaml:1: x")
        assert ops.cfg is second and ops.reloads == 0 and ops.reload_errors == 1
        assert ops.stats()["last_reload_error"] == "bad.yaml:1: x"
        sent = _fields(listener.recv(4096))
        assert sent["READY"] == "1" and sent["ERRNO"] == "22" and sent["STATUS"].startswith("reload failed")
        ops.reloaded(second, "reloaded")
        assert ops.reloads == 1 and ops.stats()["last_reload_error"] == ""
        assert _fields(listener.recv(4096))["ERRNO"] == "0"
    finally:
        ops.close()


def test_reload_without_a_control_socket_still_signals_but_fails(tmp_path: Path) -> None:
    """ExecReload must not swallow the SIGHUP when it cannot hear the verdict, nor report
    an unconfirmed reload as a success; a one-line error either way."""
    import signal
    import subprocess
    import sys

    def default_hup() -> None:
        # A runner started under nohup ignores SIGHUP, and children inherit that: the
        # target would outlive the signal the test is about.
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})

    target = subprocess.Popen(["sleep", "60"], preexec_fn=default_hup)
    try:
        res = subprocess.run([sys.executable, "-m", "monitor", "reload", "--control-socket",
                              str(tmp_path / "none.sock"), "--pid", str(target.pid)],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 1 and "Traceback" not in res.stderr
        assert "sent SIGHUP" in res.stderr and len(res.stderr.strip().splitlines()) == 1
        assert target.wait(10) == -signal.SIGHUP
    finally:
        if target.poll() is None:
            target.kill()
            target.wait()
