"""`ringwatch tail`: live alerts (and events) of the running daemon, over the control socket.

A client sends `tail {filter JSON}`; the daemon answers one JSON reply line and then
streams matching records as JSON lines on the same connection until either side closes.

The main loop must never wait for a client: matching happens in the emit stage (dict
lookups), the record goes into the client's bounded queue, and a thread per client
writes it out. A client that reads too slowly loses records, counted, and is told how
many (`{"tail_dropped": N}`) when it catches up; a client that stops reading for
WRITE_TIMEOUT_S is disconnected. Closed clients are unsubscribed on the next tick.
Who may connect is decided by the control socket (root only).
"""

from __future__ import annotations

import contextlib
import json
import queue
import select
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from monitor.rules.schema import PRIORITIES, PRIORITY_ALIASES
from monitor.sinks.base import dumps
from monitor.sinks.emit import Subscriber

# Records held per client while its socket is full.
QUEUE_RECORDS = 4096
# Clients at once: each costs a thread and, with events, a filter per event.
MAX_CLIENTS = 8
# A client that has not taken a byte for this long is cut off.
WRITE_TIMEOUT_S = 30.0
# While nothing matches, how often the writer checks that its client is still there.
IDLE_CHECK_S = 1.0


class Subscribable(Protocol):
    def subscribe(self, sub: Subscriber) -> None: ...

    def unsubscribe(self, sub: Subscriber) -> None: ...


def _priority_rank(name: str) -> int:
    """Lower is more severe (EMERGENCY 0); ValueError for a name that is not a priority."""
    upper = name.upper()
    return PRIORITIES.index(PRIORITY_ALIASES.get(upper, upper))


@dataclass(frozen=True)
class TailFilter:
    """Which records a client wants. Rule and priority select alerts; type, pid and exe
    select both alerts (by the event that raised them) and events."""

    rules: frozenset[str] = frozenset()
    priority: str | None = None  # this one and more severe
    events: bool = False
    types: frozenset[str] = frozenset()
    pid: int | None = None
    exe: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> TailFilter:
        if not isinstance(data, Mapping):
            raise ValueError("filter must be a JSON object")
        known = {"rules", "priority", "events", "types", "pid", "exe"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown filter key(s) {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")

        def strings(key: str) -> frozenset[str]:
            value = data.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{key}: expected a list of strings")
            return frozenset(value)

        priority = data.get("priority")
        if priority is not None:
            if not isinstance(priority, str):
                raise ValueError("priority: expected a string")
            try:
                _priority_rank(priority)
            except ValueError:
                raise ValueError(f"priority: {priority!r} is not one of {', '.join(PRIORITIES)}") from None
        pid = data.get("pid")
        if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool)):
            raise ValueError("pid: expected an integer")
        exe = data.get("exe")
        if exe is not None and not isinstance(exe, str):
            raise ValueError("exe: expected a string")
        return cls(rules=strings("rules"), priority=priority, events=bool(data.get("events", False)),
                   types=strings("types"), pid=pid, exe=exe)

    def to_json(self) -> dict[str, Any]:
        return {"rules": sorted(self.rules), "priority": self.priority, "events": self.events,
                "types": sorted(self.types), "pid": self.pid, "exe": self.exe}

    def _event_ok(self, event: Mapping[str, Any]) -> bool:
        if self.types and event.get("evt.type") not in self.types:
            return False
        if self.pid is not None and event.get("proc.pid") != self.pid:
            return False
        # The file the kernel ran: argv[0] (proc.exe) is whatever the process was called.
        return self.exe is None or event.get("proc.exepath") == self.exe

    def alert_ok(self, alert: Mapping[str, Any]) -> bool:
        if self.rules and alert.get("rule") not in self.rules:
            return False
        if self.priority is not None:
            try:
                if _priority_rank(str(alert.get("priority"))) > _priority_rank(self.priority):
                    return False
            except ValueError:
                return False
        event = alert.get("event")
        return self._event_ok(event if isinstance(event, Mapping) else {})

    def event_ok(self, event: Mapping[str, Any]) -> bool:
        return self.events and self._event_ok(event)


