"""A string value assembled from YAML scalars, able to say where each character came from.

A rule's condition can be one scalar or several (an override appends to it from another
file); an error at offset N of the whole condition is reported at the file position of
the scalar that N falls in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.rules.problems import Loc
from monitor.rules.yamlsrc import ScalarSource


@dataclass(frozen=True, slots=True)
class Part:
    start: int  # offset of this part in the whole text
    value: str
    source: ScalarSource | None  # None for generated text
    loc: Loc  # where to blame generated text


@dataclass(slots=True)
class SourcedText:
    value: str = ""
    parts: list[Part] = field(default_factory=list)

    @classmethod
    def of(cls, value: str, source: ScalarSource | None, loc: Loc) -> SourcedText:
        return cls(value, [Part(0, value, source, loc)])

    def append(self, value: str, source: ScalarSource | None, loc: Loc, sep: str = " ") -> SourcedText:
        """A new text: this one, sep, then value (the original is shared, not changed)."""
        start = len(self.value) + len(sep)
        return SourcedText(self.value + sep + value, [*self.parts, Part(start, value, source, loc)])

    def locate(self, offset: int) -> Loc:
        chosen = self.parts[0]
        for part in self.parts:
            if part.start <= offset:
                chosen = part
        if chosen.source is None:
            return chosen.loc
        inner = max(0, min(offset - chosen.start, len(chosen.value)))
        return chosen.source.locate(inner, chosen.value)

    @property
    def loc(self) -> Loc:
        return self.parts[0].loc
