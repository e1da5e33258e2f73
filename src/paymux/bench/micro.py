"""In-process microbenchmarks of the hub's pure decisions (no HTTP, no database on the clock).

The demo catalog (``paymux/demo/catalog.yaml``) is applied to a scratch SQLite database and loaded
as the hub loads it (:func:`paymux.catalog.snapshot.load_snapshot`). Then, each for a fixed time:

* ``route_plan_per_s``: look the service and channel up in the snapshot and plan the route
  (:func:`paymux.routing.engine.plan_route`, remuneration tariffs of every candidate included);
* ``pricing_per_s``: the payer's fee and the dealer's commission under the tariffs in force
  (:func:`paymux.payments.service.price`: two tariff lookups and two :func:`~paymux.tariffs.calc.compute`);
* ``tariff_compute_per_s``: :func:`paymux.tariffs.calc.compute` alone, on the demo's tiered fee rule.

The requests cycle through a fixed mix of the demo's services, channels and amounts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# (service, channel, amount in minor units): every route strategy and criterion of the demo catalog
MIX: tuple[tuple[str, str, int], ...] = (
    ("mts-topup", "atm-001", 15_000),
    ("mts-topup", "ibank", 250_000),
    ("beeline-topup", "term-014", 50_000),
    ("megafon-topup", "mobile", 30_000),
    ("tele2-topup", "cashier-01", 10_000),
    ("mosenergo", "atm-001", 6_000_000),
    ("mosvodokanal", "ibank", 120_000),
    ("rostelecom", "term-014", 90_000),
    ("tricolor-tv", "atm-001", 150_000),
    ("steam-wallet", "mobile", 100_000),
    ("enel-ro", "atm-001", 4_500),
    ("digi-ro", "ibank", 2_000),
)


async def _load_demo_snapshot(work_dir: Path) -> Any:
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from paymux.catalog.file import apply_catalog
    from paymux.catalog.snapshot import load_snapshot
    from paymux.db.migrate import upgrade
    from paymux.demo.run import demo_catalog

    url = f"sqlite+aiosqlite:///{work_dir / 'micro.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = create_async_engine(url)
    try:
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session:  # as the demo applies it (with its generated provider keys)
            await apply_catalog(session, demo_catalog(), actor="bench")
            await session.commit()
        async with sessions() as session:
            t0 = time.perf_counter()
            snap = await load_snapshot(session)
            load_ms = (time.perf_counter() - t0) * 1000
        return snap, load_ms
    finally:
        await engine.dispose()


def _rate(fn: Callable[[int], object], seconds: float) -> float:
    """Calls per second of ``fn(i)`` over about ``seconds`` (in rounds of 500 calls)."""
    fn(0)  # warm up caches (regexes, zoneinfo, ...)
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        for i in range(n, n + 500):
            fn(i)
        n += 500
        now = time.perf_counter()
        if now >= deadline:
            return round(n / (now - t0), 1)


async def run_micro(work_dir: Path, seconds: float) -> dict[str, Any]:
    from paymux.routing.breaker import BreakerBoard
    from paymux.routing.engine import plan_route
    from paymux.tariffs.calc import compute

    snap, load_ms = await _load_demo_snapshot(work_dir)
    at = dt.datetime.now(dt.UTC).replace(hour=12)  # inside every candidate's hours
    breakers = BreakerBoard()
    mix = MIX

    def route(i: int) -> object:
        service_code, channel_code, amount = mix[i % len(mix)]
        service = snap.services[service_code]
        channel = snap.channels_by_code[channel_code]
        return plan_route(snap, service, channel, amount, at, breakers)

    price_impl = "paymux.payments.service.price"
    try:
        from paymux.payments.service import price

        def pricing(i: int) -> object:
            service_code, channel_code, amount = mix[i % len(mix)]
            return price(snap, snap.services[service_code], snap.channels_by_code[channel_code], amount, at)

        pricing(0)
    except Exception:  # the hot path is being reworked: fall back to the same arithmetic done here
        price_impl = "snapshot.tariff + tariffs.calc.compute"

        def pricing(i: int) -> object:
            service_code, channel_code, amount = mix[i % len(mix)]
            service, channel = snap.services[service_code], snap.channels_by_code[channel_code]
            out = []
            for kind in ("fee", "commission"):
                t = snap.tariff(
                    kind, currency=service.currency, at=at, service_id=service.id, channel=channel
                )
                out.append(compute(t.rule, amount) if t else 0)
            return out

    fee_rules = [t.rule for t in snap.tariffs.get("fee", []) if t.currency == "RUB"]
    amounts = [amount for _, _, amount in mix]

    def tariff(i: int) -> object:
        return compute(fee_rules[i % len(fee_rules)], amounts[i % len(amounts)])

    return {
        "catalog": "paymux/demo/catalog.yaml",
        "snapshot_load_ms": round(load_ms, 2),
        "route_plan_per_s": _rate(route, seconds),
        "pricing_per_s": _rate(pricing, seconds),
        "pricing_impl": price_impl,
        "tariff_compute_per_s": _rate(tariff, seconds) if fee_rules else 0.0,
        "seconds_each": seconds,
    }
