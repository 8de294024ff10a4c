"""JSON lines appended to a file; reopened on SIGHUP so logrotate can move it.

logrotate renames the file and sends SIGHUP; until reopen() the sink keeps appending to
the renamed file (same inode), so no line is lost in between, and afterwards it writes
to a new file at the configured path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from monitor.sinks.base import dumps

# never: leave it to the kernel; flush: fsync whenever the queue runs dry or at
# shutdown; always: fsync after every record (slow, for low-volume alert files).
FSYNC_POLICIES = ("never", "flush", "always")


class JsonlFileSink:
    def __init__(self, path: Path, name: str = "file", fsync: str = "never",
                 mode: int = 0o640) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, got {fsync!r}")
        self.name = name
        self.path = path
        self.fsync = fsync
        self.mode = mode
        self._written = 0
        self._errors = 0
        self._reopened = 0
        self._fh: Any = self._open()

    def _open(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Alerts name users, commands and files: not world-readable by default.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, self.mode)
        return os.fdopen(fd, "a", encoding="utf-8", errors="surrogateescape")

    def emit(self, record: dict[str, Any]) -> None:
        try:
            if self._fh is None:
                self._fh = self._open()
            self._fh.write(dumps(record) + "\n")
            if self.fsync == "always":
                self._sync()
        except (OSError, ValueError):
            self._errors += 1
            return
        self._written += 1

    def emit_batch(self, records: list[dict[str, Any]]) -> None:
        """Many records in one write (AsyncSink's worker hands over what is waiting)."""
        lines: list[str] = []
        for record in records:
            try:
                lines.append(dumps(record) + "\n")
            except (TypeError, ValueError):  # not serialisable: lost, counted
                self._errors += 1
        if self.fsync == "always":
            for line in lines:  # one fsync per record is the policy's promise
                self._write(line)
            return
        self._write("".join(lines), len(lines))

    def _write(self, text: str, count: int = 1) -> None:
        try:
            if self._fh is None:
                self._fh = self._open()
            self._fh.write(text)
            if self.fsync == "always":
                self._sync()
        except (OSError, ValueError):
            self._errors += count
            return
        self._written += count

    def _sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def flush(self, timeout: float) -> None:
        if self._fh is None:
            return
        try:
            if self.fsync == "flush":
                self._sync()
            else:
                self._fh.flush()
        except (OSError, ValueError):
            self._errors += 1

    def reopen(self) -> None:
        """Finish the old file (it may have been renamed) and open the path anew."""
        if self._fh is not None:
            self.flush(0)
            try:
                self._fh.close()
            except OSError:
                self._errors += 1
        self._fh = None
        try:
            self._fh = self._open()
        except OSError:
            # Counted; emit() tries to open it again, record by record.
            self._errors += 1
            return
        self._reopened += 1

    def close(self) -> None:
        if self._fh is not None:
            self.flush(0)
            self._fh.close()
            self._fh = None

    def stats(self) -> dict[str, int]:
        return {"written": self._written, "errors": self._errors, "reopened": self._reopened}
