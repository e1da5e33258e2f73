"""Helpers of the register tests: real payments through the hub, placed in a known period."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from harness import BASE_CATALOG, Env
from paymux.catalog.models import Provider
from paymux.payments.models import Payment
from paymux.registers.schedule import Period
from paymux.runtime import Hub

TZ = ZoneInfo("Europe/Moscow")


def catalog() -> dict[str, Any]:
    """The harness catalog with p1 in Moscow time and a Cyrillic service name (for DBF encodings)."""
    cat = copy.deepcopy(BASE_CATALOG)
    cat["providers"][0]["timezone"] = "Europe/Moscow"
    cat["services"][0]["name"] = "Пополнение мобильного"
    return cat


def yesterday(tz: ZoneInfo = TZ) -> Period:
    """The last day in ``tz`` whose registers may be built: over for at least the settle time
    (five minutes) - in the first minutes after midnight in ``tz`` that is the day before."""
    day = Period("daily", dt.datetime.now(tz).date() - dt.timedelta(days=1), tz)
    if day.end + dt.timedelta(seconds=300) > dt.datetime.now(dt.UTC):
        day = Period("daily", day.first - dt.timedelta(days=1), tz)
    return day


async def make_payments(env: Env, n: int) -> list[int]:
    """``n`` real payments through the channel API, waited until final; returns their ids."""
    ids: list[tuple[int, str]] = []
    for i in range(n):
        channel = "web" if i % 3 == 0 else "term"
        r = await env.pay(
            channel=channel,
            account=f"90012345{i:02d}",
            amount=f"{100 + i * 7}.{(i * 13) % 100:02d}",
        )
        assert r.status_code in (200, 201, 202), r.text
        ids.append((r.json()["id"], channel))
    for pid, channel in ids:
        assert (await env.wait_final(pid, channel))["status"] in ("succeeded", "failed")
    return [pid for pid, _ in ids]


async def place_in_period(hub: Hub, ids: list[int], period: Period) -> dict[int, dt.datetime]:
    """Move the payments' times into ``period`` (10:00 local + i minutes), the last one to the very
    last microsecond of the period; returns the new final times. Only times change, nothing else."""
    base = dt.datetime.combine(period.first, dt.time(10, 0), tzinfo=period.tz)
    out: dict[int, dt.datetime] = {}
    async with hub.sessions() as session:
        for i, pid in enumerate(ids):
            final = (base + dt.timedelta(minutes=i, seconds=i % 7)).astimezone(dt.UTC)
            if i == len(ids) - 1:
                final = period.end - dt.timedelta(microseconds=1)
            out[pid] = final
            await session.execute(
                update(Payment)
                .where(Payment.id == pid)
                .values(final_at=final, created_at=final - dt.timedelta(seconds=3), updated_at=final)
            )
        await session.commit()
    return out


async def expected_rows(
    hub: Hub, provider: str, period: Period, statuses: tuple[str, ...] = ("succeeded",)
) -> list[Any]:
    """The payments a register of ``provider`` for ``period`` must hold, straight from the table."""
    async with hub.read_sessions() as session:
        pid = await session.scalar(select(Provider.id).where(Provider.code == provider))
        rows = (
            (
                await session.execute(
                    select(Payment)
                    .where(
                        Payment.provider_id == pid,
                        Payment.final_at >= period.start,
                        Payment.final_at < period.end,
                        Payment.status.in_(statuses),
                    )
                    .order_by(Payment.final_at, Payment.id)
                )
            )
            .scalars()
            .all()
        )
    return list(rows)
