"""Runs INSIDE the LSM guest (tests/test_enforce_vm.py boots it): every enforcement check
against one real `ringwatch run` (one compile), results as JSON in the results directory.

Each check records what happened, not a verdict the host must trust: errno values,
exit codes and the alerts ringwatch printed. The host-side test asserts on them.
Usage: python tests/guest/enforce_checks.py RESULTS_DIR
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))

from monitor.service.control import request  # noqa: E402
from tests.monitor_proc import RunningMonitor, read_jsonl  # noqa: E402

WORK = Path("/run/rwtest")  # tmpfs in the guest: the root is read-only 9p
BIN = WORK / "bin"
SECRET = WORK / "secret"
AUDITED = WORK / "audited"
DENIED_NET = "127.66.0.0/16"
DENIED_NET6 = "fd00:66::/32"
CGROUP = Path("/sys/fs/cgroup/rwtest")
UID_SCOPED = 4321


def rules_yaml(with_evil: bool, with_ok: bool, cgroup_id: int) -> str:
    rules = []
    if with_evil:
        rules.append(("deny exec evil", "deny",
                      f'evt.type == "execve" and proc.exepath == "{BIN}/evil"'))
    if with_ok:
        rules.append(("deny exec ok", "deny", f'evt.type == "execve" and proc.exepath == "{BIN}/ok"'))
    rules += [
        ("deny exec for one uid", "deny",
         f'evt.type == "execve" and proc.exepath startswith "{BIN}/scoped/" and user.uid == {UID_SCOPED}'),
        ("deny secret open", "deny",
         f'evt.type in ["open", "openat"] and fd.name startswith "{SECRET}/" '
         'and not proc.exepath in ["/usr/bin/head"]'),
        ("audit open", "audit", f'evt.type == "openat" and fd.name == "{AUDITED}/data"'),
        ("deny net", "deny",
         f'evt.type == "connect" and fd.snet in ["{DENIED_NET}", "{DENIED_NET6}"]'),
        ("deny exec in one cgroup", "deny",
         f'evt.type == "execve" and proc.exepath == "{BIN}/cg" and cgroup.id == {cgroup_id}'),
    ]
    out = []
    for name, action, cond in rules:
        out.append(f"- rule: {name}\n  desc: enforcement test\n  condition: '{cond}'\n"
                   f"  output: \"{action} %enforce.op %fd.name by %proc.name\"\n"
                   f"  priority: CRITICAL\n  action: {action}\n")
    return "\n".join(out)


def mount(fstype: str, target: str) -> None:
    if not os.path.ismount(target):
        os.makedirs(target, exist_ok=True)
        subprocess.run(["mount", "-t", fstype, fstype, target], check=True)


def prepare() -> None:
    mount("bpf", "/sys/fs/bpf")
    mount("securityfs", "/sys/kernel/security")
    # Loopback is down in a fresh guest; connect checks need 127.0.0.1.
    for ip in (shutil.which("ip"), "/usr/sbin/ip", "/sbin/ip"):
        if ip and os.path.exists(ip):
            subprocess.run([ip, "link", "set", "lo", "up"], check=False)
            break
    for d in (BIN / "scoped", SECRET, AUDITED):
        d.mkdir(parents=True, exist_ok=True)
    CGROUP.mkdir(exist_ok=True)
    for name in ("evil", "ok", "scoped/tool", "cg"):
        shutil.copy("/usr/bin/true", BIN / name)
        os.chmod(BIN / name, 0o755)
    (SECRET / "data").write_text("secret\n")
    (AUDITED / "data").write_text("audited\n")


def join_cgroup() -> None:
    (CGROUP / "cgroup.procs").write_text(str(os.getpid()))


def exec_errno(path: Path, uid: int | None = None, in_cgroup: bool = False) -> int:
    """0 if path ran, else the errno execve failed with."""
    try:
        subprocess.run([str(path)], check=True, user=uid,
                       preexec_fn=join_cgroup if in_cgroup else None)
        return 0
    except OSError as exc:
        return exc.errno or -1


def open_errno(path: Path) -> int:
    try:
        with open(path) as fh:
            fh.read()
        return 0
    except OSError as exc:
        return exc.errno or -1


def connect_errno(host: str, port: int, family: int = socket.AF_INET) -> int:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((host, port))
        return 0
    except OSError as exc:
        return exc.errno or -1
    finally:
        s.close()


def alerts(mon: RunningMonitor) -> list[dict[str, Any]]:
    return [a for a in read_jsonl(mon.stdout_path) if "rule" in a]


def wait_alert(mon: RunningMonitor, rule: str, name: str, timeout: float = 60) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for a in alerts(mon):
            if a["rule"] == rule and a["event"].get("fd.name") == name:
                return a
        time.sleep(0.2)
    return None


def main(results_dir: Path) -> int:
    results: dict[str, Any] = {"pid": os.getpid(), "ppid": os.getppid()}
    out = results_dir / "results.json"
    mon: RunningMonitor | None = None
    try:
        prepare()
        results["lsm"] = Path("/sys/kernel/security/lsm").read_text().strip()
        rules = WORK / "rules.yaml"
        cgroup_id = CGROUP.stat().st_ino  # a cgroup v2 id is its directory's inode number
        results["cgroup_id"] = cgroup_id
        rules.write_text(rules_yaml(with_evil=True, with_ok=False, cgroup_id=cgroup_id))
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        port = server.getsockname()[1]
        mon = RunningMonitor(
            WORK / "monitor", {"enforcement": {"mode": "enforce"}},
            args=["--rules", str(rules), "--no-default-rules", "--require-enforcement"],
        )
        t0 = time.monotonic()
        mon.start(timeout=600)
        results["startup_s"] = round(time.monotonic() - t0, 1)

        results["exec_evil"] = exec_errno(BIN / "evil")
        results["exec_ok"] = exec_errno(BIN / "ok")
        results["exec_scoped_root"] = exec_errno(BIN / "scoped" / "tool")
        results["exec_scoped_uid"] = exec_errno(BIN / "scoped" / "tool", uid=UID_SCOPED)
        results["open_secret"] = open_errno(SECRET / "data")
        cat = subprocess.run(["/usr/bin/cat", str(SECRET / "data")], capture_output=True, check=False)
        head = subprocess.run(["/usr/bin/head", str(SECRET / "data")], capture_output=True, check=False)
        results["cat_secret_rc"] = cat.returncode
        results["head_secret"] = head.stdout.decode()
        results["open_audited"] = open_errno(AUDITED / "data")
        results["connect_allowed"] = connect_errno("127.0.0.1", port)
        results["connect_denied"] = connect_errno("127.66.0.1", port)
        results["connect_denied_mapped"] = connect_errno("::ffff:127.66.0.1", port, socket.AF_INET6)
        # No route to either: the LSM hook runs first, so only the denied one gets EPERM.
        results["connect6_denied"] = connect_errno("fd00:66::1", port, socket.AF_INET6)
        results["connect6_other"] = connect_errno("fd00:67::1", port, socket.AF_INET6)
        results["exec_cg_outside"] = exec_errno(BIN / "cg")
        results["exec_cg_inside"] = exec_errno(BIN / "cg", in_cgroup=True)

        wanted = {
            "alert_exec": ("deny exec evil", f"{BIN}/evil"),
            "alert_scoped": ("deny exec for one uid", f"{BIN}/scoped/tool"),
            "alert_open": ("deny secret open", f"{SECRET}/data"),
            "alert_audit": ("audit open", f"{AUDITED}/data"),
            "alert_connect": ("deny net", f"127.66.0.1:{port}"),
            "alert_connect6": ("deny net", f"[fd00:66::1]:{port}"),
            "alert_cgroup": ("deny exec in one cgroup", f"{BIN}/cg"),
        }
        for key, (rule, name) in wanted.items():
            results[key] = wait_alert(mon, rule, name)

        # Reload: the evil rule goes, a rule for `ok` comes; no restart.
        rules.write_text(rules_yaml(with_evil=False, with_ok=True, cgroup_id=cgroup_id))
        assert mon.proc is not None
        mon.proc.send_signal(signal.SIGHUP)
        results["reload_log"] = mon.wait_log("enforcement_reloaded", timeout=120)
        results["exec_evil_after_reload"] = exec_errno(BIN / "evil")
        results["exec_ok_after_reload"] = exec_errno(BIN / "ok")
        results["alert_ok_after_reload"] = wait_alert(mon, "deny exec ok", f"{BIN}/ok")
        results["alerts"] = alerts(mon)
        stats = request(mon.control_socket, "stats", timeout=60)
        results["stats"] = stats
        results["stop_rc"] = mon.stop(timeout=120)
        results["logs"] = [e for e in mon.logs() if e.get("event", "").startswith(("enforce", "rules"))]
        server.close()
    except Exception:
        results["error"] = traceback.format_exc()
    finally:
        if mon is not None and mon.proc is not None and mon.proc.poll() is None:
            mon.proc.kill()
            results["stderr_tail"] = mon.stderr_path.read_text(errors="replace")[-4000:]
    if mon is not None:
        # The monitor's files live on the guest's tmpfs (a unix socket cannot be made on
        # 9p); keep copies where the host can read them.
        for f in (mon.stderr_path, mon.stdout_path):
            if f.exists():
                shutil.copy(f, results_dir / f"monitor-{f.name}")
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"enforce_checks: wrote {out}", flush=True)
    return 1 if "error" in results else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

