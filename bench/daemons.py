"""Monitors under test, each a subprocess: started, waited on until attached, stopped.

Every monitor runs as its own process, as it would on a host, so its CPU and memory are
its own and the harness's Python never shares a core schedule with it by accident.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import procfs
from bench.errors import BenchError

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class MonitorSpec:
    name: str
    argv: list[str]
    # The stream whose lines say "attached", and the test for such a line.
    ready_stream: str
    is_ready: Callable[[str], bool]
    stop_signal: signal.Signals = signal.SIGTERM
    env: dict[str, str] = field(default_factory=dict)
    # Keep stdout in a file (small, or needed later) or send it to /dev/null (event streams).
    keep_stdout: bool = True


def _default_stop_signals() -> None:
    """In the child: a shell starting the harness in the background (`make bench &`,
    nohup) leaves SIGINT ignored, ignored signals survive exec, and syscount-bpfcc only
    stops on SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class RunningMonitor:
    def __init__(self, spec: MonitorSpec, workdir: Path) -> None:
        self.spec = spec
        self.workdir = workdir
        self.stdout_path = workdir / f"{spec.name}.stdout"
        self.stderr_path = workdir / f"{spec.name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s = 0.0
        self.stop_s = 0.0
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError(f"{self.spec.name} was not started")
        return self.proc.pid

    def _ready_text(self) -> str:
        path = self.stdout_path if self.spec.ready_stream == "stdout" else self.stderr_path
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 120) -> RunningMonitor:
        self.workdir.mkdir(parents=True, exist_ok=True)
        out_path = self.stdout_path if self.spec.keep_stdout else Path(os.devnull)
        with open(out_path, "wb") as out, open(self.stderr_path, "wb") as err:
            t0 = time.monotonic()
            try:
                self.proc = subprocess.Popen(
                    self.spec.argv, cwd=REPO, env={**os.environ, **self.spec.env},
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    preexec_fn=_default_stop_signals,
                )
            except OSError as exc:
                raise BenchError(f"cannot start {self.spec.name} ({self.spec.argv[0]}): {exc}") from exc
        deadline = t0 + timeout
        while True:
            if any(self.spec.is_ready(line) for line in self._ready_text().splitlines()):
                self.ready_s = time.monotonic() - t0
                break
            if self.proc.poll() is not None:
                raise BenchError(
                    f"{self.spec.name} exited {self.proc.returncode} before it was ready:\n"
                    + self.stderr_path.read_text(errors="replace")[-3000:]
                )
            if time.monotonic() > deadline:
                self.kill()
                raise BenchError(f"{self.spec.name} not ready within {timeout:g}s")
            time.sleep(0.02)
        progs = [o for o in procfs.bpf_objects(self.pid) if o.kind == "prog"]
        if not progs:
            self.kill()
            raise BenchError(f"{self.spec.name} said it was ready but holds no BPF program")
        return self

    def stop(self, timeout: float = 60) -> int:
        """Stop with the monitor's own signal; the time it took is in stop_s."""
        if self.proc is None:
            raise BenchError(f"{self.spec.name} was not started")
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(self.spec.stop_signal)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise BenchError(f"{self.spec.name} did not stop within {timeout:g}s") from exc
        self.stop_s = time.monotonic() - t0
        return self.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def __enter__(self) -> RunningMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def syscount_spec() -> MonitorSpec:
    tool = shutil.which("syscount-bpfcc") or shutil.which("syscount-bpfcc", path="/usr/sbin:/sbin")
    if tool is None:
        raise BenchError(
            "syscount-bpfcc not found: install Debian's bpfcc-tools (scripts/setup.sh --test does)"
        )
    return MonitorSpec(
        name="syscount",
        argv=[tool],
        ready_stream="stdout",
        is_ready=lambda line: line.startswith("Tracing"),
        # syscount prints its table and exits on Ctrl-C.
        stop_signal=signal.SIGINT,
        # Its "Tracing..." line must reach the file before it blocks in sleep().
        env={"PYTHONUNBUFFERED": "1"},
    )


def floor_spec(python: str) -> MonitorSpec:
    return MonitorSpec(
        name="floor",
        argv=[python, str(REPO / "bench" / "floor_probe.py")],
        ready_stream="stdout",
        is_ready=lambda line: line.strip() == "ready",
    )
