"""A private systemd-journald for tests, read back with journalctl.

PID 1 is not systemd on the development and CI machines, so no journald runs. Even where
one does, a test should not write into the host's journal: this starts journald in a
journal namespace of its own (`systemd-journald NAMESPACE`), whose native socket is
/run/systemd/journal.NAMESPACE/socket and which `journalctl --namespace` reads. It is
stopped and its files removed afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

JOURNALD = Path("/lib/systemd/systemd-journald")


class PrivateJournald:
    def __init__(self) -> None:
        self.namespace = f"rwtest{uuid.uuid4().hex[:12]}"
        self.run_dir = Path(f"/run/systemd/journal.{self.namespace}")
        self.socket_path = self.run_dir / "socket"
        self.proc: subprocess.Popen[bytes] | None = None
        self._keepalive: socket.socket | None = None

    def start(self, timeout: float = 15) -> None:
        assert JOURNALD.exists(), f"{JOURNALD} missing: scripts/setup.sh --test installs systemd"
        assert Path("/etc/machine-id").exists(), "journald needs /etc/machine-id (systemd-machine-id-setup)"
        self.proc = subprocess.Popen([str(JOURNALD), self.namespace],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while not self.socket_path.exists():
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise AssertionError(f"systemd-journald exited {self.proc.returncode}: {err}")
            assert time.monotonic() < deadline, "journald socket did not appear"
            time.sleep(0.05)
        # A namespace journald exits after ~30 s without clients (measured); a test that
        # compiles BPF first is idle that long. An open stdout stream keeps it running.
        self._keepalive = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._keepalive.connect(str(self.run_dir / "stdout"))
        # Stream header: identifier, unit, priority, level prefix, syslog, kmsg, console.
        self._keepalive.sendall(b"ringwatch-test-keepalive\n\n6\n0\n0\n0\n0\n")

    def read(self, *matches: str, priority: str | None = None) -> list[dict[str, Any]]:
        argv = ["journalctl", f"--namespace={self.namespace}", "-o", "json", "--no-pager",
                "--all"]  # --all: fields over 4 KiB are null without it
        if priority:
            argv += ["-p", priority]
        out = subprocess.run([*argv, *matches], capture_output=True, text=True, timeout=30)
        if out.returncode not in (0, 1):
            raise AssertionError(f"journalctl failed: {out.stderr}")
        return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]

    def wait_for(self, count: int, *matches: str, timeout: float = 15,
                 priority: str | None = None) -> list[dict[str, Any]]:
        """Entries matching, once at least `count` of them are stored."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.read(*matches, priority=priority)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self._keepalive is not None:
            self._keepalive.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        machine_id = Path("/etc/machine-id").read_text().strip()
        for base in (Path("/var/log/journal"), Path("/run/log/journal")):
            shutil.rmtree(base / f"{machine_id}.{self.namespace}", ignore_errors=True)


@pytest.fixture
def journald() -> Iterator[PrivateJournald]:
    assert os.geteuid() == 0, "journald tests need root (CI runs as root)"
    jd = PrivateJournald()
    jd.start()
    try:
        yield jd
    finally:
        jd.stop()
