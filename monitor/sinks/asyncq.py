"""Runs any sink behind a bounded queue on its own thread.

The ring-buffer consumer must never wait on an output: a full disk, a stalled journald or
a blocked stdout pipe would otherwise stop event intake and overflow the kernel's ring
buffer. emit() only appends to an Inbox (monitor/sinks/inbox.py: why not queue.Queue);
when it is full the record is dropped and counted. reopen() is carried out by the worker,
between two batches, so it never races a write. The worker takes everything waiting (up to
`batch_records`) at once and hands it to the sink's emit_batch() when it has one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from monitor import log
from monitor.sinks.base import Sink
from monitor.sinks.inbox import Inbox


class AsyncSink:
    def __init__(self, inner: Sink, queue_size: int = 10_000, idle_flush_s: float = 0.2,
                 close_timeout_s: float = 5.0, batch_records: int = 1000) -> None:
        self.inner = inner
        self.close_timeout_s = close_timeout_s
        self.name = inner.name
        self.log = log.get("ringwatch.sink").bind(sink=inner.name)
        # The bound is kept here (it counts taken, unwritten records too): the inbox's own
        # never refuses what passes it.
        self._queue: Inbox[dict[str, Any]] = Inbox(queue_size)
        self._queue_size = queue_size
        self._batch_records = batch_records
        self._emit_batch: Callable[[list[dict[str, Any]]], None] | None = getattr(inner, "emit_batch", None)
        self._idle_flush_s = idle_flush_s
        self._lock = threading.Lock()
        self._done_cv = threading.Condition(self._lock)
        self._accepted = 0
        self._handled = 0
        self._dropped = 0
        self._errors = 0
        self._reopen = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sink-{inner.name}", daemon=True)
        self._thread.start()

    def emit(self, record: dict[str, Any]) -> None:
        with self._lock:
            # The bound counts what the worker has taken and not yet written too.
            if self._accepted - self._handled >= self._queue_size:
                self._dropped += 1
                return
            self._queue.put(record)
            self._accepted += 1

    def flush(self, timeout: float) -> None:
        """Wait (at most `timeout`) until the worker has passed on everything queued."""
        if timeout <= 0:
            return  # the worker flushes the inner sink by itself when idle
        deadline = time.monotonic() + timeout
        with self._done_cv:
            while self._handled < self._accepted and self._thread.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._done_cv.wait(remaining)

    def reopen(self) -> None:
        self._reopen.set()
        self._queue.wake()

    def close(self, timeout: float | None = None) -> None:
        timeout = self.close_timeout_s if timeout is None else timeout
        self.flush(timeout)
        self._stop.set()
        self._queue.wake()
        self._thread.join(timeout + 1)
        if self._thread.is_alive():
            self.log.warning("sink worker did not stop", queued=len(self._queue))
            return
        self.inner.close()

    def stats(self) -> dict[str, int]:
        inner = self.inner.stats()
        with self._lock:
            return {
                **inner,
                "errors": inner.get("errors", 0) + self._errors,
                "dropped": inner.get("dropped", 0) + self._dropped,
                "queue_dropped": inner.get("queue_dropped", 0) + self._dropped,
                "queued": max(0, self._accepted - self._handled) + inner.get("queued", 0),
            }

    def _run(self) -> None:
        dirty = False
        while True:
            self._maybe_reopen()
            batch = self._queue.take(self._batch_records)
            if not batch:
                if dirty:
                    self._call(self.inner.flush, 0)
                    dirty = False
                if self._stop.is_set() and not self._reopen.is_set():
                    return
                # Sleeps until emit(), reopen() or close() wakes it, or idle_flush_s.
                batch = self._queue.take(self._batch_records, self._idle_flush_s)
                if not batch:
                    continue
            # After the take: a record emitted after reopen() goes to the new file.
            self._maybe_reopen()
            if self._emit_batch is not None:
                self._call(self._emit_batch, batch)
            else:
                for record in batch:
                    self._call(self.inner.emit, record)
            dirty = True
            if not self._queue:
                self._call(self.inner.flush, 0)
                dirty = False
            with self._done_cv:
                self._handled += len(batch)
                self._done_cv.notify_all()

    def _maybe_reopen(self) -> None:
        if self._reopen.is_set():
            self._reopen.clear()
            self._call(self.inner.reopen)

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a broken sink must not kill its worker
            with self._lock:
                self._errors += 1
            self.log.error("sink failed", error=repr(exc))
