"""Alerts into the systemd journal over its native protocol.

One datagram per record to journald's socket: KEY=value lines, with the binary form
(KEY, newline, 64-bit little-endian length, bytes) for values that contain a newline.
A record too big for one datagram is passed as a sealed memfd, as sd_journal_send() does.
PRIORITY comes from the rule priority so `journalctl -p warning` filters by severity, and
every scalar field is also a RINGWATCH_* journal field so `journalctl RINGWATCH_RULE=...`
works; the whole record stays in RINGWATCH_JSON.
"""

from __future__ import annotations

import array
import errno
import fcntl
import os
import re
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

from monitor import log
from monitor.sinks.base import dumps

DEFAULT_SOCKET = Path("/run/systemd/journal/socket")

# Falco's priority names, in syslog order; "INFO" and "INFORMATIONAL" are both accepted.
PRIORITIES = {
    "EMERGENCY": 0, "ALERT": 1, "CRITICAL": 2, "ERROR": 3,
    "WARNING": 4, "NOTICE": 5, "INFORMATIONAL": 6, "INFO": 6, "DEBUG": 7,
}
DEFAULT_PRIORITY = 6  # plain events carry no priority: informational
_NAME_OK = re.compile(r"[^A-Z0-9_]")


def journal_priority(name: object) -> int:
    if isinstance(name, str):
        return PRIORITIES.get(name.upper(), DEFAULT_PRIORITY)
    return DEFAULT_PRIORITY


def field_name(key: str) -> str:
    """`proc.pid` -> `RINGWATCH_PROC_PID`: journal names are [A-Z0-9_], at most 64 long."""
    return ("RINGWATCH_" + _NAME_OK.sub("_", key.upper()))[:64]


def one_line(text: str, limit: int = 2048) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def summary(record: dict[str, Any]) -> str:
    """The line `journalctl -f` shows."""
    if "rule" in record:
        out = record.get("output") or ""
        return one_line(f"{record.get('priority', '')} {record['rule']}: {out}".strip())
    # A plain event (events to the journal are not offered by config, but be readable).
    pid = record.get("proc.pid", "?")
    return one_line(f"{record.get('evt.type', 'event')} {record.get('proc.name', '')}[{pid}] "
                    f"{record.get('proc.cmdline', '')}")


def _pid(record: dict[str, Any]) -> object:
    for holder, key in ((record, "proc.pid"), (record.get("event"), "proc.pid"),
                        (record.get("process"), "pid")):
        if isinstance(holder, dict) and holder.get(key) is not None:
            return holder[key]
    return None


def journal_fields(record: dict[str, Any], identifier: str) -> list[tuple[str, str]]:
    fields: dict[str, str] = {
        "MESSAGE": summary(record),
        "PRIORITY": str(journal_priority(record.get("priority"))),
        "SYSLOG_IDENTIFIER": identifier,
    }
    if "id" in record:
        fields["RINGWATCH_ALERT_ID"] = str(record["id"])
    pid = _pid(record)
    if pid is not None:
        fields["RINGWATCH_PID"] = str(pid)
    tags = record.get("tags")
    if isinstance(tags, list):
        fields["RINGWATCH_TAGS"] = ",".join(str(t) for t in tags)
    # The alert's own scalars (rule, priority, host, ...), then the event's Falco-style
    # fields (an alert nests its event), so `journalctl RINGWATCH_PROC_EXE=/bin/sh` works.
    event = record.get("event")
    for source in (record, event if isinstance(event, dict) else {}):
        for key, value in source.items():
            name = field_name(key)
            if name in fields:
                continue
            if isinstance(value, bool):
                fields[name] = "true" if value else "false"
            elif isinstance(value, str | int | float):
                fields[name] = str(value)
    fields["RINGWATCH_JSON"] = dumps(record)
    return list(fields.items())


def encode(fields: list[tuple[str, str]]) -> bytes:
    out = bytearray()
    for name, value in fields:
        data = value.encode("utf-8", errors="surrogateescape")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalSink:
    def __init__(self, socket_path: Path = DEFAULT_SOCKET, identifier: str = "ringwatch",
                 name: str = "journal", send_timeout_s: float = 1.0) -> None:
        self.name = name
        self.socket_path = socket_path
        self.identifier = identifier
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # journald drains slowly under load; a send may wait this long, then it is an error.
        self._sock.settimeout(send_timeout_s)
        self._lock = threading.Lock()
        self._written = 0
        self._errors = 0
        self._large = 0
        self._next_error_log = 0.0
        self.log = log.get("ringwatch.journal")

    def emit(self, record: dict[str, Any]) -> None:
        data = encode(journal_fields(record, self.identifier))
        try:
            try:
                self._sock.sendto(data, str(self.socket_path))
            except OSError as exc:
                if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                    raise
                self._send_memfd(data)
                self._large += 1
        except OSError as exc:
            with self._lock:
                self._errors += 1
            now = time.monotonic()
            if now >= self._next_error_log:
                # At most one line per interval: the journal may be down for a while.
                self._next_error_log = now + 10.0
                self.log.warning("journal send failed", error=repr(exc),
                                 socket=str(self.socket_path), errors=self._errors)
            return
        with self._lock:
            self._written += 1

    def _send_memfd(self, data: bytes) -> None:
        fd = os.memfd_create("ringwatch-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, data)
            # journald accepts only sealed memfds: the content cannot change under it.
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                        | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
            self._sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                     array.array("i", [fd]))], 0, str(self.socket_path))
        finally:
            os.close(fd)

    def flush(self, timeout: float) -> None:
        pass  # every emit is one complete datagram

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        self._sock.close()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"written": self._written, "errors": self._errors, "large": self._large}


def stdout_is_journal(environ: dict[str, str], stdout_fd: int = 1) -> bool:
    """Whether stdout is the journal stream systemd connected (JOURNAL_STREAM=dev:inode)."""
    value = environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(stdout_fd)
    except (ValueError, OSError):
        return False
    return st.st_dev == dev and st.st_ino == ino
