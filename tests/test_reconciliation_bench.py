"""The reconciliation benchmark runs end to end on a small register and finds exactly what was changed."""

from __future__ import annotations

from paymux.reconciliation.bench import run_reconciliation_bench


async def test_small_benchmark_run() -> None:
    out = await run_reconciliation_bench(1000)
    assert out["payments"] == 1000
    assert out["counts"]["missing_ours"] == 5 and out["counts"]["missing_theirs"] == 4
    assert out["counts"]["amount_differs"] == 8  # every 100th line; the 500th and 1000th were left out
    assert out["lines"] == 1000 + 5
    assert out["file_bytes"] > 0 and out["seconds"] > 0
