"""Runs a real `ringwatch run` in a subprocess for tests, and reads what it recorded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import yaml

from monitor.config import LineageConfig

REPO = Path(__file__).resolve().parent.parent
# The installed service's pinned lineage maps (the config's default): no test may use them.
SERVICE_PINS = Path(LineageConfig().bpffs_dir)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The whole lines the file holds now; a line still being written is left out.

    One read of the whole file: iterating a file that grows meanwhile returns the unfinished
    line at a momentary end of file and then its rest as a line of its own (seen once
    stdout wrote alerts a batch per write)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    whole = data[:data.rfind(b"\n") + 1].decode("utf-8", "surrogateescape")
    return [json.loads(line) for line in whole.split("\n")[:-1]]  # not splitlines: U+2028 is text


def isolated(config: dict[str, Any], workdir: Path) -> tuple[dict[str, Any], Path | None]:
    """`config` with a control socket and pinned lineage maps of its own where it names
    none, so that tests (and engineers) running monitors side by side, or beside the
    installed service, share neither /run/ringwatch/control.sock nor SERVICE_PINS (a
    test would rewrite the service's lineage). Also returns the pin directory it chose
    (None if the config named one), for the caller to remove."""
    config = dict(config)
    control = dict(config.get("control") or {})
    if "socket" not in control:
        sock = workdir / "control.sock"
        if len(str(sock)) > 100:  # sun_path limit
            sock = Path(tempfile.mkdtemp(prefix="rw-")) / "control.sock"
        control["socket"] = str(sock)
    config["control"] = control
    lineage = dict(config.get("lineage") or {})
    own_pins: Path | None = None
    if "bpffs_dir" not in lineage:
        own_pins = Path(f"/sys/fs/bpf/rw-test-{uuid.uuid4().hex[:8]}")
        lineage["bpffs_dir"] = str(own_pins)
        config["lineage"] = lineage
    return config, own_pins


class RunningMonitor:
    """`ringwatch run` with a config written from a dict, events recorded to a file."""

    # Pin directories made for monitors, removed at the end of the session too
    # (tests/conftest.py), whether or not a test stopped its monitor.
    created_pins: ClassVar[set[Path]] = set()

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any] | None = None,
        args: Iterable[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "config.yaml"
        config, self.own_pins = isolated(config or {}, workdir)
        if self.own_pins is not None:
            RunningMonitor.created_pins.add(self.own_pins)  # removed once stopped, or at the end
        self.control_socket = Path(config["control"]["socket"])
        self.config_path.write_text(yaml.safe_dump(config))
        self.record_path = workdir / "events.jsonl"
        self.stdout_path = workdir / "stdout.jsonl"
        self.stderr_path = workdir / "stderr.log"
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "monitor", "--log-json", "run",
            "--config", str(self.config_path), "--record", str(self.record_path), *self.args,
        ]

    def start(self, timeout: float = 60) -> RunningMonitor:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.command(), cwd=REPO, env=self.env, stdout=out, stderr=err)
        self.wait_log("ready", timeout)
        return self

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.stderr_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"event": "<raw>", "line": line})
        return out

    def wait_log(self, event: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.logs():
                if entry.get("event") == event:
                    return entry
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"ringwatch exited {self.proc.returncode} before {event!r}:\n"
                    + self.stderr_path.read_text(errors="replace")[-4000:]
                )
            time.sleep(0.05)
        raise AssertionError(f"no {event!r} log within {timeout}s:\n" + self.stderr_path.read_text()[-4000:])

    def events(self) -> list[dict[str, Any]]:
        return read_jsonl(self.record_path)

    def wait_for(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 30, path: Path | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in read_jsonl(path or self.record_path):
                if pred(ev):
                    return ev
            time.sleep(0.05)
        raise AssertionError(f"no matching record within {timeout}s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        self._remove_own_pins()
        return rc

    def _remove_own_pins(self) -> None:
        if self.own_pins is not None:
            shutil.rmtree(self.own_pins, ignore_errors=True)

    def __enter__(self) -> RunningMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._remove_own_pins()
