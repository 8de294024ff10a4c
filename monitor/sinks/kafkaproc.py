"""The Kafka output in a process of its own, fed encoded records through a pipe.

kafka-python costs about 30 µs of Python per record, over two threads whose every socket
operation hands the interpreter lock back and forth. In ringwatch's process that starved
the pipeline: past capacity the Kafka output wrote less the more it was offered (8.6k
records/s at 20k/s offered against 10.9k at capacity). Here ringwatch only encodes the
record (orjson, about 1 µs) and writes it to a pipe, in batches, from an AsyncSink
thread; the worker (monitor/sinks/kafkaworker.py) runs the KafkaSink itself, spool and
outage handling included, under its own interpreter lock.

What a crash can lose: a SIGKILL of ringwatch loses what waits in its AsyncSink queue
(records not yet written to the pipe, normally a few ms' worth); the worker reads what
the pipe holds, then delivers or spools everything within the close timeout and exits.
With write-ahead, what the worker holds in memory is committed to the spool every
write_ahead_ms. A worker that dies is started again at the next batch; what it held in
memory, as it last reported, is counted as dropped (`worker_lost`), and its restarts as
`worker_restarts`.

Durable mode (a commit before emit returns) stays in ringwatch's process: it needs the
spool on the caller's thread (factory.py chooses).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import pickle
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from monitor import log
from monitor.sinks.asyncq import AsyncSink
from monitor.sinks.kafka import KafkaSinkOptions, encode_record
from monitor.sinks.kafkawire import (
    CLOSE,
    END,
    FLUSH,
    FROM_WORKER,
    OPTIONS,
    STOP_SIGNALS,
    FrameReader,
    WorkerStart,
    control_frame,
    record_frame,
    write_all,
)

PIPE_BYTES = 1 << 20  # F_SETPIPE_SZ: one read in the worker takes hundreds of records
RESTART_AFTER_S = 1.0
_F_SETPIPE_SZ = 1031
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class KafkaProcessSink:
    """emit() queues (AsyncSink); its thread encodes and writes to the worker's pipe."""

    def __init__(self, opts: KafkaSinkOptions, name: str, log_level: str = "info",
                 log_json: bool = False, worker_cmd: list[str] | None = None) -> None:
        self.name = name
        self.opts = opts
        self.link = WorkerLink(WorkerStart(opts, name, log_level, log_json), worker_cmd)
        self._queue = AsyncSink(self.link, queue_size=opts.queue_size,
                                close_timeout_s=opts.close_timeout_s)

    def emit(self, record: dict[str, Any]) -> None:
        self._queue.emit(record)

    def flush(self, timeout: float) -> None:
        """Wait until everything emitted is acknowledged or spooled (at most `timeout`)."""
        deadline = time.monotonic() + timeout
        self._queue.flush(timeout)
        self.link.flush(max(0.0, deadline - time.monotonic()))

    def reopen(self) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        if timeout is not None:
            self.link.close_timeout_s = timeout
        self._queue.close(timeout)  # ends with link.close(): the worker's own shutdown

    def stats(self) -> dict[str, int]:
        return self._queue.stats()


