"""Keeps lineage honest while running: the cache after losses, the map's fill level.

LRU eviction is silent in the kernel, and it starts before the map is 100% full (the
LRU keeps per-CPU free lists). ringwatch never deletes entries, so what was evicted is
exact: entries at start, plus what the kernel and backfill inserted since, minus the
entries now (counted with batched reads every `interval_s`). A warning is logged when
eviction has begun or the fill level reaches the configured percentage.

"Since" matters: the kernel's insert counter runs from the moment the programs attach,
and the start count is taken later, so the inserts of that gap are in both. They are
taken off (`inserts_at_base`, the counter read just after the start count); counting
them twice reported eviction on a brand-new map (evicted=15 with 172 entries of 65536).
"""

from __future__ import annotations

import time
from typing import Any

from structlog.typing import FilteringBoundLogger

from monitor.kernel.bpffs import PinnedMap
from monitor.lineage.cache import Lineage

# How often losses are checked (to invalidate the cache): lost records are rare, and a
# second of possibly stale ancestry after one is acceptable.
TICK_S = 1.0


class LineageWatch:
    def __init__(self, lineage: Lineage, procs: PinnedMap, warn_pct: int, log: FilteringBoundLogger,
                 base_entries: int, inserts_at_base: int = 0, interval_s: float = 10.0) -> None:
        self.lineage = lineage
        self.procs = procs
        self.warn_pct = warn_pct
        self.log = log
        self.interval_s = interval_s
        # Entries there would be now if nothing had been evicted, before kernel inserts:
        # those already counted in base_entries (inserts_at_base of them) are taken off.
        self.base_entries = base_entries
        self.inserts_at_base = inserts_at_base
        self.entries = procs.count()
        self.evicted = 0
        self._last_count = float("-inf")  # check at the first tick
        self._last_lost = 0
        self._last_tick = float("-inf")
        self._warned = False

    @property
    def utilisation_pct(self) -> float:
        return 100.0 * self.entries / self.procs.info.max_entries

    def due(self, now: float) -> bool:
        """Whether tick() has anything to do: reading the kernel counters it needs is the
        costly part of an idle daemon's loop, so the caller asks first."""
        return now - self._last_tick >= TICK_S

    def tick(self, lost_records: int, kernel_inserts: int) -> None:
        self._last_tick = time.monotonic()
        if lost_records > self._last_lost:
            # A lost fork or exec record leaves the cache behind the kernel map.
            self._last_lost = lost_records
            self.lineage.invalidate()
        now = time.monotonic()
        if now - self._last_count < self.interval_s:
            return
        self._last_count = now
        self.entries = self.procs.count()
        since_base = max(0, kernel_inserts - self.inserts_at_base)
        self.evicted = max(0, self.base_entries + since_base - self.entries)
        full = self.evicted > 0 or self.utilisation_pct >= self.warn_pct
        if full and not self._warned:
            self.log.warning(
                "lineage_map_nearly_full", entries=self.entries, max_entries=self.procs.info.max_entries,
                utilisation_pct=round(self.utilisation_pct, 1), evicted=self.evicted,
                hint="raise lineage.max_entries; eviction loses ancestry of long-lived processes",
            )
        self._warned = full

    def stats(self, kernel_counters: dict[str, int]) -> dict[str, Any]:
        st = self.lineage.stats
        return {
            "entries": self.entries,
            "max_entries": self.procs.info.max_entries,
            "utilisation_pct": round(self.utilisation_pct, 2),
            "evicted": self.evicted,
            "pin": str(self.procs.path),
            "cache_entries": self.lineage.cached(),
            "lookups": {"cache_hits": st.cache_hits, "kernel_hits": st.kernel_hits, "missed": st.misses},
            "backfilled": st.backfilled,
            "cache_invalidations": st.cache_invalidations,
            "kernel": kernel_counters,
        }
