"""Long-running processes freeze what they allocated at start, out of the collector's way."""

from __future__ import annotations

import gc

from paymux.server import GC_YOUNG_THRESHOLD, settle_heap


def test_settle_heap_freezes_what_exists_and_collects_young_objects_less_often() -> None:
    marker = [object() for _ in range(100)]
    thresholds = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() >= len(marker)
        assert not any(o is marker for o in gc.get_objects(generation=2))  # frozen: not scanned
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD > thresholds[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