class WorkerLink:
    """The pipe to one worker process and what it reports back; restarts a dead worker."""

    def __init__(self, start: WorkerStart, worker_cmd: list[str] | None = None) -> None:
        self.name = start.name
        self.start = start
        self.opts: KafkaSinkOptions = start.options
        self.log = log.get("ringwatch.kafka").bind(sink=start.name)
        self.close_timeout_s = self.opts.close_timeout_s  # the worker's, to deliver or spool
        self._cmd = worker_cmd or [sys.executable, "-m", "monitor.sinks.kafkaworker"]
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count()
        self._tokens = itertools.count(1)
        self._cv = threading.Condition()
        self._wlock = threading.Lock()  # AsyncSink's thread writes records, flush() markers
        self._latest: dict[str, int] = {}  # the running worker's last report
        self._answered = 0  # the last flush token it answered
        self._ended = False  # it sent its final stats
        self._past: dict[str, int] = {}  # what dead workers had reported, added up
        self._encode_errors = 0
        self._lost = 0  # records written to a worker that died before settling them
        self._restarts = 0
        self._started_at = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._spawn()

    # -- AsyncSink's inner sink ---------------------------------------------------------

    def emit(self, record: dict[str, Any]) -> None:
        self.emit_batch([record])

    def emit_batch(self, records: list[dict[str, Any]]) -> None:
        frames = []
        for rec in records:
            try:
                value, rid = encode_record(rec, self._id_prefix, self._ids)
            except (TypeError, ValueError) as exc:  # not JSON-serialisable: lost, counted
                self.log.error("kafka record not serialisable: dropped", error=repr(exc))
                with self._cv:
                    self._encode_errors += 1
                continue
            frames.append(record_frame(rid.encode(), value))
        if frames:
            self._write(b"".join(frames), len(frames))

    def flush(self, timeout: float) -> None:
        if timeout <= 0:
            return  # the worker sends by itself
        token = next(self._tokens)
        if not self._write(control_frame(FLUSH, token, int(timeout * 1000)), 0):
            return
        deadline = time.monotonic() + timeout + 1
        with self._cv:
            while self._answered < token and not self._ended and self._alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cv.wait(min(remaining, 0.5))

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        timeout = self.close_timeout_s
        self._write(control_frame(CLOSE, 0, int(timeout * 1000)), 0, restart=False)
        _close_quietly(proc.stdin)
        try:
            proc.wait(timeout + self.opts.ack_timeout_s + 5)
        except subprocess.TimeoutExpired:
            self.log.error("kafka worker did not stop: killed", pid=proc.pid)
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        if proc.returncode:
            self.log.error("kafka worker failed", pid=proc.pid, returncode=proc.returncode)

    def stats(self) -> dict[str, int]:
        with self._cv:
            out = dict(self._past)
            for k, v in self._latest.items():
                out[k] = out.get(k, 0) + v if k not in _LEVELS else v
            out["errors"] = out.get("errors", 0) + self._encode_errors
            out["dropped"] = out.get("dropped", 0) + self._lost
            out["worker_lost"] = self._lost
            out["worker_restarts"] = self._restarts
            return out

    # -- the worker process --------------------------------------------------------------

    def _spawn(self) -> None:
        env = dict(os.environ)
        # Run from a checkout too: the worker imports the same monitor package.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        # Started with the stop signals blocked (a thread's mask passes through fork and
        # exec): a Ctrl-C or a group-wide SIGTERM while the worker is still importing stays pending until
        # it ignores them, instead of killing it with what ringwatch already handed over.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            proc = subprocess.Popen(self._cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    env=env, close_fds=True)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        assert proc.stdin is not None and proc.stdout is not None
        # Above /proc/sys/fs/pipe-max-size without CAP_SYS_RESOURCE it fails: smaller reads.
        with contextlib.suppress(OSError):
            fcntl.fcntl(proc.stdin.fileno(), _F_SETPIPE_SZ, PIPE_BYTES)
        with self._cv:
            self._latest, self._ended = {}, False
        self._proc = proc
        self._started_at = time.monotonic()
        payload = pickle.dumps(self.start)
        write_all(proc.stdin.fileno(), control_frame(OPTIONS, len(payload), 0) + payload)
        self._reader = threading.Thread(target=self._read_replies, args=(proc,),
                                        name=f"reply-{self.name}", daemon=True)
        self._reader.start()
        self.log.debug("kafka worker started", pid=proc.pid)

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write(self, data: bytes, records: int, restart: bool = True) -> bool:
        """Write to the worker; a dead one is replaced (at most once a second) and what
        could not be written is counted as lost."""
        with self._wlock:
            if self._write_to(self._proc, data):
                return True
            if restart:
                self._replace()
                if self._write_to(self._proc, data):
                    return True
        with self._cv:
            self._lost += records
        return False

    @staticmethod
    def _write_to(proc: subprocess.Popen[bytes] | None, data: bytes) -> bool:
        if proc is None or proc.stdin is None or proc.poll() is not None:
            return False
        try:
            write_all(proc.stdin.fileno(), data)
        except (BrokenPipeError, ValueError):  # ValueError: its stdin closed
            return False
        return True

    def _replace(self) -> None:
        proc = self._proc
        if proc is None or time.monotonic() - self._started_at < RESTART_AFTER_S:
            return
        try:
            returncode = proc.wait(5)
        except subprocess.TimeoutExpired:  # alive with its input closed: it is no use
            proc.kill()
            returncode = proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        with self._cv:
            last = self._latest
            # What it held only in memory is gone with it (the spool is on disk).
            self._lost += last.get("queued", 0)
            for k, v in last.items():
                if k not in _LEVELS:
                    self._past[k] = self._past.get(k, 0) + v
            self._latest = {}
            self._restarts += 1
        self.log.error("kafka worker exited: starting another", pid=proc.pid, returncode=returncode,
                       lost=last.get("queued", 0))
        _close_quietly(proc.stdin)
        _close_quietly(proc.stdout)
        self._spawn()

    def _read_replies(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        reader = FrameReader(FROM_WORKER)
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            reader.feed(chunk)
            for kind, _length, payload in reader.frames():
                try:
                    msg = json.loads(payload)
                except ValueError:
                    continue
                with self._cv:
                    self._latest = {k: int(v) for k, v in msg.get("stats", {}).items()}
                    token = msg.get("token")
                    if isinstance(token, int):
                        self._answered = max(self._answered, token)
                    if kind == END:
                        self._ended = True
                    self._cv.notify_all()


# Stats that say how much is held now, not how much happened: never added across workers.
_LEVELS = frozenset({"queued", "spooled", "spooled_bytes", "spool_dropped_total", "outage_active"})


def _close_quietly(f: Any) -> None:
    if f is not None:
        with contextlib.suppress(OSError):
            f.close()
