"""The control socket: a running daemon answers `stats` (and `info`) as JSON.

Served from the daemon's main loop between ring-buffer polls, so a handler reads
counters without racing the thread that updates them. The protocol is one request
line (a command word, optionally a space and an argument) and one JSON reply, then the
server closes the connection: `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`.
A stream command (`tail`) instead takes the connection over (monitor/service/tail.py).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from monitor.errors import UserError

DEFAULT_SOCKET = Path("/run/ringwatch/control.sock")
MAX_REQUEST = 4096
# How long the main loop waits for a connected client to send its command: short,
# because the ring buffer is not being drained meanwhile.
REQUEST_TIMEOUT_S = 0.2
# Connections answered per loop iteration, so a flood of clients cannot starve polling.
MAX_PER_TURN = 8

Handler = Callable[[], Any]
# Gets the connection and the request's argument; returns True if it keeps the connection.
StreamHandler = Callable[[socket.socket, str], bool]


class ControlError(UserError):
    pass


def _in_use(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


class ControlServer:
    def __init__(self, path: Path, handlers: Mapping[str, Handler],
                 streams: Mapping[str, StreamHandler] | None = None) -> None:
        self.path = path
        self.handlers = dict(handlers)
        self.streams = dict(streams or {})
        self.requests = 0
        self.errors = 0
        self._sock: socket.socket | None = None

    def open(self) -> None:
        if self._sock is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        except OSError as exc:
            raise ControlError(f"control.socket: cannot create {self.path.parent}: {exc.strerror}") from exc
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise ControlError(f"control.socket: {self.path} exists and is not a socket")
            if _in_use(self.path):
                raise ControlError(
                    f"control.socket: {self.path} is in use: another ringwatch is running "
                    "(give each instance its own control.socket)"
                )
            # Left behind by an instance that was killed.
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        # Stats reveal what runs on the host: only root may ask.
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        except OSError as exc:
            sock.close()
            raise ControlError(f"control.socket: cannot bind {self.path}: {exc.strerror}") from exc
        finally:
            os.umask(old_umask)
        sock.listen(16)
        sock.setblocking(False)
        self._sock = sock

    def fileno(self) -> int:
        return -1 if self._sock is None else self._sock.fileno()

    def serve_pending(self) -> int:
        """Answer the clients already waiting; never blocks on accept. Returns how many."""
        if self._sock is None:
            return 0
        served = 0
        while served < MAX_PER_TURN:
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            if not self._answer(conn):
                conn.close()
            served += 1
        return served

    def _answer(self, conn: socket.socket) -> bool:
        """Reply to one request; True when a stream handler took the connection over."""
        conn.settimeout(REQUEST_TIMEOUT_S)
        try:
            raw = b""
            while b"\n" not in raw and len(raw) <= MAX_REQUEST:
                chunk = conn.recv(MAX_REQUEST)
                if not chunk:
                    break
                raw += chunk
            line = raw.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
            word, _, arg = line.partition(" ")
            stream = self.streams.get(word)
            if stream is not None:
                self.requests += 1
                try:
                    return stream(conn, arg)
                except Exception as exc:  # as for handlers: never the daemon's end
                    self.errors += 1
                    reply = {"ok": False, "error": f"{word}: {type(exc).__name__}: {exc}"}
                    conn.sendall(json.dumps(reply).encode() + b"\n")
                    return False
            reply = self._dispatch(line)
            conn.sendall(json.dumps(reply, default=str).encode() + b"\n")
        except OSError:
            # The client went away or was too slow: its problem, not the daemon's.
            self.errors += 1
        return False

    def _dispatch(self, cmd: str) -> dict[str, Any]:
        self.requests += 1
        handler = self.handlers.get(cmd)
        if handler is None:
            self.errors += 1
            known = ", ".join(sorted([*self.handlers, *self.streams]))
            return {"ok": False, "error": f"unknown command {cmd!r} (known: {known})"}
        try:
            return {"ok": True, "result": handler()}
        except Exception as exc:  # a failing handler must not take the daemon down
            self.errors += 1
            return {"ok": False, "error": f"{cmd}: {type(exc).__name__}: {exc}"}

    def close(self) -> None:
        if self._sock is None:
            return
        self._sock.close()
        self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def connect(path: Path, timeout: float | None = 10.0) -> socket.socket:
    """A connection to the daemon behind `path`; a UserError that names the socket if none answers."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
    except OSError as exc:
        s.close()
        hint = ""
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
            hint = " (is ringwatch running? --control-socket or control.socket picks another instance)"
        raise ControlError(f"cannot reach ringwatch at {path}: {exc.strerror}{hint}") from exc
    return s


def request(path: Path, cmd: str, timeout: float = 10.0) -> Any:
    """Ask the daemon behind `path`; a UserError that names the socket if none answers."""
    with connect(path, timeout) as s:
        try:
            s.sendall(cmd.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except OSError as exc:
            raise ControlError(f"{path}: {cmd}: no reply: {exc}") from exc
    try:
        reply = json.loads(b"".join(chunks))
    except json.JSONDecodeError as exc:
        raise ControlError(f"{path}: {cmd}: malformed reply: {exc}") from exc
    if not isinstance(reply, dict) or not reply.get("ok"):
        err = reply.get("error") if isinstance(reply, dict) else reply
        raise ControlError(f"{path}: {cmd}: {err}")
    return reply.get("result")
