"""A real systemd for tests: the host's own root booted with systemd-nspawn.

PID 1 of the test machines is not systemd, so the unit cannot run on the host. This
boots the host's root as a container (recipe measured in ../shared/PLATFORM.md):

- everything happens in a private mount namespace (`unshare -m --propagation private`):
  a tmpfs holds an overlay's upper and work directories, the overlay has `lowerdir=/`,
  and a tmpfs covers /run/systemd/nspawn, so nothing the container writes reaches the
  host's disk and everything is gone when the namespace's last process exits;
- `scripts/install.sh` (what `make install` runs) installs into the overlay with
  DESTDIR, and every other unit is removed from multi-user.target.wants and
  timers.target.wants, so only what the test starts runs;
- nspawn passes CAP_BPF/CAP_PERFMON and the bpf/perf_event_open syscalls through and
  binds the host's /sys/fs/bpf (pins are shared with the host: use a pin directory of
  the test's own);
- with --register=no there is no machined, so commands run in the container through
  `nsenter -t <container init> -a`, and its files are reached as /proc/<init>/root.

The container has its own pid namespace; the kernel, and so what ringwatch sees, is the
host's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# Runs as the private mount namespace's first process; ends by exec'ing nspawn, so the
# Popen pid is nspawn's and the container's init is its child.
_BOOT = r"""
set -euo pipefail
top="$1" repo="$2" install="$3"
mount -t tmpfs -o mode=0700 ringwatch-test "$top"
mkdir -p "$top/upper" "$top/work" "$top/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$top/upper,workdir=$top/work" "$top/root"
mkdir -p /run/systemd/nspawn
mount -t tmpfs tmpfs /run/systemd/nspawn
root="$top/root"
if [ "$install" = install ]; then
    DESTDIR="$root" BINDIR= bash "$repo/scripts/install.sh"
fi
rm -f "$root"/etc/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/timers.target.wants/*
exec systemd-nspawn -D "$root" -b --keep-unit --register=no --private-network --console=passive \
    --capability=CAP_BPF,CAP_PERFMON --system-call-filter='bpf perf_event_open' --bind=/sys/fs/bpf
"""


class SystemdContainer:
    def __init__(self, workdir: Path, install: bool = True) -> None:
        """install=False boots without `scripts/install.sh` (for installing the .deb)."""
        self.workdir = workdir
        self.install = install
        self.top = workdir / "mnt"
        self.log_path = workdir / "nspawn.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.init_pid = 0

    @property
    def root(self) -> Path:
        """The container's / as the host sees it (through its init's root link)."""
        return Path(f"/proc/{self.init_pid}/root")

    def boot(self, timeout: float = 120) -> SystemdContainer:
        self.top.mkdir(parents=True, exist_ok=True)
        script = self.workdir / "boot.sh"
        script.write_text(_BOOT)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "bash", str(script), str(self.top), str(REPO),
                 "install" if self.install else "bare"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd="/",
            )
        deadline = time.monotonic() + timeout
        while not self.init_pid:
            self._check_alive()
            if self._comm(self.proc.pid) == "systemd-nspawn":
                children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
                if children and self._comm(int(children[0])) == "systemd":
                    self.init_pid = int(children[0])
                    break
            assert time.monotonic() < deadline, f"container did not start:\n{self.boot_log()}"
            time.sleep(0.1)
        while True:
            self._check_alive()
            # is-system-running needs the manager's bus, which is there a moment after init.
            state = self.run("systemctl", "is-system-running", check=False, timeout=30).stdout.strip()
            if state in ("running", "degraded"):
                return self
            assert time.monotonic() < deadline, f"container state {state!r}:\n{self.boot_log()}"
            time.sleep(0.2)

    @staticmethod
    def _comm(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return ""

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"container exited {self.proc.returncode}:\n{self.boot_log()}")

    def boot_log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def run(self, *cmd: str, check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """A command inside the container (its namespaces, its root, its systemd)."""
        res = subprocess.run(["nsenter", "-t", str(self.init_pid), "-a", *cmd], capture_output=True,
                             text=True, timeout=timeout, input=input, cwd="/")
        if check:
            assert res.returncode == 0, f"{cmd} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
        return res

    def put(self, host_file: Path, dest: str) -> str:
        """Copy a host file into the container's (overlay) root; returns its path inside."""
        target = self.root / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(host_file.read_bytes())
        target.chmod(host_file.stat().st_mode & 0o7777)  # an executable stays one
        return dest

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *args: str) -> list[dict[str, Any]]:
        """journalctl -o json entries (journald flushed first, so the newest are there)."""
        self.run("journalctl", "--sync", check=False)
        out = self.run("journalctl", "--no-pager", "-o", "json", *args, check=False).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # nspawn turns SIGTERM into an orderly poweroff of the container.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)
        self.proc = None
