"""The stdout output on a real pipe: whole lines, one write per batch, losses counted."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from monitor.sinks.asyncq import AsyncSink
from monitor.sinks.base import dumps
from monitor.sinks.stream import StreamSink


class _PipeStream:
    """What StreamSink needs of stdout: a flush() and the write end's descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self.fd


def _reader(fd: int, out: list[bytes]) -> threading.Thread:
    def run() -> None:
        while chunk := os.read(fd, 65536):
            out.append(chunk)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _refuse_odd(record: dict[str, Any]) -> str:
    if record.get("odd"):
        raise TypeError("not serialisable")
    return dumps(record)


def test_a_batch_bigger_than_the_pipe_arrives_as_whole_lines_in_order() -> None:
    r, w = os.pipe()
    chunks: list[bytes] = []
    t = _reader(r, chunks)
    sink = StreamSink("stdout", stream=_PipeStream(w), fmt=_refuse_odd)  # type: ignore[arg-type]
    bad_path = b"/tmp/\xff-evil".decode("utf-8", "surrogateescape")
    batch = [{"n": i, "pad": "x" * 700} for i in range(300)]  # ~210 KB: several partial writes
    batch.insert(7, {"odd": True})
    batch.append({"fd.name": bad_path})
    sink.emit_batch(batch)
    os.close(w)
    t.join(10)
    lines = b"".join(chunks).split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(x)["n"] for x in lines[:-2]] == list(range(300))
    assert lines[-2] == b'{"fd.name":"/tmp/\xff-evil"}'  # the path's own bytes
    assert sink.stats() == {"written": 301, "errors": 1}


def test_a_closed_reader_counts_the_batch_as_lost() -> None:
    r, w = os.pipe()
    os.close(r)
    sink = StreamSink("stdout", stream=_PipeStream(w))  # type: ignore[arg-type]
    sink.emit_batch([{"n": i} for i in range(5)])  # EPIPE (Python ignores SIGPIPE)
    os.close(w)
    assert sink.stats() == {"written": 0, "errors": 5}


def test_behind_its_queue_stdout_gets_batches() -> None:
    r, w = os.pipe()
    chunks: list[bytes] = []
    t = _reader(r, chunks)
    inner = StreamSink("stdout", stream=_PipeStream(w))  # type: ignore[arg-type]
    writes: list[int] = []
    real = inner.emit_batch

    def counting(records: list[dict[str, Any]]) -> None:
        writes.append(len(records))
        real(records)

    inner.emit_batch = counting  # type: ignore[method-assign]
    sink = AsyncSink(inner, queue_size=10_000)
    for i in range(5000):
        sink.emit({"n": i})
    sink.close(10)
    os.close(w)
    t.join(10)
    lines = b"".join(chunks).split(b"\n")[:-1]
    assert [json.loads(x)["n"] for x in lines] == list(range(5000))
    assert sum(writes) == 5000 and len(writes) < 5000
