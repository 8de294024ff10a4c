"""Lineage on the real kernel: ancestry chains, orphans, restarts and resizes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kernel_util import proc_status, scratch_cgroup
from tests.monitor_proc import REPO, RunningMonitor

pytestmark = pytest.mark.kernel
SCRIPTS = Path(__file__).resolve().parent / "scripts"


@pytest.fixture
def bpffs_dir() -> Iterator[Path]:
    """A pin directory of the test's own, so tests never share lineage with a real instance."""
    path = Path(f"/sys/fs/bpf/ringwatch-test-{uuid.uuid4().hex[:8]}")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _cfg(bpffs_dir: Path, max_entries: int = 4096) -> dict[str, Any]:
    return {"lineage": {"bpffs_dir": str(bpffs_dir), "max_entries": max_entries}}


def _exec_of(mon: RunningMonitor, word: str) -> dict[str, Any]:
    return mon.wait_for(lambda e: e["evt.type"] == "execve" and word in e.get("proc.argv", []))


def test_chain_bash_sh_python_sleep(tmp_path: Path, bpffs_dir: Path) -> None:
    # sleep accepts only numbers: a unique one marks this run.
    word = f"0.000{uuid.uuid4().int % 10**12:012d}"
    inner = f'import subprocess; subprocess.run(["/bin/sleep", "0.1", "{word}"])'
    # Trailing `; true` keeps bash and sh from exec'ing their last command in place.
    script = f"sh -c '{sys.executable} -c \\'{inner}\\'; true'; true"
    (tmp_path / "chain.sh").write_text(script.replace("\\'", "'\"'\"'"))
    with RunningMonitor(tmp_path / "mon", _cfg(bpffs_dir)) as mon:
        top = subprocess.Popen(["/bin/bash", str(tmp_path / "chain.sh")])
        top.wait()
        ev = _exec_of(mon, word)
        assert mon.stop() == 0
    # Falco's indexing: [0] is the process itself, [1] its parent, ...
    assert ev["proc.aname"][0] == ev["proc.name"] and ev["proc.apid"][0] == ev["proc.pid"]
    assert ev["proc.aexepath"][0] == ev["proc.exepath"]
    names = ev["proc.aname"][1:]
    exes = ev["proc.aexepath"][1:]
    pids = ev["proc.apid"][1:]
    assert names[:3] == ["python3", "sh", "bash"] or names[:3] == ["python", "sh", "bash"], names
    # What each ancestor executed, as the kernel resolved it (not the path it was given).
    assert exes[0] == os.path.realpath(sys.executable)
    assert exes[1] == os.path.realpath("/bin/sh")
    assert exes[2] == os.path.realpath("/bin/bash")
    # proc.aexe is each one's argv[0], whatever it was called.
    assert ev["proc.aexe"][2] == "sh" and ev["proc.aexe"][3] == "/bin/bash"
    assert pids[2] == top.pid
    assert pids[3] == os.getpid()
    assert ev["proc.ppid"] == pids[0]
    assert ev["proc.pname"] == names[0]
    assert ev["proc.pexepath"] == os.path.realpath(sys.executable)
    assert ev["proc.pexe"] == ev["proc.aexe"][1]
    assert ev["proc.pcmdline"].startswith("python") and "subprocess.run" in ev["proc.pcmdline"]
    # exec ids are unique and the parent's is the one the parent event had.
    assert ev["proc.exec_id"] != ev["proc.pexec_id"]


