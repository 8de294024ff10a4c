"""Loads a ruleset in a worker thread, so a reload never stops the ring-buffer consumer.

A load reads files (which may block: NFS, a FIFO) and compiles conditions (bounded by
Limits, but still up to seconds). The daemon's main loop starts a load on SIGHUP,
keeps polling the ring buffer, and asks `poll()` now and then; when the load is done it
swaps the new RuleSet in on its own thread, so rules change between two events, never
during one. The worker touches nothing but its own result: no lock is needed beyond
the thread's end, which `poll()` observes with `is_alive()`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from monitor.rules.limits import DEFAULT_LIMITS, Limits
from monitor.rules.loader import RuleSources, check
from monitor.rules.names import FieldNames
from monitor.rules.problems import Loc, Problem
from monitor.rules.ruleset import RuleSet


@dataclass(frozen=True, slots=True)
class LoadResult:
    ruleset: RuleSet | None  # None when the load failed
    problems: list[Problem] = field(default_factory=list)


class BackgroundLoad:
    """One load of `sources` on a daemon thread; `poll()` gives its result once, when done."""

    def __init__(self, sources: RuleSources, names: FieldNames | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self.sources = sources
        self._names = names
        self._limits = limits
        self._result: LoadResult | None = None
        # daemon: a load stuck on a file must not keep the process from exiting.
        self._thread = threading.Thread(target=self._run, name="rules-load", daemon=True)

    @classmethod
    def start(cls, sources: RuleSources, names: FieldNames | None = None,
              limits: Limits = DEFAULT_LIMITS) -> BackgroundLoad:
        load = cls(sources, names, limits)
        load._thread.start()
        return load

    def _run(self) -> None:
        try:
            ruleset, problems = check(self.sources, self._names, self._limits)
            self._result = LoadResult(ruleset, problems)
        except Exception as exc:  # a bug in the loader must fail the reload, not the daemon
            where = Loc(str(self.sources.paths[0]) if self.sources.paths else "<rules>", 1, 1)
            self._result = LoadResult(None, [Problem(where, "", f"rules load failed: {exc!r}")])

    def running(self) -> bool:
        return self._thread.is_alive()

    def poll(self) -> LoadResult | None:
        """The result if the load has finished, else None (never blocks)."""
        if self._thread.is_alive():
            return None
        if self._result is None:  # the thread died of a BaseException
            return LoadResult(None, [Problem(Loc("<rules>", 1, 1), "", "rules load ended without a result")])
        return self._result

    def wait(self, timeout: float | None = None) -> LoadResult | None:
        """For tests and one-shot commands: block until done (or timeout)."""
        self._thread.join(timeout)
        return self.poll()
