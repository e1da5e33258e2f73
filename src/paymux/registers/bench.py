"""Benchmark of register building: N payments of one provider and day, each format, time and memory.

``run_register_bench(n)`` makes a fresh SQLite database (or uses ``database_url``, which must be an
empty migrated database), inserts ``n`` final payments into one period and builds the register in
every format, measuring wall time and the process's peak resident memory above the level before the
build (sampled from /proc every 10 ms). Memory should stay flat as ``n`` grows: rows are paged from
the database and streamed to the file. Run it as ``python -m paymux.registers.bench 20000``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select

from paymux.catalog.file import apply_catalog
from paymux.catalog.models import Channel, Provider, Service
from paymux.db.engine import create_engine, session_factory
from paymux.db.migrate import upgrade
from paymux.payments.models import Payment
from paymux.payments.synthetic import succeeded_row
from paymux.registers.build import build_register
from paymux.registers.schedule import Period
from paymux.registers.schemas import TemplateConfig

CATALOG: dict[str, Any] = {
    "providers": [
        {
            "code": "bench",
            "name": "Bench provider",
            "protocol": "jsonhttp",
            "config": {"url": "http://127.0.0.1:9"},
            "timezone": "Europe/Moscow",
        },
    ],
    "channels": [{"code": "bench-term", "name": "Bench terminal", "kind": "terminal"}],
    "services": [
        {
            "code": "bench-topup",
            "name": "Пополнение",
            "currency": "RUB",
            "account_pattern": r"^\d{10}$",
            "route": {"strategy": "priority", "candidates": [{"provider": "bench", "code": "B1"}]},
        },
    ],
}

COLUMNS = [
    {"field": "number"},
    {"field": "id"},
    {"field": "external_id"},
    {"field": "provider_txn_id"},
    {"field": "created_at"},
    {"field": "final_at"},
    {"field": "account"},
    {"field": "amount"},
    {"field": "fee"},
    {"field": "remuneration"},
    {"field": "currency"},
    {"field": "service"},
    {"field": "service_name"},
    {"field": "channel"},
    {"field": "status"},
]
FORMATS = ("csv", "xlsx", "dbf")
PERIOD = Period("daily", dt.date(2026, 1, 15), ZoneInfo("Europe/Moscow"))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _PeakSampler:
    def __init__(self) -> None:
        self.base = _rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> _PeakSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss())


async def fill(url: str, n: int, batch: int = 10_000) -> None:
    """Insert ``n`` succeeded payments, final within PERIOD, through Core bulk inserts."""
    engine = create_engine(url, timeouts=False)
    sessions = session_factory(engine)
    async with sessions() as session:
        await apply_catalog(session, CATALOG, actor="bench")
        await session.commit()
        pid = await session.scalar(select(Provider.id).where(Provider.code == "bench"))
        sid = await session.scalar(select(Service.id).where(Service.code == "bench-topup"))
        cid = await session.scalar(select(Channel.id).where(Channel.code == "bench-term"))
    assert pid is not None and sid is not None and cid is not None
    step = (PERIOD.end - PERIOD.start) / max(n, 1)
    done = 0
    while done < n:
        rows: list[dict[str, Any]] = []
        for i in range(done, min(done + batch, n)):
            final = PERIOD.start + step * i
            amount = 10_000 + (i * 7919) % 990_000
            rows.append(
                succeeded_row(
                    external_id=f"b-{i}",
                    channel_id=cid,
                    service_id=sid,
                    provider_id=pid,
                    final=final,
                    amount=amount,
                    account=f"{9000000000 + i % 999_999_999}",
                    provider_txn_id=f"T{i}",
                )
            )
        async with sessions() as session:
            await session.execute(insert(Payment), rows)
            await session.commit()
        done += len(rows)
    await engine.dispose()


async def run_register_bench(
    n: int = 1_000_000,
    formats: tuple[str, ...] = FORMATS,
    *,
    database_url: str | None = None,
    work_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """Build an ``n``-payment register in each format; one result dict per format."""
    with tempfile.TemporaryDirectory(prefix="pmxbench-", dir=work_dir) as tmp:
        url = database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        if database_url is None:
            await asyncio.to_thread(upgrade, url)
        t0 = time.perf_counter()
        await fill(url, n)
        fill_s = time.perf_counter() - t0
        engine = create_engine(url, readonly=True, timeouts=False)
        sessions = session_factory(engine, readonly=True)
        async with sessions() as session:
            provider = await session.scalar(select(Provider).where(Provider.code == "bench"))
        assert provider is not None
        results = []
        for fmt in formats:
            cfg = TemplateConfig.model_validate({"columns": COLUMNS})
            path = Path(tmp) / f"register.{fmt}"
            with _PeakSampler() as mem:
                t = time.perf_counter()
                res = await build_register(sessions, provider, "bench", "daily", fmt, cfg, PERIOD, path)
                seconds = time.perf_counter() - t
            results.append(
                {
                    "format": fmt,
                    "payments": res.rows,
                    "seconds": round(seconds, 2),
                    "rows_per_second": round(res.rows / seconds) if seconds else None,
                    "file_bytes": path.stat().st_size,
                    "peak_rss_increase_mib": round((mem.peak - mem.base) / 2**20, 1),
                    "fill_seconds": round(fill_s, 1),
                }
            )
            path.unlink()
        await engine.dispose()
    return results


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 1_000_000
    for row in asyncio.run(run_register_bench(n)):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
