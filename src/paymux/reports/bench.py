"""Benchmark of the reports: N succeeded payments over 30 days, 3 providers in 3 timezones, 4 channels
with groups and agents; the time and peak memory of the reports an operator runs most.

Each report's totals are checked against the number and sum of the payments made, so a fast wrong
answer fails the benchmark. Run it as ``python -m paymux.reports.bench 1000000``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from paymux.catalog.file import apply_catalog
from paymux.catalog.models import Channel, Provider, Service
from paymux.db.engine import create_engine, session_factory
from paymux.db.migrate import upgrade
from paymux.payments.models import Payment
from paymux.payments.synthetic import succeeded_row
from paymux.registers.bench import _PeakSampler
from paymux.reports.comparison import compare
from paymux.reports.turnover import PROVIDER_TZ, TurnoverQuery, turnover

FIRST = dt.date(2026, 1, 1)
DAYS = 30
ZONES = {"rb1": "Europe/Moscow", "rb2": "UTC", "rb3": "Asia/Kolkata"}
CATALOG: dict[str, Any] = {
    "channel_groups": [{"code": "rb-self", "name": "Self-service"}, {"code": "rb-web", "name": "Online"}],
    "agents": [{"code": "rb-dealer", "name": "Dealer"}],
    "providers": [
        {"code": c, "name": c, "protocol": "jsonhttp", "config": {"url": "http://127.0.0.1:9"}, "timezone": z}
        for c, z in ZONES.items()
    ],
    "channels": [
        {"code": f"rb-ch{i}", "name": f"Channel {i}", "kind": "terminal", "group": g, **extra}
        for i, (g, extra) in enumerate(
            [
                ("rb-self", {"agent": "rb-dealer"}),
                ("rb-self", {"agent": "rb-dealer"}),
                ("rb-web", {}),
                ("rb-web", {}),
            ]
        )
    ],
    "services": [
        {
            "code": f"rb-s{i}",
            "name": f"Service {i}",
            "currency": "RUB",
            "route": {"strategy": "priority", "candidates": [{"provider": "rb1", "code": "S"}]},
        }
        for i in range(3)
    ],
}


async def fill(url: str, n: int, batch: int = 10_000) -> int:
    """Insert ``n`` succeeded payments spread over the 30 days; returns the sum of their amounts."""
    engine = create_engine(url, timeouts=False)
    sessions = session_factory(engine)
    async with sessions() as session:
        await apply_catalog(session, CATALOG, actor="bench")
        await session.commit()
        providers = list((await session.scalars(select(Provider.id).order_by(Provider.code))).all())
        services = list((await session.scalars(select(Service.id).order_by(Service.code))).all())
        channels = list((await session.scalars(select(Channel.id).order_by(Channel.code))).all())
    start = dt.datetime.combine(FIRST, dt.time(), dt.UTC)
    step = dt.timedelta(days=DAYS) / max(n, 1)
    total = 0
    for done in range(0, n, batch):
        rows = []
        for i in range(done, min(done + batch, n)):
            final = start + step * i
            amount = 1_000 + (i * 7919) % 500_000
            total += amount
            rows.append(
                succeeded_row(
                    external_id=f"rb-{i}",
                    channel_id=channels[i % len(channels)],
                    service_id=services[(i // 7) % len(services)],
                    provider_id=providers[(i // 3) % len(providers)],
                    final=final,
                    amount=amount,
                    commission=amount // 200,
                    provider_service_code="S",
                )
            )
        async with sessions() as session:
            await session.execute(insert(Payment), rows)
            await session.commit()
    await engine.dispose()
    return total


REPORTS: list[tuple[str, dict[str, Any]]] = [
    ("30 days by provider and day, providers' timezones", {"group_by": ("provider",), "grain": "day"}),
    ("30 days by provider, service and channel", {"group_by": ("provider", "service", "channel")}),
    (
        "30 days by channel group and agent, by month",
        {"group_by": ("channel_group", "agent"), "grain": "month"},
    ),
    ("one day by channel", {"group_by": ("channel",), "one_day": True}),
]


async def run_report_bench(
    n: int = 1_000_000, *, database_url: str | None = None, work_dir: Path | None = None
) -> list[dict[str, Any]]:
    """Fill ``n`` payments and time each report (one result dict per report, then the comparison)."""
    with tempfile.TemporaryDirectory(prefix="pmxreports-", dir=work_dir) as tmp:
        url = database_url or f"sqlite+aiosqlite:///{tmp}/reports.db"
        if database_url is None:
            await asyncio.to_thread(upgrade, url)
        t0 = time.perf_counter()
        amount = await fill(url, n)
        fill_s = round(time.perf_counter() - t0, 1)
        engine = create_engine(url, readonly=True, timeouts=False)
        sessions = session_factory(engine, readonly=True)
        results = []
        last = FIRST + dt.timedelta(days=DAYS + 1)  # the Kolkata and Moscow days run past the UTC ones
        first = FIRST - dt.timedelta(days=1)
        for name, spec in REPORTS:
            one_day = spec.get("one_day", False)
            q = TurnoverQuery(
                FIRST + dt.timedelta(days=10) if one_day else first,
                FIRST + dt.timedelta(days=10) if one_day else last,
                spec["group_by"],
                spec.get("grain", ""),
                "UTC" if one_day else PROVIDER_TZ,
            )
            async with sessions() as session:
                with _PeakSampler() as mem:
                    t = time.perf_counter()
                    report = await turnover(session, q)
                    seconds = time.perf_counter() - t
            counted = sum(x.payments for x in report.totals)
            if not one_day and (counted != n or sum(x.amount for x in report.totals) != amount):
                raise AssertionError(f"report {name!r} counted {counted} of {n} payments")
            results.append(_result(name, seconds, len(report.rows), counted, mem, fill_s))
        q = TurnoverQuery(dt.date(2026, 1, 1), dt.date(2026, 1, 31), ("provider",), "", PROVIDER_TZ)
        async with sessions() as session:
            with _PeakSampler() as mem:
                t = time.perf_counter()
                cmp = await compare(session, q, earlier=3, measure="amount")
                seconds = time.perf_counter() - t
        results.append(
            _result("January by provider against 3 earlier months", seconds, len(cmp.rows), None, mem, fill_s)
        )
        await engine.dispose()
    return results


def _result(
    name: str, seconds: float, rows: int, payments: int | None, mem: Any, fill_s: float
) -> dict[str, Any]:
    return {
        "report": name,
        "seconds": round(seconds, 3),
        "rows": rows,
        "payments": payments,
        "peak_rss_increase_mib": round((mem.peak - mem.base) / 2**20, 1),
        "fill_seconds": fill_s,
    }


if __name__ == "__main__":
    print(
        json.dumps(
            asyncio.run(run_report_bench(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)), indent=2
        )
    )
