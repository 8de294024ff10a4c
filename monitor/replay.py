"""`ringwatch replay`: recorded events (JSON lines) through the rules, no kernel, no root."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.errors import UserError
from monitor.rules import RuleSet


@dataclass(slots=True)
class ReplayStats:
    lines: int = 0
    events: int = 0
    malformed: int = 0  # lines skipped: not JSON, or not a JSON object
    alerts: int = 0

    @property
    def all_malformed(self) -> bool:
        """Nothing but garbage: the wrong file, which must not pass for a clean replay."""
        return self.events == 0 and self.malformed > 0


def replay_lines(
    lines: Iterable[str],
    ruleset: RuleSet,
    emit: Callable[[dict[str, Any]], None],
    on_malformed: Callable[[int, str], None],
) -> ReplayStats:
    stats = ReplayStats()
    loads = json.loads
    for lineno, line in enumerate(lines, 1):
        stats.lines += 1
        if not line.strip():
            continue
        try:
            event = loads(line)
        except json.JSONDecodeError as exc:
            stats.malformed += 1
            on_malformed(lineno, f"not JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(event, dict):
            stats.malformed += 1
            on_malformed(lineno, f"expected a JSON object, got {type(event).__name__}")
            continue
        stats.events += 1
        for alert in ruleset.alerts(event):
            stats.alerts += 1
            emit(alert.to_dict())
    return stats


def replay_file(
    path: Path,
    ruleset: RuleSet,
    emit: Callable[[dict[str, Any]], None],
    on_malformed: Callable[[int, str], None],
) -> ReplayStats:
    try:
        # The recorder writes undecodable bytes (odd argv) as surrogate escapes; read them back so.
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return replay_lines(fh, ruleset, emit, on_malformed)
    except OSError as exc:
        raise UserError(f"{path}: cannot read events: {exc.strerror}") from exc
