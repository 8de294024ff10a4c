"""structlog set-up: the daemon's own logs go to stderr, stdout is for events/alerts.

Under systemd, stderr is a stream into the journal ($JOURNAL_STREAM names it), and the
journal takes each line's priority from a leading syslog prefix "<N>" (SyslogLevelPrefix=,
on by default); without one every line would be PRIORITY=6 and `journalctl -p err` would
never show ringwatch's errors. So on the journal each line starts with its level's prefix.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO, cast

import structlog

# structlog method names to syslog priorities (what journalctl -p filters on).
PRIORITY = {"critical": 2, "exception": 3, "error": 3, "warning": 4, "warn": 4, "info": 6, "debug": 7}


class _Stderr:
    """sys.stderr as it is when written to, not as it was when logging was configured:
    whoever replaces sys.stderr later (a test harness, a daemon re-opening its streams)
    must not leave loggers, in other threads too, writing to a closed file."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def stderr_is_journal(env: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """Whether `fd` is the journal stream systemd connected (sd_journal_stream_fd(3)):
    $JOURNAL_STREAM is "device:inode" of it. Inherited by a child whose stderr was
    redirected elsewhere, it no longer matches, and then no prefix is written."""
    raw = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    dev, _, ino = raw.partition(":")
    if not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def journal_prefix(level: str, env: Mapping[str, str] | None = None) -> str:
    """"<N>" for a line of this level written to stderr, when stderr is the journal."""
    return f"<{PRIORITY.get(level, 6)}>" if stderr_is_journal(env) else ""


def _syslog_prefix(_logger: Any, method: str, rendered: Any) -> Any:
    return f"<{PRIORITY.get(method, 6)}>{rendered}"


def configure(level: str = "info", json: bool = False) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    processors: list[structlog.types.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        renderer,
    ]
    if stderr_is_journal():
        processors.append(_syslog_prefix)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _Stderr())),
        cache_logger_on_first_use=False,
    )


def get(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
