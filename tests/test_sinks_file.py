"""JSON-lines file sink: rotation by rename + reopen, fsync policies, the async wrapper."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.sinks.asyncq import AsyncSink
from monitor.sinks.file import JsonlFileSink


def lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), f"{path} ends in a partial line"
    return [json.loads(line) for line in text.splitlines()]


def test_rotation_by_rename_and_reopen_loses_no_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    sink = AsyncSink(JsonlFileSink(path, fsync="flush"), queue_size=1_000_000)
    chunks, per_chunk = 4, 8_000
    rotated: list[Path] = []
    rotation = threading.Event()
    emitted = threading.Event()

    def writer() -> None:
        # Each chunk is still being written out by the sink's worker when the file is
        # renamed under it: the rename and the reopen land in the middle of a stream.
        for c in range(chunks):
            for i in range(c * per_chunk, (c + 1) * per_chunk):
                sink.emit({"id": i, "output": "x" * (i % 50)})
            if c < chunks - 1:
                emitted.set()
                assert rotation.wait(30)
                rotation.clear()

    t = threading.Thread(target=writer)
    t.start()
    for k in range(1, chunks):
        assert emitted.wait(30)
        emitted.clear()
        deadline = time.monotonic() + 30
        while not (path.exists() and path.stat().st_size > 0):
            assert time.monotonic() < deadline, "the sink did not write to a new file"
            time.sleep(0.001)
        dest = tmp_path / f"alerts.jsonl.{k}"
        os.rename(path, dest)  # logrotate's way: rename, then SIGHUP
        rotated.append(dest)
        sink.reopen()
        rotation.set()
    t.join()
    sink.close()
    st = sink.stats()
    assert st["written"] == chunks * per_chunk and st["errors"] == 0 and st["dropped"] == 0, st
    assert st["reopened"] == chunks - 1
    got = [r["id"] for p in [*rotated, path] for r in lines(p)]
    assert got == list(range(chunks * per_chunk))


@pytest.mark.parametrize("policy", ["never", "flush", "always"])
def test_fsync_policies_write_everything(tmp_path: Path, policy: str) -> None:
    path = tmp_path / "f.jsonl"
    sink = JsonlFileSink(path, fsync=policy)
    for i in range(5):
        sink.emit({"id": i})
    sink.flush(0)
    assert [r["id"] for r in lines(path)] == [0, 1, 2, 3, 4]
    sink.close()
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_bad_fsync_policy_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync must be one of never, flush, always"):
        JsonlFileSink(tmp_path / "f.jsonl", fsync="sometimes")


def test_unwritable_reopen_counts_errors_then_recovers(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    sink = JsonlFileSink(d / "a.jsonl")
    sink.emit({"id": 1})
    os.rename(d, tmp_path / "moved")
    (tmp_path / "logs").write_text("a file where the directory was")
    sink.reopen()
    sink.emit({"id": 2})  # cannot open: counted, not silently dropped
    assert sink.stats()["errors"] >= 2 and sink.stats()["written"] == 1
    (tmp_path / "logs").unlink()
    sink.emit({"id": 3})
    sink.close()
    assert [r["id"] for r in lines(d / "a.jsonl")] == [3]
    assert [r["id"] for r in lines(tmp_path / "moved" / "a.jsonl")] == [1]


class BlockedSink:
    """An output that hangs until released, like a stalled pipe or disk."""

    def __init__(self) -> None:
        self.name = "blocked"
        self.release = threading.Event()
        self.got: list[dict[str, Any]] = []

    def emit(self, record: dict[str, Any]) -> None:
        self.release.wait(30)
        self.got.append(record)

    def flush(self, timeout: float) -> None:
        pass

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        pass

    def stats(self) -> dict[str, int]:
        return {"written": len(self.got), "errors": 0}


def test_async_sink_bounds_and_counts_a_stalled_output() -> None:
    inner = BlockedSink()
    sink = AsyncSink(inner, queue_size=100)
    for i in range(1000):
        sink.emit({"id": i})  # returns although the output is stuck
    st = sink.stats()
    # The worker holds at most one record outside the queue.
    assert st["queue_dropped"] >= 1000 - 101 and st["dropped"] == st["queue_dropped"]
    assert st["queued"] == 1000 - st["queue_dropped"]
    inner.release.set()
    sink.flush(10)
    sink.close()
    st = sink.stats()
    assert st["written"] == 1000 - st["queue_dropped"] and st["queued"] == 0
    ids = [r["id"] for r in inner.got]
    assert ids == sorted(ids) and ids[0] == 0


class CountingFileSink(JsonlFileSink):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches = 0

    def emit_batch(self, records: list[dict[str, Any]]) -> None:
        self.batches += 1
        super().emit_batch(records)


def test_async_file_sink_writes_in_batches_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    inner = CountingFileSink(path)
    sink = AsyncSink(inner, queue_size=1_000_000)
    n = 50_000
    for i in range(n):
        sink.emit({"n": i, "x": "y" * (i % 50)} if i != 777 else {"n": i, "bad": object()})
    sink.flush(30)
    sink.close()
    st = sink.stats()
    got = [r["n"] for r in lines(path)]
    # object() is written as its str() (default=str): nothing is lost, nothing reordered.
    assert got == list(range(n)) and st["written"] == n and st["errors"] == 0, st
    assert 0 < inner.batches < n // 10, inner.batches  # many records per write


def test_file_sink_batch_counts_records_it_cannot_write(tmp_path: Path) -> None:
    sink = JsonlFileSink(tmp_path / "out.jsonl")
    sink.emit_batch([{"n": 1}, {"n": 2}])
    sink.close()
    sink.emit_batch([{"n": 3}, {"n": 4}])  # the closed file reopens, as emit() does
    sink.close()
    assert [r["n"] for r in lines(tmp_path / "out.jsonl")] == [1, 2, 3, 4]
    circular: dict[str, Any] = {}
    circular["self"] = circular
    sink.emit_batch([{"n": 5}, circular])
    sink.close()
    assert sink.stats()["errors"] == 1 and sink.stats()["written"] == 5
