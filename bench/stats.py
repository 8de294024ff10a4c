"""Pure arithmetic of the harness: medians, ratios, the alternation schedule.

Runs of each condition alternate (A B C A B C ...) so that a machine whose load drifts
during the benchmark shifts every condition alike; medians keep one noisy run from
moving the answer.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def ratio(value: float, baseline: float) -> float | None:
    """value / baseline, or None when the baseline is zero (no meaningful ratio)."""
    if baseline == 0:
        return None
    return value / baseline


def schedule(conditions: Sequence[str], rounds: int) -> list[tuple[int, str]]:
    """(round, condition) in alternating order: every condition once per round."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    if len(set(conditions)) != len(conditions):
        raise ValueError(f"duplicate condition in {list(conditions)}")
    return [(r, c) for r in range(rounds) for c in conditions]


@dataclass(frozen=True)
class Summary:
    """One condition's runs of one workload, against the baseline condition."""

    values: list[float]
    median: float
    min: float
    max: float
    # median(condition) / median(baseline)
    ratio: float | None
    # median over rounds of condition[i] / baseline[i]: robust to drift between rounds
    paired_ratio: float | None


def summarize(runs: Mapping[str, Sequence[float]], baseline: str) -> dict[str, Summary]:
    """Summaries of every condition's runs; runs[baseline] must be present."""
    if baseline not in runs:
        raise ValueError(f"baseline {baseline!r} has no runs (have {sorted(runs)})")
    base = list(runs[baseline])
    base_med = median(base)
    out: dict[str, Summary] = {}
    for cond, vals in runs.items():
        vs = list(vals)
        med = median(vs)
        pairs = [r for v, b in zip(vs, base, strict=False) if (r := ratio(v, b)) is not None]
        out[cond] = Summary(
            values=vs,
            median=med,
            min=min(vs),
            max=max(vs),
            ratio=ratio(med, base_med),
            paired_ratio=median(pairs) if pairs else None,
        )
    return out
