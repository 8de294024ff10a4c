"""The Kafka worker process: `python -m monitor.sinks.kafkaworker`, started by kafkaproc.py.

It runs one KafkaSink (queue, spool, outages: monitor/sinks/kafka.py) on records that
arrive already encoded on stdin, and reports that sink's stats on stdout. Its logs go to
the stderr it inherits (the journal under systemd).

It ignores SIGTERM, SIGINT and SIGHUP: a Ctrl-C in a terminal, or a SIGTERM to the
process group or the unit's cgroup (KillMode=control-group), reaches it too, and it must
outlive ringwatch's own shutdown, which ends by closing the pipe. (The unit ships with
KillMode=mixed: only ringwatch gets the SIGTERM, and ringwatch waits for the worker.) At
end of input (a close frame, or ringwatch gone, SIGKILL included) it delivers or spools
what it holds, within the close timeout, and exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import signal
import sys
import threading
from pathlib import Path

from structlog.typing import FilteringBoundLogger

from monitor import log
from monitor.sinks.kafka import KafkaSink, KafkaSinkOptions
from monitor.sinks.kafkawire import (
    CLOSE,
    END,
    FLUSH,
    OPTIONS,
    RECORD,
    STATS,
    STOP_SIGNALS,
    TO_WORKER,
    FrameReader,
    WorkerStart,
    reply_frame,
    write_all,
)

READ_CHUNK = 1 << 20
REPORT_EVERY_S = 0.5


class Replies:
    """Stats frames to ringwatch, from the reader and the reporter thread in turn."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = threading.Lock()

    def send(self, kind: bytes, token: int | None, sink: KafkaSink) -> None:
        frame = reply_frame(kind, token, sink.stats())
        # OSError: ringwatch is gone; the sink still delivers or spools what it holds.
        with self._lock, contextlib.suppress(OSError):
            write_all(self.fd, frame)


def _read_start(fd: int, reader: FrameReader) -> WorkerStart:
    while True:
        for kind, _a, _b, payload in reader.frames():
            if kind != OPTIONS:
                raise SystemExit(f"kafka worker: first frame {kind!r}, expected options")
            start = pickle.loads(payload)
            if not isinstance(start, WorkerStart) or not isinstance(start.options, KafkaSinkOptions):
                raise SystemExit("kafka worker: options frame holds no WorkerStart")
            return start
        chunk = os.read(fd, READ_CHUNK)
        if not chunk:
            raise SystemExit("kafka worker: no options before end of input")
        reader.feed(chunk)


def _lock_spool(spool: Path, lg: FilteringBoundLogger) -> int:
    """One worker per spool: a worker left by a SIGKILLed ringwatch may still be spooling."""
    spool.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{spool}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lg.warning("kafka worker: waiting for the previous worker to release the spool", spool=str(spool))
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _report(sink: KafkaSink, replies: Replies, done: threading.Event) -> None:
    while not done.wait(REPORT_EVERY_S):
        replies.send(STATS, None, sink)


def main() -> int:
    # Blocked since its start (kafkaproc.py); ignoring them discards any pending one.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    inp, out = sys.stdin.fileno(), sys.stdout.fileno()
    reader = FrameReader(TO_WORKER)
    start = _read_start(inp, reader)
    log.configure(start.log_level, json=start.log_json)
    lg = log.get("ringwatch.kafka").bind(sink=start.name)
    _lock_spool(Path(start.options.spool_path), lg)
    sink = KafkaSink(start.options, name=start.name)
    replies = Replies(out)
    done = threading.Event()
    threading.Thread(target=_report, args=(sink, replies, done), name="report", daemon=True).start()
    close_timeout: float = start.options.close_timeout_s
    emit = sink.emit_encoded
    closing = False
    while not closing:
        for kind, a, b, payload in reader.frames():
            if kind == RECORD:
                emit(payload[a:], payload[:a].decode())
            elif kind == FLUSH:
                sink.flush(b / 1000)
                replies.send(STATS, a, sink)
            elif kind == CLOSE:
                close_timeout = b / 1000
                closing = True
                break
        if closing:
            break
        chunk = os.read(inp, READ_CHUNK)
        if not chunk:
            if reader.pending():
                lg.error("kafka worker: input ended inside a frame", bytes=reader.pending())
            break
        reader.feed(chunk)
    done.set()
    sink.close(close_timeout)
    replies.send(END, None, sink)
    return 0


if __name__ == "__main__":
    sys.exit(main())
