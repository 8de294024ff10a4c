"""proc.env on the real kernel: selected variables of the new image, read at exec.

The values come from the new mm's env_start..env_end at sched_process_exec
(bpf/sensor.bpf.c, exec_env): what execve's envp gave the program. Every program here is
started by a Python helper that calls libc's execve with an envp of the test's making
(this test process's own environment has none of these variables), including orders a
userspace reader of /proc/PID/environ or a naive kernel scan would miss: the variable
behind a 16 KiB one and forty others, or given twice. Each default rule is run for real
with its benign look-alike first (records reach userspace in order: once the attack's
alert is out, the look-alike's exec has been judged too).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.monitor_proc import RunningMonitor
from tests.scoped_monitor import alerts_of, default_rules_monitor, wait_alert

pytestmark = pytest.mark.kernel

PRELOAD_RULE = "Library preloaded from outside the system library directories"
TUNABLES_RULE = "GLIBC_TUNABLES exploitation attempt"
# Falco's indexed form, proc.env[NAME], in a Falco-syntax rules file of the test's own.
FALCO_RULE = """- ringwatch: {syntax: falco}
- rule: Proxy set to the test's proxy
  desc: Falco's proc.env[NAME] form
  condition: evt.type in (execve, execveat) and proc.env[https_proxy] contains "proxy.invalid"
  output: proxy %proc.env[https_proxy] for %proc.name
  priority: NOTICE
  tags: [test]