def _start_orphan(tmp_path: Path) -> tuple[int, int, Path]:
    fifo = tmp_path / "ctl.fifo"
    os.mkfifo(fifo)
    out = subprocess.run([sys.executable, str(SCRIPTS / "orphan.py"), str(fifo)], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    middle, grandchild = (int(x) for x in out.split())
    return middle, grandchild, fifo


def _poke(fifo: Path, word: str) -> None:
    with open(fifo, "w") as fh:
        fh.write(word)


def test_orphan_keeps_its_real_parent_across_restart_and_resize(tmp_path: Path, bpffs_dir: Path) -> None:
    first = RunningMonitor(tmp_path / "a", _cfg(bpffs_dir, 4096)).start()
    middle, grandchild, fifo = _start_orphan(tmp_path)
    try:
        # /proc has forgotten the middle process; the orphan is reparented.
        deadline = time.monotonic() + 5
        while int(proc_status(grandchild)["PPid"]) == middle and time.monotonic() < deadline:
            time.sleep(0.05)
        assert int(proc_status(grandchild)["PPid"]) != middle

        def check(mon: RunningMonitor, label: str) -> dict[str, Any]:
            word = f"rw-{label}-{uuid.uuid4().hex[:8]}"
            _poke(fifo, word)
            ev = _exec_of(mon, word)
            assert ev["proc.ppid"] == grandchild
            # grandchild -> middle (exited) -> orphan.py's top (exited) -> this test
            assert ev["proc.apid"][1:3] == [grandchild, middle], (label, ev["proc.apid"])
            assert ev["proc.apid"][4] == os.getpid(), (label, ev["proc.apid"])
            assert ev["proc.aexepath"][2] == os.path.realpath(sys.executable), label
            return ev

        check(first, "live")
        assert first.stop() == 0

        # Restart: a new process, an empty cache; the pinned map still knows the middle.
        second = RunningMonitor(tmp_path / "b", _cfg(bpffs_dir, 4096)).start()
        assert second.wait_log("lineage_map")["reopened"] is True
        check(second, "restart")
        assert second.stop() == 0

        # Resize: the entries are carried into a map of the new size.
        third = RunningMonitor(tmp_path / "c", _cfg(bpffs_dir, 8192)).start()
        mig = third.wait_log("lineage_map_migrated")
        assert mig["change"] == "max_entries 4096 -> 8192"
        assert mig["restored"] > 0 and mig["lost_to_size"] == 0
        assert third.wait_log("lineage_map")["max_entries"] == 8192
        check(third, "resized")
        assert third.stop() == 0
    finally:
        _poke(fifo, "exit")


def test_backfill_names_processes_started_before_ringwatch(tmp_path: Path, bpffs_dir: Path) -> None:
    """A fresh map: processes that already existed are known from /proc at start."""
    word = f"rw-{uuid.uuid4().hex[:10]}"
    fifo = tmp_path / "ctl.fifo"
    os.mkfifo(fifo)
    loop = f"import subprocess\nwhile True:\n  w=open('{fifo}').read().strip()\n" \
           f"  if w=='exit': break\n  subprocess.run(['/bin/true', w])\n"
    pre = subprocess.Popen([sys.executable, "-c", loop, "pre-existing-marker"])
    try:
        with RunningMonitor(tmp_path / "mon", _cfg(bpffs_dir)) as mon:
            assert mon.wait_log("lineage_backfilled")["added"] > 10
            _poke(fifo, word)
            ev = _exec_of(mon, word)
            assert mon.stop() == 0
        assert ev["proc.apid"][1] == pre.pid
        assert ev["proc.pexepath"] == os.path.realpath(sys.executable)
        assert "pre-existing-marker" in ev["proc.pcmdline"]
        assert ev["proc.apid"][2] == os.getpid()
    finally:
        _poke(fifo, "exit")
        pre.wait()


def test_a_nearly_full_map_is_reported(tmp_path: Path, bpffs_dir: Path) -> None:
    """LRU eviction is silent in the kernel; ringwatch counts it and warns. The test itself
    pushes N new processes through a 64-entry map: at least N - 64 entries were evicted,
    whatever else the host did meanwhile, and ringwatch's count must say so."""
    n = 300
    with RunningMonitor(tmp_path / "mon", _cfg(bpffs_dir, max_entries=64)) as mon:
        warn = mon.wait_log("lineage_map_nearly_full")
        assert warn["max_entries"] == 64
        for _ in range(n):
            subprocess.run(["/bin/true"], check=True)
        deadline = time.monotonic() + 40  # the map is recounted every 10 s
        while True:
            res = subprocess.run([sys.executable, "-m", "monitor", "stats", "--json",
                                  "--control-socket", str(mon.control_socket)],
                                 capture_output=True, text=True, timeout=60, cwd=REPO, check=True)
            lineage = json.loads(res.stdout)["lineage"]
            if lineage["evicted"] >= n - 64 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert mon.stop() == 0
    assert lineage["evicted"] >= n - 64, lineage
    assert lineage["entries"] <= 64, lineage


# Forks (each child exits at once) at a bounded rate until the stop file appears.
_FORKER = """
import os, sys, time
stop = sys.argv[1]
while not os.path.exists(stop):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    time.sleep(0.001)
"""


def test_forks_during_start_are_not_reported_as_eviction(tmp_path: Path, bpffs_dir: Path) -> None:
    """A brand-new, nearly empty map: processes forked between attach and the first count
    were counted twice (in the count and in the kernel's inserts) and reported as evicted
    ("lineage map nearly full" at 0.1%). The forker runs in a cgroup the sensor does not
    trace, so it costs lineage inserts only, no records."""
    stop = tmp_path / "stop"
    with scratch_cgroup("forker") as cg, scratch_cgroup("traced") as traced:
        forker = subprocess.Popen([sys.executable, "-c", _FORKER, str(stop)])
        try:
            (cg / "cgroup.procs").write_text(str(forker.pid))
            cfg = {**_cfg(bpffs_dir, max_entries=65536), "sensor": {"cgroups": [str(traced)]}}
            with RunningMonitor(tmp_path / "mon", cfg) as mon:
                # The first housekeeping turn after ready (within 0.1 s) counts the map
                # and computes eviction; a second later it has surely run.
                time.sleep(1.0)
                res = subprocess.run(
                    [sys.executable, "-m", "monitor", "stats", "--json",
                     "--control-socket", str(mon.control_socket)],
                    capture_output=True, text=True, timeout=60, cwd=REPO, check=True)
                lineage = json.loads(res.stdout)["lineage"]
                stop.touch()
                forker.wait(30)
                assert mon.stop() == 0
        finally:
            stop.touch()
            forker.wait(30)
    # The forker did insert during start-up, and the map is nowhere near full.
    assert lineage["kernel"]["inserts"] > 0, lineage
    assert lineage["utilisation_pct"] < 50, lineage
    assert lineage["evicted"] == 0, lineage
    assert not [e for e in mon.logs() if e.get("event") == "lineage_map_nearly_full"]
