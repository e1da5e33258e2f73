"""Long-running processes freeze what they allocated at start, out of the collector's way."""

from __future__ import annotations

import gc

from paymux.server import settle_heap


def test_settle_heap_freezes_what_exists() -> None:
    marker = [object() for _ in range(100)]
    try:
        settle_heap()
        assert gc.get_freeze_count() >= len(marker)
        assert not any(o is marker for o in gc.get_objects(generation=2))  # frozen: not scanned
    finally:
        gc.unfreeze()
