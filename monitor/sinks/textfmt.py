"""One readable line per alert or event, for people at a terminal (`run -o text`, `tail`).

JSON stays the format for machines (journal, files, Kafka): text drops fields and may
change between versions. Values come from the record as it is; control characters (a
file name can hold a newline or an escape sequence) are shown escaped so that one
record is always exactly one line and cannot repaint the operator's terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Per event type family, the fields that say what happened, in order.
_DETAIL_KEYS = (
    "fd.name", "evt.arg.oldpath", "evt.arg.newpath", "evt.arg.target", "evt.arg.linkpath",
    "fd.rip", "fd.rport", "fd.sip", "fd.sport", "evt.arg.domain", "evt.arg.request",
    "evt.arg.pid", "evt.arg.uid", "evt.arg.gid", "evt.arg.source", "evt.arg.fstype",
    "evt.arg.cmd", "evt.arg.name", "proc.child_pid", "proc.exit_code", "proc.exit_signal",
)
_EXEC_TYPES = frozenset({"execve", "execveat", "exec"})


def clean(value: Any) -> str:
    """str(value) with C0/C1 controls and DEL escaped: never a second line or a terminal command."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def short_time(iso: Any) -> str:
    """2026-12-01T11:14:29.994316145Z -> 2026-12-01T11:14:29.994Z (milliseconds are enough to read)."""
    text = str(iso or "-")
    head, dot, frac = text.partition(".")
    if not dot:
        return text
    return f"{head}.{frac.rstrip('Z')[:3]}Z"


def alert_line(alert: dict[str, Any]) -> str:
    action = str(alert.get("action", "alert"))
    tail = "" if action == "alert" else f" [{action}]"
    return (f"{short_time(alert.get('time'))} {clean(alert.get('priority', '-')):<8} "
            f"{clean(alert.get('rule', '-'))}: {clean(alert.get('output', ''))}{tail}")


def event_line(event: dict[str, Any]) -> str:
    etype = str(event.get("evt.type", "?"))
    parts = [short_time(event.get("evt.time")), f"{'event':<8}", clean(etype),
             f"pid={event.get('proc.pid', '-')}", clean(event.get("proc.name", "-"))]
    if etype in _EXEC_TYPES:
        exe = event.get("proc.exepath") or event.get("evt.arg.filename") or "-"
        parts.append(f"exe={clean(exe)}")
        cmdline = event.get("proc.cmdline")
        if cmdline:
            parts.append(f"cmdline={clean(cmdline)}")
    for key in _DETAIL_KEYS:
        if key in event and event[key] not in (None, ""):
            parts.append(f"{key.rsplit('.', 1)[-1]}={clean(event[key])}")
    if event.get("evt.failed"):
        parts.append(f"failed={clean(event.get('evt.errno') or event.get('evt.res'))}")
    return " ".join(parts)


def line(record: dict[str, Any]) -> str:
    """An alert (it names a rule) or an event."""
    return alert_line(record) if "rule" in record else event_line(record)


FORMATS: dict[str, Callable[[dict[str, Any]], str]] = {"text": line}


def default_format(stdout_isatty: bool) -> str:
    """text for a person at a terminal; JSON for a pipe, a file or the journal."""
    return "text" if stdout_isatty else "json"
