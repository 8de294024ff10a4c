"""The throughput search: double the offered rate while the monitor keeps up, then
bisect between the last rate it kept up with and the first it did not.

Pure logic, driven by the caller: ask `next_target()`, run a trial at that rate, hand
the outcome to `record()`, until `next_target()` returns None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Trial:
    target: float  # events/s offered
    achieved: float  # events/s the monitor delivered end to end
    passed: bool  # zero losses, nothing missing, drained in time
    generator_kept_up: bool  # the generator reached the offered rate
    reason: str = ""  # why it failed, or what bounded it


@dataclass
class RateSearch:
    start: float
    max_doublings: int
    bisect_steps: int
    trials: list[Trial] = field(default_factory=list)
    # Why the search ended: "monitor" (a rate failed), "generator" (the generator could not
    # offer more), "cap" (doublings exhausted while still passing).
    bound: str = ""
    _lo: float = 0.0
    _hi: float | None = None
    _bisected: int = 0
    _done: bool = False

    def __post_init__(self) -> None:
        if self.start <= 0:
            raise ValueError(f"start rate must be positive, got {self.start}")
        if self.max_doublings < 0 or self.bisect_steps < 0:
            raise ValueError("max_doublings and bisect_steps must not be negative")

    def next_target(self) -> float | None:
        if self._done:
            return None
        if self._hi is None:
            return math.ldexp(self.start, len(self.trials))  # start * 2**n
        if self._lo > 0:
            # Geometric midpoint: rates span orders of magnitude.
            return math.sqrt(self._lo * self._hi)
        return self._hi / 2

    def record(self, trial: Trial) -> None:
        self.trials.append(trial)
        if self._hi is None:
            if trial.passed and not trial.generator_kept_up:
                self._finish("generator")
            elif trial.passed:
                self._lo = trial.target
                if len(self.trials) > self.max_doublings:
                    self._finish("cap")
            else:
                self._hi = trial.target
                self._after_bisect_step()
            return
        self._bisected += 1
        if trial.passed:
            self._lo = trial.target
        else:
            self._hi = trial.target
        self._after_bisect_step()

    def _after_bisect_step(self) -> None:
        if self._bisected >= self.bisect_steps:
            self._finish("monitor")

    def _finish(self, bound: str) -> None:
        self._done = True
        self.bound = bound

    @property
    def best(self) -> Trial | None:
        """The passing trial with the highest achieved rate."""
        passing = [t for t in self.trials if t.passed]
        return max(passing, key=lambda t: t.achieved) if passing else None

    @property
    def first_failure(self) -> Trial | None:
        """The lowest offered rate that failed."""
        failing = [t for t in self.trials if not t.passed]
        return min(failing, key=lambda t: t.target) if failing else None
