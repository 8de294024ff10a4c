"""YAML parsing failures as a position and one line of text, whatever PyYAML raised.

PyYAML's errors are not uniform: a scanner or parser error has a `problem_mark`, a
reader error (a control character such as NUL or ESC, anywhere, even inside a quoted
string) has only a character `position`, and a constructor can raise plain ValueError
(`2020-13-45` looks like a timestamp) or, on deep nesting, RecursionError. Both the
rules loader and the config loader turn all of them into `line:col: message`.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

# What a YAML load may raise on hostile text, besides YAMLError itself.
PARSE_FAILURES = (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError)


@dataclass(frozen=True, slots=True)
class YamlFailure:
    line: int  # 1-based
    col: int  # 1-based
    message: str  # one line


def _position(text: str, index: int) -> tuple[int, int]:
    index = max(0, min(index, len(text)))
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def describe(exc: BaseException, text: str) -> YamlFailure:
    if isinstance(exc, yaml.reader.ReaderError):
        line, col = _position(text, exc.position)
        char = exc.character
        shown = f"#x{char:04x}" if isinstance(char, int) else repr(char)
        return YamlFailure(line, col, f"control character {shown} is not allowed in YAML (even quoted); "
                                      "write it as an escape in a double-quoted string, e.g. \"\\x1b\"")
    if isinstance(exc, RecursionError):
        return YamlFailure(1, 1, "nested too deeply")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    if isinstance(exc, yaml.YAMLError):
        message = getattr(exc, "problem", None) or str(exc)
    else:
        message = f"bad value: {exc}"
    return YamlFailure(line, col, " ".join(str(message).split()))