class TailClient:
    """One connected `ringwatch tail`; the emit stage calls on_alert/on_event."""

    def __init__(self, conn: socket.socket, flt: TailFilter, queue_records: int = QUEUE_RECORDS,
                 write_timeout_s: float = WRITE_TIMEOUT_S) -> None:
        self.conn = conn
        self.filter = flt
        self.wants_events = flt.events
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(queue_records)
        self._lock = threading.Lock()
        self.sent = 0
        self.dropped = 0
        self._dropped_told = 0
        self.closed = threading.Event()
        conn.settimeout(write_timeout_s)
        self._thread = threading.Thread(target=self._run, name="ringwatch-tail", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _offer(self, record: dict[str, Any]) -> None:
        if self.closed.is_set():
            return
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            with self._lock:
                self.dropped += 1

    def on_alert(self, alert: dict[str, Any]) -> None:
        if self.filter.alert_ok(alert):
            self._offer(alert)

    def on_event(self, event: dict[str, Any]) -> None:
        if self.filter.event_ok(event):
            self._offer(event)

    def _run(self) -> None:
        try:
            while True:
                try:
                    record = self._queue.get(timeout=IDLE_CHECK_S)
                except queue.Empty:
                    if self._peer_gone():
                        break
                    continue
                if record is None:
                    break
                lines = []
                with self._lock:
                    if self.dropped > self._dropped_told:
                        lines.append(json.dumps({"tail_dropped": self.dropped - self._dropped_told}))
                        self._dropped_told = self.dropped
                lines.append(dumps(record))
                self.conn.sendall(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
                self.sent += 1
        except OSError:
            pass  # gone, or not reading for WRITE_TIMEOUT_S: either way this client is done
        finally:
            self.closed.set()
            with contextlib.suppress(OSError):
                self.conn.close()

    def _peer_gone(self) -> bool:
        """The client hung up (clients send nothing after the request: EOF means gone).

        Asked with select() first: the socket has a write timeout, and on such a socket
        Python waits out the timeout even for MSG_DONTWAIT, then raises TimeoutError,
        which once read as "gone" and dropped live clients."""
        try:
            readable, _, _ = select.select([self.conn], [], [], 0)
            if not readable:
                return False
            return self.conn.recv(1, socket.MSG_PEEK) == b""
        except (BlockingIOError, InterruptedError, TimeoutError):
            return False
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        """Ask the writer to stop; it ends after what it is sending now."""
        self.closed.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"sent": self.sent, "dropped": self.dropped}


class TailHub:
    """The daemon's side: takes connections from the control socket, owns the clients."""

    def __init__(self, emit: Subscribable, queue_records: int = QUEUE_RECORDS, max_clients: int = MAX_CLIENTS,
                 write_timeout_s: float = WRITE_TIMEOUT_S) -> None:
        self.emit = emit
        self.queue_records = queue_records
        self.max_clients = max_clients
        self.write_timeout_s = write_timeout_s
        self.clients: list[TailClient] = []
        self.total = 0
        self.refused = 0
        # Counts of clients already gone, so the totals never go down.
        self._gone_sent = 0
        self._gone_dropped = 0

    def accept(self, conn: socket.socket, arg: str) -> bool:
        """Called by the control server with the request's argument; True: conn is ours now."""
        self.reap()
        try:
            flt = TailFilter.from_json(json.loads(arg) if arg.strip() else {})
        except (ValueError, json.JSONDecodeError) as exc:
            self._reply(conn, {"ok": False, "error": f"tail: {exc}"})
            self.refused += 1
            return False
        if len(self.clients) >= self.max_clients:
            self._reply(conn, {"ok": False, "error": f"tail: {self.max_clients} clients already attached"})
            self.refused += 1
            return False
        if not self._reply(conn, {"ok": True, "result": {"filter": flt.to_json()}}):
            return False
        client = TailClient(conn, flt, self.queue_records, self.write_timeout_s)
        client.start()
        self.clients.append(client)
        self.emit.subscribe(client)
        self.total += 1
        return True

    @staticmethod
    def _reply(conn: socket.socket, reply: dict[str, Any]) -> bool:
        try:
            conn.sendall(json.dumps(reply).encode() + b"\n")
            return True
        except OSError:
            return False

    def reap(self) -> None:
        """Unsubscribe clients whose writer ended (they closed, or stopped reading)."""
        for client in [c for c in self.clients if c.closed.is_set()]:
            self.emit.unsubscribe(client)
            self.clients.remove(client)
            st = client.stats()
            self._gone_sent += st["sent"]
            self._gone_dropped += st["dropped"]

    def close(self) -> None:
        for client in self.clients:
            self.emit.unsubscribe(client)
            client.close()
        self.reap()

    def stats(self) -> dict[str, int]:
        live = [c.stats() for c in self.clients]
        return {
            "clients": len(self.clients),
            "attached": self.total,
            "refused": self.refused,
            "sent": self._gone_sent + sum(s["sent"] for s in live),
            "dropped": self._gone_dropped + sum(s["dropped"] for s in live),
        }
