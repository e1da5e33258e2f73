"""Deposits of prepaid providers: current balances and their history by hour or day, from the ledger."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.snapshot import ProviderView, Snapshot
from paymux.ledger.models import Account, Posting
from paymux.settlement.buckets import periods, quarter_of, quarter_start, spread
from paymux.settlement.models import BalanceAlertRule

DEPOSIT = "provider_deposit"


@dataclass(slots=True)
class Deposit:
    provider: ProviderView
    currency: str
    balance: int
    overdraft: int
    rule: BalanceAlertRule | None

    @property
    def available(self) -> int:
        """What may still be spent: the balance plus the overdraft."""
        return self.balance + self.overdraft

    @property
    def low(self) -> bool:
        return self.rule is not None and self.rule.enabled and self.balance < self.rule.threshold


@dataclass(slots=True)
class Point:
    start: dt.datetime  # UTC
    end: dt.datetime
    opening: int
    inflow: int  # top-ups, reversals of failed payments
    outflow: int  # payments (a positive number)
    closing: int


def dialect_of(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def prepaid_providers(snap: Snapshot) -> list[ProviderView]:
    return sorted((p for p in snap.providers.values() if p.settlement == "prepaid"), key=lambda p: p.code)


async def deposits(session: AsyncSession, snap: Snapshot) -> list[Deposit]:
    """Every prepaid provider's deposit per currency (one with an account, an overdraft or an alert rule)."""
    providers = prepaid_providers(snap)
    ids = [p.id for p in providers]
    if not ids:
        return []
    accounts = {
        (a.owner_id, a.currency): a.balance
        for a in (
            await session.scalars(select(Account).where(Account.kind == DEPOSIT, Account.owner_id.in_(ids)))
        ).all()
    }
    rules = {
        (r.provider_id, r.currency): r
        for r in (
            await session.scalars(select(BalanceAlertRule).where(BalanceAlertRule.provider_id.in_(ids)))
        ).all()
    }
    out: list[Deposit] = []
    for p in providers:
        currencies = (
            {c for (pid, c) in accounts if pid == p.id}
            | {c for (pid, c) in rules if pid == p.id}
            | set(p.overdraft)
        )
        for c in sorted(currencies):
            out.append(
                Deposit(p, c, accounts.get((p.id, c), 0), int(p.overdraft.get(c, 0)), rules.get((p.id, c)))
            )
    return out


async def deposit_balance(session: AsyncSession, provider_id: int, currency: str) -> int:
    found = await session.scalar(
        select(Account.balance).where(
            Account.kind == DEPOSIT, Account.owner_id == provider_id, Account.currency == currency
        )
    )
    return int(found or 0)


async def history(
    session: AsyncSession,
    provider_id: int,
    currency: str,
    start: dt.datetime,
    end: dt.datetime,
    granularity: str,
    tz: ZoneInfo,
    *,
    kind: str = DEPOSIT,
) -> list[Point]:
    """The account's opening/closing balance, inflow and outflow per local hour or day of [start, end)."""
    bounds = periods(start, end, granularity, tz)
    account = await session.scalar(
        select(Account).where(
            Account.kind == kind, Account.owner_id == provider_id, Account.currency == currency
        )
    )
    if account is None:
        return [Point(a, b, 0, 0, 0, 0) for a, b in itertools.pairwise(bounds)]
    later = await session.scalar(
        select(func.coalesce(func.sum(Posting.amount), 0)).where(
            Posting.account_id == account.id, Posting.created_at >= bounds[-1]
        )
    )
    q = quarter_of(dialect_of(session), Posting.created_at).label("q")
    rows = (
        await session.execute(
            select(
                q,
                func.sum(case((Posting.amount > 0, Posting.amount), else_=0)),
                func.sum(case((Posting.amount < 0, -Posting.amount), else_=0)),
            )
            .where(
                Posting.account_id == account.id,
                Posting.created_at >= bounds[0],
                Posting.created_at < bounds[-1],
            )
            .group_by(q)
        )
    ).all()
    inflow = spread(bounds, ((quarter_start(r[0]), int(r[1])) for r in rows))
    outflow = spread(bounds, ((quarter_start(r[0]), int(r[2])) for r in rows))
    closing = account.balance - int(later or 0)
    opening = closing - sum(inflow) + sum(outflow)
    out: list[Point] = []
    for i in range(len(bounds) - 1):
        close = opening + inflow[i] - outflow[i]
        out.append(Point(bounds[i], bounds[i + 1], opening, inflow[i], outflow[i], close))
        opening = close
    return out
