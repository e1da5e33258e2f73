"""``paymux bench --wallets N``: a small run of the wallet benchmark against ``paymux serve`` (SQLite,
and PostgreSQL): every P2P transfer done, every merchant payment into the one hot wallet done and the
merchant's balance equal to their sum, the ledger balanced, each rate next to the HTTP ceiling of the
same run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import paymux
from conftest import PG_URL, _reset_postgres, requires_postgres
from paymux.bench.runner import BenchOptions, run_bench
from paymux.bench.wallets import OwnQueues, WalletBenchOptions

N, CLIENTS, HOT, HOT_PAYERS = 120, 4, 64, 16


@pytest.fixture(autouse=True)
def this_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """The started processes (``paymux serve``, the no-op app) import this checkout's code."""
    src = str(Path(paymux.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p))


def _check(r: dict[str, Any], backend: str) -> None:
    assert r["backend"] == backend and r["transfers"] == N and r["ok"], r
    p = r["p2p"]
    assert p["done"] == N and p["errors"] == 0 and p["per_s"] > 0 and p["hub_cpu_ms_each"] > 0
    assert 0 < p["latency_ms"]["p50"] <= p["latency_ms"]["p99"]
    h = r["hot_wallet"]
    assert h["payments"] == HOT and h["done"] == HOT and h["errors"] == 0 and h["correct"] is True
    assert h["merchant_balance"] == h["sum_paid"] == f"{HOT}.00"
    assert 0 < h["latency_ms"]["p50"] <= h["latency_ms"]["p99"]
    c = r["ceiling"]
    assert c["http_errors"] == 0 and c["http_per_s"] > 0
    q = r["ratios"]
    assert q["p2p_vs_http"] == pytest.approx(p["per_s"] / c["http_per_s"], abs=0.001)
    assert q["hot_vs_http"] == pytest.approx(h["per_s"] / c["http_per_s"], abs=0.001)
    assert r["ledger_balanced"] is True and r["hub_log_errors"] == 0


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str], **extra: Any) -> dict[str, Any]:
    out = tmp_path / "bench.json"
    opts = BenchOptions(
        wallets=N,
        wallets_clients=CLIENTS,
        wallets_hot=HOT,
        wallets_hot_payers=HOT_PAYERS,
        json_path=out,
        work_dir=tmp_path,
        **extra,
    )
    assert run_bench(opts) == 0
    table = capsys.readouterr().out
    assert "transfers/s" in table and "into one merchant wallet" in table and "HTTP ceiling" in table
    results: dict[str, Any] = json.loads(out.read_text())
    assert results["options"]["wallets"] == N
    assert "sqlite" not in results and "micro" not in results  # only the wallet benchmark ran
    return results


def test_bench_wallets_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = _run(tmp_path, capsys)
    _check(r["wallets_sqlite"], "sqlite")
    assert "wallets_postgresql" not in r


@requires_postgres
@pytest.mark.postgres
def test_bench_wallets_postgres(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _reset_postgres(PG_URL)
    r = _run(tmp_path, capsys, postgres=PG_URL, wallets_sqlite=False)
    _check(r["wallets_postgresql"], "postgresql")
    assert "wallets_sqlite" not in r


def test_bench_wallets_options_and_queues() -> None:
    for bad in (
        BenchOptions(wallets=0),
        BenchOptions(wallets=10, wallets_clients=1),
        BenchOptions(wallets=10, wallets_hot=-1),
        BenchOptions(wallets=10, wallets_sqlite=False),  # nothing to run on
    ):
        with pytest.raises(ValueError):
            bad.resolve()
    opts = WalletBenchOptions(transfers=1_000_000)
    opts.resolve()
    assert (opts.hot, opts.clients, opts.hot_payers) == (6_400, 64, 64)
    # each connection iterates once and gets its own list, in order
    q = OwnQueues([[(b"a", 1), (b"b", 2)], [(b"c", 3)]])
    assert [list(q), list(q)] == [[(b"a", 1), (b"b", 2)], [(b"c", 3)]]
