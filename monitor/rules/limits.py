"""Bounds on the work one rules load may cause, so a small hostile file cannot stall it.

Macros may use each other: ten macros that each use the previous one twice expand to
2**10 copies of the first. Without bounds a 600-byte file took 22 s and 600 MB to
validate. Each bound is checked where the work happens, and the error names the rule,
macro or list that crossed it.

The defaults are far above real rulesets: the packaged rules/default.yaml's largest
expanded condition is 2,720 characters (14,562 for all 23 rules together).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    # One rules file, before parsing.
    max_file_bytes: int = 8 * 1024 * 1024
    # One rule's or macro's condition after macros and lists are expanded.
    max_expanded_chars: int = 128 * 1024
    # All expansions of one load together (rules and macros, each counted once).
    max_total_chars: int = 4 * 1024 * 1024
    # Items of one list after lists inside it are expanded.
    max_list_items: int = 65536
    # Macros inside macros (each level is a recursive call of the expander).
    max_macro_depth: int = 64
    # Brackets inside brackets in one expanded condition (rule-engine evaluates recursively).
    max_nesting: int = 100
    # Wall-clock seconds for compiling one load: a backstop behind the size bounds.
    max_compile_s: float = 20.0


class LimitError(Exception):
    """A bound was crossed; the message says which and by what."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# Frozen, so sharing one as the default argument is safe.
DEFAULT_LIMITS = Limits()
