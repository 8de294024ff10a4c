"""Load errors: each names a place (file:line:col), the item it belongs to, and what is wrong.

Loading collects every problem instead of stopping at the first, so `ringwatch rules
validate` can list them all in one run.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.errors import UserError


@dataclass(frozen=True, slots=True)
class Loc:
    """A position in a rules file; line and col are 1-based."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Problem:
    loc: Loc
    item: str  # e.g. "rule 'Shell in container'", or "" for file-level problems
    message: str

    def __str__(self) -> str:
        where = f"{self.item}: " if self.item else ""
        return f"{self.loc}: {where}{self.message}"


class RulesError(UserError):
    """The rules did not load; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        head = f"{count} error{'s' if count != 1 else ''} in rules"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in problems))
