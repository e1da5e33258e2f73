"""Helpers of the reconciliation tests: real payments of p1 in a closed period, provider files, mappings."""

from __future__ import annotations

import contextlib
import copy
import csv
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from harness import Env, hub_env
from paymux.catalog.models import Provider
from paymux.money import format_amount
from paymux.payments.models import Payment
from paymux.reconciliation import service
from paymux.reconciliation.matcher import Period as ReconPeriod
from paymux.reconciliation.models import Reconciliation
from paymux.registers.schedule import Period
from registers_helpers import TZ, catalog, make_payments, place_in_period, yesterday

FAILING = "9001234505"  # p1 refuses this account for good: that payment fails

MAPPING: dict[str, Any] = {
    "format": "csv",
    "id_column": "Txn",
    "id_kind": "payment_id",
    "amount_column": "Sum",
    "decimal_separator": ",",
    "thousands_separator": " ",
    "currency": "RUB",
    "date_column": "Date",
    "date_formats": ["%d.%m.%Y %H:%M:%S"],
    "status_column": "State",
    "status_map": {"OK": "succeeded", "ERR": "failed"},
    "account_column": "Account",
    "post": {"channel": "web", "service": "topup"},
}


def single_route_catalog() -> dict[str, Any]:
    """Registers' catalog (p1 in Moscow time) with p1 the only route, so a refused payment fails at p1."""
    cat = copy.deepcopy(catalog())
    cat["services"][0]["route"]["candidates"] = [{"provider": "p1", "code": "T1"}]
    return cat


@contextlib.asynccontextmanager
async def recon_env(db_url: str, n: int = 8) -> AsyncIterator[Env]:
    """A hub with ``n`` real payments of p1 (one of them failed) final in yesterday (Moscow)."""
    emus = {"p1": {"accounts": {FAILING: {"pay": "fatal:5:account not found"}}}}
    async with hub_env(db_url, catalog=single_route_catalog(), emulators=emus) as env:
        ids = await make_payments(env, n)
        period = yesterday()
        await place_in_period(env.hub, ids, period)
        env.extra["ids"] = ids
        env.extra["period"] = period
        yield env


def recon_period(period: Period) -> ReconPeriod:
    return ReconPeriod(period.first, period.last, TZ)


async def payments(env: Env) -> list[Payment]:
    async with env.hub.read_sessions() as session:
        rows = await session.scalars(
            select(Payment).where(Payment.id.in_(env.extra["ids"])).order_by(Payment.id)
        )
        return list(rows.all())


async def provider(env: Env, code: str = "p1") -> Provider:
    async with env.hub.read_sessions() as session:
        p = await session.scalar(select(Provider).where(Provider.code == code))
    assert p is not None
    return p


def money(minor: int) -> str:
    """150 000,25 (space thousands, comma decimals), like the test mapping reads."""
    whole, frac = format_amount(minor, "RUB").split(".")
    return f"{int(whole):,}".replace(",", " ") + "," + frac


def write_csv(path: Path, rows: Sequence[Sequence[Any]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(["Txn", "Date", "Account", "Sum", "State"])
        w.writerows(rows)
    return path


def line_of(p: Payment, *, amount: int | None = None, state: str = "OK") -> list[Any]:
    assert p.final_at is not None
    return [
        str(p.id),
        p.final_at.astimezone(TZ).strftime("%d.%m.%Y %H:%M:%S"),
        p.account,
        money(p.amount if amount is None else amount),
        state,
    ]


async def set_mapping(env: Env, mapping: dict[str, Any] | None = None, code: str = "p1") -> None:
    prov = await provider(env, code)
    async with env.hub.sessions() as session:
        await service.save_mapping(session, prov, mapping or MAPPING, "test")
        await session.commit()


async def reconcile(env: Env, path: Path, code: str = "p1") -> Reconciliation:
    prov = await provider(env, code)
    async with env.hub.sessions() as session:
        recon = await service.import_register(
            session,
            prov,
            path,
            recon_period(env.extra["period"]),
            file_name=path.name,
            source="upload",
            actor="test",
        )
        await session.commit()
        return recon


__all__ = ["TZ", "make_payments", "place_in_period", "yesterday"]