"""
SYSTEM_LIB = next(p for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6")
                  if os.path.exists(p))
# Runs argv[2:] with execve(2) and exactly the envp given as JSON in argv[1]: the list
# may repeat a name, which no Python mapping can.
EXECVE = """
import ctypes, json, sys
envp = [e.encode() for e in json.loads(sys.argv[1])]
argv = [a.encode() for a in sys.argv[2:]]
libc = ctypes.CDLL(None, use_errno=True)
cargv = (ctypes.c_char_p * (len(argv) + 1))(*argv, None)
cenvp = (ctypes.c_char_p * (len(envp) + 1))(*envp, None)
libc.execve(argv[0], cargv, cenvp)
sys.exit(f"execve: {ctypes.get_errno()}")
"""


@pytest.fixture(scope="module")
def mon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMonitor]:
    for name in ("LD_PRELOAD", "LD_AUDIT", "GLIBC_TUNABLES", "https_proxy"):
        assert name not in os.environ, f"the test's own environment must not set {name}"
    with default_rules_monitor(tmp_path_factory.mktemp("env"), "env",
                               rules_d_files={"falco-env.yaml": FALCO_RULE}) as m:
        yield m


@pytest.fixture(scope="module")
def evil_dir() -> Iterator[Path]:
    """A library the loader really loads, outside the system directories."""
    d = Path(f"/run/ringwatch-test-{uuid.uuid4().hex[:8]}")
    d.mkdir(mode=0o700)
    shutil.copy(SYSTEM_LIB, d / "libevil.so")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def execve(envp: list[str], argv: tuple[str, ...] = ("/bin/true",)) -> int:
    """Exec argv with exactly envp; the pid (the helper's, which the exec keeps)."""
    p = subprocess.Popen([sys.executable, "-c", EXECVE, json.dumps(envp), *argv], env={},
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    return p.pid


def exec_event(mon: RunningMonitor, pid: int) -> dict[str, Any]:
    return mon.wait_for(lambda e: e["evt.type"] == "execve" and e["proc.pid"] == pid
                        and e.get("proc.exepath") == os.path.realpath("/bin/true"), timeout=60)


def test_ld_preload_and_ld_audit_from_envp(mon: RunningMonitor, evil_dir: Path) -> None:
    evil = str(evil_dir / "libevil.so")
    benign = [execve(["LD_PRELOAD=" + SYSTEM_LIB]), execve(["LD_PRELOAD="]),
              execve([f"LD_AUDIT= {SYSTEM_LIB}:{SYSTEM_LIB}"]),
              execve(["PATH=/usr/bin", "LD_PRELOADX=" + evil])]
    bad = execve(["PATH=/usr/bin", "LD_PRELOAD=" + evil])
    a = wait_alert(mon, PRELOAD_RULE, lambda a: a["process"]["pid"] == bad)
    assert a["event"]["proc.env.LD_PRELOAD"] == evil
    assert a["event"]["proc.env"] == f"LD_PRELOAD={evil}"
    assert f"LD_PRELOAD={evil}" in a["output"]
    assert "T1574.006" in a["tags"]
    # A system library first in the list does not vouch for the rest; ".." escapes.
    mixed = execve([f"LD_PRELOAD={SYSTEM_LIB}:{evil}"])
    dots = execve([f"LD_PRELOAD=/usr/lib/../..{evil}"])
    audit = execve(["LD_AUDIT=" + evil])
    for pid in (mixed, dots, audit):
        wait_alert(mon, PRELOAD_RULE, lambda a, pid=pid: a["process"]["pid"] == pid)
    for pid in benign:
        assert not alerts_of(mon, pid), f"benign preload {pid} raised {alerts_of(mon, pid)}"
    ev = exec_event(mon, benign[0])
    assert ev["proc.env.LD_PRELOAD"] == SYSTEM_LIB and ev["proc.env_truncated"] is False
    assert "proc.env.LD_PRELOAD" not in exec_event(mon, benign[3])  # LD_PRELOADX is not it


def test_preload_hidden_behind_long_and_many_variables_and_repeated(
        mon: RunningMonitor, evil_dir: Path) -> None:
    evil = str(evil_dir / "libevil.so")
    padding = [f"PAD{i}={'x' * 40}" for i in range(40)] + ["BIG=" + "y" * 16384]
    # getenv() would answer the first LD_PRELOAD; ld.so takes the last.
    pid = execve([*padding, "LD_PRELOAD=" + SYSTEM_LIB, "LD_PRELOAD=" + evil])
    a = wait_alert(mon, PRELOAD_RULE, lambda a: a["process"]["pid"] == pid)
    assert a["event"]["proc.env.LD_PRELOAD"] == f"{SYSTEM_LIB}:{evil}"
    assert a["event"]["proc.env_truncated"] is False


def test_glibc_tunables_exploit_string(mon: RunningMonitor) -> None:
    benign = execve(["GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.check=3"])
    nested = execve(["GLIBC_TUNABLES=glibc.malloc.mxfast=glibc.malloc.mxfast=A"])
    a = wait_alert(mon, TUNABLES_RULE, lambda a: a["process"]["pid"] == nested)
    assert a["event"]["proc.env.GLIBC_TUNABLES"] == "glibc.malloc.mxfast=glibc.malloc.mxfast=A"
    assert a["priority"] == "CRITICAL" and "T1068" in a["tags"]
    # The public exploit's shape: hundreds of bytes; the kernel keeps 255 and says it cut.
    long = execve(["GLIBC_TUNABLES=glibc.mem.tagging=" + "A" * 600])
    a = wait_alert(mon, TUNABLES_RULE, lambda a: a["process"]["pid"] == long)
    assert a["event"]["proc.env_cut"] == ["GLIBC_TUNABLES"]
    assert len("GLIBC_TUNABLES=" + a["event"]["proc.env.GLIBC_TUNABLES"]) == 255
    assert not alerts_of(mon, benign), alerts_of(mon, benign)
    ev = exec_event(mon, benign)
    assert ev["proc.env.GLIBC_TUNABLES"] == "glibc.malloc.tcache_count=0:glibc.malloc.check=3"
    assert ev["proc.env_cut"] == [] and ev["proc.env_truncated"] is False


def test_proxies_falco_indexed_form_and_scan_bound(mon: RunningMonitor) -> None:
    pid = execve(["HOME=/root", "https_proxy=http://proxy.invalid:3128", "NO_PROXY=localhost",
                  "HTTP_PROXY=http://p2.invalid:8080", "TERM=dumb"])
    ev = exec_event(mon, pid)
    assert ev["proc.env.https_proxy"] == "http://proxy.invalid:3128"
    assert ev["proc.env.NO_PROXY"] == "localhost"
    assert ev["proc.env.HTTP_PROXY"] == "http://p2.invalid:8080"
    assert ev["proc.env"] == ("https_proxy=http://proxy.invalid:3128 NO_PROXY=localhost "
                              "HTTP_PROXY=http://p2.invalid:8080")
    a = wait_alert(mon, "Proxy set to the test's proxy", lambda a: a["process"]["pid"] == pid)
    assert "proxy http://proxy.invalid:3128" in a["output"]
    # Past the kernel's bound (128 reads) the scan stops, and says so.
    far = execve([f"V{i}=1" for i in range(200)] + ["https_proxy=http://far.invalid"])
    ev = exec_event(mon, far)
    assert ev["proc.env_truncated"] is True and "proc.env.https_proxy" not in ev
