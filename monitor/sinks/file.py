"""JSON lines appended to a file; reopened on SIGHUP so logrotate can move it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from monitor.sinks.base import dumps


class JsonlFileSink:
    def __init__(self, path: Path, name: str = "file", fsync: str = "never") -> None:
        self.name = name
        self.path = path
        self.fsync = fsync  # "never", "flush" (on each flush) or "always"
        self._fh = self._open()
        self._written = 0
        self._errors = 0

    def _open(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return open(self.path, "a", encoding="utf-8", errors="surrogateescape")

    def emit(self, record: dict[str, Any]) -> None:
        try:
            self._fh.write(dumps(record) + "\n")
            self._written += 1
            if self.fsync == "always":
                self._sync()
        except OSError:
            self._errors += 1

    def _sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def flush(self, timeout: float) -> None:
        try:
            if self.fsync == "flush":
                self._sync()
            else:
                self._fh.flush()
        except OSError:
            self._errors += 1

    def reopen(self) -> None:
        self.flush(0)
        self._fh.close()
        self._fh = self._open()

    def close(self) -> None:
        self.flush(0)
        self._fh.close()

    def stats(self) -> dict[str, int]:
        return {"written": self._written, "errors": self._errors}
