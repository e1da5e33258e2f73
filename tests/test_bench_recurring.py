"""``paymux bench --recurring N``: a small run of the recurring benchmark (SQLite, and PostgreSQL),
its figures and its guarantees (every due charge final, none doubled, the ledger balanced)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import PG_URL, _reset_postgres, requires_postgres
from paymux.bench.recurring import doubled
from paymux.bench.runner import BenchOptions, run_bench
from paymux.funding.emulator import Operation

N, DUE = 1_500, 50


def _check(r: dict[str, Any], backend: str) -> None:
    assert r["backend"] == backend and r["subscriptions"] == N and r["due"] == DUE
    assert r["ok"], r
    # exactly the released slice ran, each run once, and every one of them ended
    assert r["runs_created"] == DUE and r["runs_final"] == DUE
    assert sum(r["runs"].values()) == DUE and set(r["runs"]) <= {"paid", "refunded"}
    assert r["doubled"] == 0 and r["verify_problems"] == 0 and r["ledger_balanced"] is True
    assert r["bank_debits"] == DUE  # one debit per run at the bank, no more
    assert r["runs_per_s"] > 0 and r["run_seconds"] > 0
    assert r["load_seconds"] >= 0 and r["load_subscriptions_per_s"] > 0
    pay = r["payments"]
    assert pay["payments"] == DUE and pay["final"] == DUE - pay["refused"] and pay["final_per_s"] > 0
    assert r["runs_vs_payments"] == pytest.approx(r["runs_per_s"] / pay["final_per_s"], rel=0.01)
    for key in ("lateness_ms", "created_lag_ms", "time_to_final_ms"):
        assert 0 <= r[key]["p50"] <= r[key]["p99"] <= r[key]["max"]
    assert r["time_to_final_ms"]["max"] >= r["lateness_ms"]["max"]
    mem = r["rss_mib"]
    assert mem["peak"] >= max(mem["load_10"], mem["load_90"], mem["run_10"], mem["run_90"]) > 0
    assert "rss_growth_load_mib" in r and "rss_growth_run_mib" in r


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str], **extra: Any) -> dict[str, Any]:
    out = tmp_path / "bench.json"
    opts = BenchOptions(recurring=N, recurring_due=DUE, json_path=out, work_dir=tmp_path, **extra)
    assert run_bench(opts) == 0
    table = capsys.readouterr().out
    assert "runs/s" in table and "doubled           0" in table and "payment rate" in table
    results: dict[str, Any] = json.loads(out.read_text())
    assert results["options"]["recurring"] == N
    assert "sqlite" not in results and "micro" not in results  # only the recurring benchmark ran
    return results


def test_bench_recurring_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = _run(tmp_path, capsys)
    _check(r["recurring_sqlite"], "sqlite")
    assert "recurring_postgresql" not in r


@requires_postgres
@pytest.mark.postgres
def test_bench_recurring_postgres(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _reset_postgres(PG_URL)  # this worker's database made when missing (the bench recreates its schema)
    r = _run(tmp_path, capsys, postgres=PG_URL, recurring_sqlite=False)
    _check(r["recurring_postgresql"], "postgresql")
    assert "recurring_sqlite" not in r


def test_bench_recurring_options() -> None:
    for bad in (
        BenchOptions(recurring=0),
        BenchOptions(recurring=10, recurring_due=11),
        BenchOptions(recurring=10, recurring_workers=0),
        BenchOptions(recurring=10, recurring_sqlite=False),  # nothing to run on
    ):
        with pytest.raises(ValueError):
            bad.resolve()
    opts = BenchOptions(recurring=3_000_000)
    opts.resolve()
    rec = opts.recurring_options()
    rec.resolve()
    assert (rec.due, rec.payments) == (20_000, 20_000)  # the default slice: at most 20,000 at once
    small = BenchOptions(recurring=90).recurring_options()
    small.resolve()
    assert small.due == 3


def _op(key: str, refunded: int = 0, status: str = "done", kind: str = "debit") -> Operation:
    return Operation(key, kind, "acc", 100, "RUB", status, refunded=refunded)  # type: ignore[arg-type]


def test_doubled_counts_periods_charged_twice_at_the_bank() -> None:
    ops = [
        _op("rec-1-2026-12-07"),
        _op("rec-1-2026-12-07.r1"),  # a retry's debit of the same period: charged twice
        _op("rec-2-2026-12-07"),
        _op("rec-2-2026-12-07.r1", refunded=100),  # given back: not held
        _op("rec-3-2026-12-07"),
        _op("rec-3-2026-12-07.r1", status="refused"),
        _op("rec-3-2026-12-07:refund", kind="refund"),
        _op("rec-4-2026-12-08"),
        _op("rec-4-2027-01-07"),  # another period
    ]
    assert doubled(ops) == (7, 1)
    assert doubled([]) == (0, 0)


def test_bench_recurring_cli_checks_its_options() -> None:
    from typer.testing import CliRunner

    from paymux.cli import app

    r = CliRunner().invoke(app, ["bench", "--recurring", "5", "--recurring-due", "6"])
    assert r.exit_code == 2 and "--recurring-due" in r.output
    r = CliRunner().invoke(app, ["bench", "--recurring", "5", "--no-recurring-sqlite"])
    assert r.exit_code == 2 and "--postgres" in r.output
