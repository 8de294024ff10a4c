"""settle_heap(): start-up's objects frozen out of the collector's sight, and what a
reload replaced still collected (a frozen cycle would otherwise live forever)."""

from __future__ import annotations

import gc
import weakref

from monitor.daemon import settle_heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_settle_heap_freezes_and_a_later_settle_frees_what_was_dropped() -> None:
    try:
        node = _Node()
        ref = weakref.ref(node)
        settle_heap()
        assert gc.get_freeze_count() > 0
        del node
        gc.collect()
        assert ref() is not None, "frozen: the collector must not see it"
        settle_heap()  # what a rules reload does after swapping the rules
        assert ref() is None, "dropped before the settle: must be collected"
    finally:
        gc.unfreeze()
