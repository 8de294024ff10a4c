"""JSON lines appended to a file; reopened on SIGHUP so logrotate can move it.

logrotate renames the file and sends SIGHUP; until reopen() the sink keeps appending to
the renamed file (same inode), so no line is lost in between, and afterwards it writes
to a new file at the configured path.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from monitor.errors import UserError
from monitor.sinks.base import dumps_line

# never: leave it to the kernel; flush: fsync whenever the queue runs dry or at
# shutdown; always: fsync after every record (slow, for low-volume alert files).
FSYNC_POLICIES = ("never", "flush", "always")


class FileSinkError(UserError):
    """An output file that cannot be opened, or that ringwatch will not write into."""


def open_append(path: Path, mode: int) -> int:
    """An fd appending to `path`, which is never a symlink and never someone else's file.

    Outputs often live in /tmp (`--record /tmp/x.jsonl`), where anyone can plant a
    symlink to /etc/shadow or a file of their own to read what root writes. O_NOFOLLOW
    refuses a symlink as the last component; a new file is made with O_EXCL and given
    `mode` by fchmod, whatever the umask; an existing one must belong to this user
    (root's /dev/full is fine, nobody's /tmp/x.jsonl is not).
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        fd = os.open(path, flags)  # ELOOP if a symlink appeared in between
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            os.close(fd)
            raise PermissionError(f"exists and belongs to uid {st.st_uid}, not to this user") from None
        return fd
    try:
        os.fchmod(fd, mode)
    except OSError:
        os.close(fd)
        raise
    return fd


def describe_open_error(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "is a symbolic link (not followed)"
    if exc.errno == errno.EISDIR:
        return "is a directory"
    return exc.strerror or str(exc)


class JsonlFileSink:
    def __init__(self, path: Path, name: str = "file", fsync: str = "never",
                 mode: int = 0o600) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, got {fsync!r}")
        self.name = name
        self.path = path
        self.fsync = fsync
        self.mode = mode
        self._written = 0
        self._errors = 0
        self._reopened = 0
        try:
            self._fh: Any = self._open()
        except OSError as exc:
            raise FileSinkError(f"{path}: cannot write {name}: {describe_open_error(exc)}") from exc

    def _open(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Alerts name users, commands and files: not readable by others by default.
        fd = open_append(self.path, self.mode)
        return os.fdopen(fd, "ab")

    def emit(self, record: dict[str, Any]) -> None:
        try:
            if self._fh is None:
                self._fh = self._open()
            self._fh.write(dumps_line(record))
            if self.fsync == "always":
                self._sync()
        except (OSError, ValueError):
            self._errors += 1
            return
        self._written += 1

    def emit_batch(self, records: list[dict[str, Any]]) -> None:
        """Many records in one write (AsyncSink's worker hands over what is waiting)."""
        lines: list[bytes] = []
        for record in records:
            try:
                lines.append(dumps_line(record))
            except (TypeError, ValueError):  # not serialisable: lost, counted
                self._errors += 1
        if self.fsync == "always":
            for line in lines:  # one fsync per record is the policy's promise
                self._write(line)
            return
        self._write(b"".join(lines), len(lines))

    def _write(self, data: bytes, count: int = 1) -> None:
        try:
            if self._fh is None:
                self._fh = self._open()
            self._fh.write(data)
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
            fh, self._fh = self._fh, None
            try:
                fh.close()  # flushes again: ENOSPC (/dev/full) surfaces here; the fd is closed anyway
            except OSError as exc:
                self._errors += 1
                raise FileSinkError(f"{self.path}: {self.name}: the last records were not written: "
                                    f"{exc.strerror}") from exc

    def stats(self) -> dict[str, int]:
        return {"written": self._written, "errors": self._errors, "reopened": self._reopened}
