"""``paymux bench --invoices N``: a small run of the invoice benchmark against ``paymux serve`` (SQLite,
and PostgreSQL): every invoice taken, every page answered, every webhook received and verified by the
receiver (``standardwebhooks``), each rate next to the HTTP ceiling of the same run."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import paymux
from conftest import PG_URL, _reset_postgres, requires_postgres
from paymux.bench.invoices import InvoiceBenchOptions, batch_body
from paymux.bench.runner import BenchOptions, run_bench
from paymux.invoices.service import parse_items

N, BATCH, PAGES, HOOKS = 2_000, 500, 300, 40


@pytest.fixture(autouse=True)
def this_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """The started processes (``paymux serve``, the no-op app) import this checkout's code."""
    src = str(Path(paymux.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p))


def _check(r: dict[str, Any], backend: str) -> None:
    assert r["backend"] == backend and r["invoices"] == N and r["ok"], r
    i = r["intake"]
    assert i["created"] == N and i["errors"] == 0 and i["invalid"] == 0 and i["conflicts"] == 0
    assert i["per_s"] > 0 and 0 < i["batch_ms"]["p50"] <= i["batch_ms"]["p99"]
    p = r["page"]
    assert p["requests"] == PAGES and p["errors"] == 0 and p["per_s"] > 0
    assert 0 < p["latency_ms"]["p50"] <= p["latency_ms"]["p99"]
    assert 0 < p["links_sampled"] <= N
    w = r["webhook"]
    assert w["paid"] == HOOKS and w["verified"] == HOOKS and w["refused"] == 0 and w["per_s"] > 0
    assert w["deliveries"] >= HOOKS
    c = r["ceiling"]
    assert c["intake_errors"] == 0 and c["http_errors"] == 0
    assert c["intake_per_s"] > 0 and c["http_per_s"] > 0
    q = r["ratios"]
    assert q["intake_vs_ceiling"] == pytest.approx(i["per_s"] / c["intake_per_s"], abs=0.001)
    assert q["page_vs_http"] == pytest.approx(p["per_s"] / c["http_per_s"], abs=0.001)
    assert q["webhooks_vs_http"] == pytest.approx(w["per_s"] / c["http_per_s"], abs=0.001)
    mem = r["hub_rss_mib"]
    assert mem["at_10"] > 0 and mem["at_90"] > 0
    assert r["hub_rss_growth_mib"] == pytest.approx(mem["at_90"] - mem["at_10"], abs=0.05)
    assert r["hub_log_errors"] == 0


def _run(tmp_path: Path, capsys: pytest.CaptureFixture[str], **extra: Any) -> dict[str, Any]:
    out = tmp_path / "bench.json"
    opts = BenchOptions(
        invoices=N,
        invoices_batch=BATCH,
        invoices_page_clients=20,
        invoices_page_requests=PAGES,
        invoices_webhooks=HOOKS,
        json_path=out,
        work_dir=tmp_path,
        **extra,
    )
    assert run_bench(opts) == 0
    table = capsys.readouterr().out
    assert "invoices/s" in table and "verified deliveries/s" in table and "HTTP ceiling" in table
    results: dict[str, Any] = json.loads(out.read_text())
    assert results["options"]["invoices"] == N
    assert "sqlite" not in results and "micro" not in results  # only the invoice benchmark ran
    return results


def test_bench_invoices_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = _run(tmp_path, capsys)
    _check(r["invoices_sqlite"], "sqlite")
    assert "invoices_postgresql" not in r


@requires_postgres
@pytest.mark.postgres
def test_bench_invoices_postgres(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _reset_postgres(PG_URL)
    r = _run(tmp_path, capsys, postgres=PG_URL, invoices_sqlite=False)
    _check(r["invoices_postgresql"], "postgresql")
    assert "invoices_sqlite" not in r


def test_bench_invoices_options_and_batches() -> None:
    for bad in (
        BenchOptions(invoices=0),
        BenchOptions(invoices=10, invoices_batch=10_001),
        BenchOptions(invoices=10, invoices_webhooks=11),
        BenchOptions(invoices=10, invoices_page_clients=0),
        BenchOptions(invoices=10, invoices_sqlite=False),  # nothing to run on
    ):
        with pytest.raises(ValueError):
            bad.resolve()
    opts = InvoiceBenchOptions(invoices=1_000_000)
    opts.resolve()
    assert (opts.webhooks, opts.ceiling_invoices, opts.page_clients) == (5_000, 100_000, 100)
    # the batches the bench sends are valid invoices for the intake, numbered without gaps
    good, bad = parse_items(json.loads(batch_body(100, 350))["invoices"])
    assert not bad and [item.number for _, item, _, _ in good] == [f"B{i:09d}" for i in range(100, 350)]
