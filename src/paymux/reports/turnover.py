"""Turnover and remuneration of succeeded payments, grouped by any combination of provider, service,
channel, channel group, agent, project (of the service) and manager (of the channel, else of its
agent), per local day or month, in one timezone or each provider's own.

A payment counts on the local day it became final (succeeded), as in the providers' registers and in
the debts to them. Sums are kept per currency, never added across currencies. SQL sums by the
chosen catalog ids (and by 15-minute UTC buckets when a day or month grain is asked for); Python
turns ids into codes and buckets into local days (see :mod:`paymux.settlement.buckets`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.user_models import User
from paymux.catalog.models import Agent, Channel, ChannelGroup, Provider, Service
from paymux.payments.models import Payment
from paymux.settlement.balances import dialect_of
from paymux.settlement.buckets import day_bounds, quarter_of, quarter_start

PROVIDER_TZ = "provider"  # TurnoverQuery.timezone: each payment's day in its provider's timezone
MAX_DAYS = 400
GRAINS = ("", "day", "month")
MEASURES = ("payments", "amount", "fee", "total", "remuneration", "commission")
# English column titles of the dimensions and measures (msgids: the back office translates them)
TITLES = {
    "provider": "Provider",
    "service": "Service",
    "channel": "Channel",
    "channel_group": "Channel group",
    "agent": "Agent",
    "project": "Project",
    "manager": "Manager",
    "payments": "Payments",
    "amount": "Amount",
    "fee": "Fee",
    "total": "Total collected",
    "remuneration": "Remuneration",
    "commission": "Commission",
}


@dataclass(frozen=True)
class Dimension:
    """A way to group payments (joined with their channel, its agent and the service)."""

    column: Any  # the value grouped by: an id of ``model``, or the code itself when ``model`` is None
    model: Any = None  # the table whose row the id names
    code_attr: str = "code"  # that table's column naming it
    name_attr: str = "name"

    @property
    def code_column(self) -> Any:
        return self.column if self.model is None else getattr(self.model, self.code_attr)

    def matching(self, code: str) -> Any:
        """Payments whose value of this dimension is ``code``."""
        if self.model is None:
            return self.column == code
        return self.column.in_(select(self.model.id).where(self.code_column == code))

    async def codes(self, session: AsyncSession) -> dict[Any, str]:
        """Value grouped by -> its code ("" for none)."""
        out: dict[Any, str] = {None: ""}
        if self.model is None:
            return out | {v: v for v in (await session.scalars(select(self.column).distinct())).all() if v}
        rows = (await session.execute(select(self.model.id, self.code_column))).all()
        return out | {i: c for i, c in rows}

    async def choices(self, session: AsyncSession) -> list[tuple[str, str]]:
        """(code, "code · name") of every value, for filters."""
        if self.model is None:
            values = (await session.scalars(select(self.column).distinct().order_by(self.column))).all()
            return [(v, v) for v in values if v]
        name = getattr(self.model, self.name_attr)
        rows = (await session.execute(select(self.code_column, name).order_by(self.code_column))).all()
        return [(c, f"{c} · {n}" if n else c) for c, n in rows]


DIMENSIONS: dict[str, Dimension] = {
    "provider": Dimension(Payment.provider_id, Provider),
    "service": Dimension(Payment.service_id, Service),
    "channel": Dimension(Payment.channel_id, Channel),
    "channel_group": Dimension(Channel.group_id, ChannelGroup),
    "agent": Dimension(Channel.agent_id, Agent),
    "project": Dimension(Service.project),
    "manager": Dimension(
        func.coalesce(Channel.manager_id, Agent.manager_id), User, code_attr="username", name_attr="full_name"
    ),
}
STAFF_ONLY = frozenset({"provider", "manager"})  # not shown to agents' users


class ReportError(ValueError):
    """A report asked for with parameters that cannot be answered (the message says which)."""


def zone_named(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ReportError(f"unknown timezone {name!r}") from e


@dataclass(frozen=True)
class TurnoverQuery:
    first: dt.date
    last: dt.date
    group_by: tuple[str, ...] = ()
    grain: str = ""  # "", "day" or "month"
    timezone: str = "UTC"  # an IANA name, or PROVIDER_TZ
    filters: Mapping[str, str] = field(default_factory=dict)  # dimension -> code
    channels: frozenset[int] | None = None  # only these channels (an agent's); None: all

    def check(self) -> None:
        if self.first > self.last:
            raise ReportError("the period starts after it ends")
        if (self.last - self.first).days >= MAX_DAYS:
            raise ReportError(f"a report covers at most {MAX_DAYS} days")
        for d in (*self.group_by, *self.filters):
            if d not in DIMENSIONS:
                raise ReportError(f"unknown dimension {d!r} (known: {', '.join(DIMENSIONS)})")
        if len(set(self.group_by)) != len(self.group_by):
            raise ReportError("a dimension is grouped by twice")
        if self.grain not in GRAINS:
            raise ReportError(f"unknown grain {self.grain!r} (day or month)")
        if self.timezone != PROVIDER_TZ:
            zone_named(self.timezone)

    def shifted(self, first: dt.date, last: dt.date) -> TurnoverQuery:
        return dataclasses.replace(self, first=first, last=last)


@dataclass(slots=True)
class TurnoverRow:
    keys: tuple[str, ...]  # a code per grouped dimension ("" where a channel has no group or agent)
    period: str  # "2026-12-01" (day), "2026-12" (month) or "" (the whole period)
    currency: str
    payments: int = 0
    amount: int = 0  # delivered to providers, minor units
    fee: int = 0  # charged to payers
    total: int = 0  # collected by channels (amount + fee)
    remuneration: int = 0  # paid to us by providers
    commission: int = 0  # owed to agents

    def add(self, other: TurnoverRow) -> None:
        for f in MEASURES:
            setattr(self, f, getattr(self, f) + getattr(other, f))

    def measure(self, name: str) -> int:
        return int(getattr(self, name))


@dataclass
class Turnover:
    query: TurnoverQuery
    rows: list[TurnoverRow]
    totals: list[TurnoverRow]  # one per currency


def _sums() -> list[Any]:
    return [
        func.count(),
        func.sum(Payment.amount),
        func.sum(Payment.fee),
        func.sum(Payment.total),
        func.sum(Payment.remuneration),
        func.sum(Payment.commission),
    ]


async def _zones(session: AsyncSession, q: TurnoverQuery) -> list[tuple[ZoneInfo, list[int] | None]]:
    """(timezone, provider ids in it or None for all) to query."""
    if q.timezone != PROVIDER_TZ:
        return [(zone_named(q.timezone), None)]
    rows = (await session.execute(select(Provider.id, Provider.timezone))).all()
    by_zone: dict[str, list[int]] = defaultdict(list)
    for pid, tz in rows:
        by_zone[tz or "UTC"].append(pid)
    return [(zone_named(tz), ids) for tz, ids in sorted(by_zone.items())]


async def _codes(session: AsyncSession, dims: tuple[str, ...]) -> dict[str, dict[Any, str]]:
    return {d: await DIMENSIONS[d].codes(session) for d in dims}


def _period(day: dt.date, grain: str) -> str:
    return day.isoformat() if grain == "day" else day.strftime("%Y-%m") if grain == "month" else ""


async def turnover(session: AsyncSession, q: TurnoverQuery) -> Turnover:
    """The report: one row per group (and local day or month), sorted by period, codes and currency."""
    q.check()
    dims = q.group_by
    labels = [DIMENSIONS[d].column.label(d) for d in dims]
    quarter = quarter_of(dialect_of(session), Payment.final_at).label("q")
    groups: list[Any] = [*labels, Payment.currency] + ([quarter] if q.grain else [])
    where: list[Any] = [Payment.status == "succeeded"]
    for d, code in q.filters.items():
        where.append(DIMENSIONS[d].matching(code))
    if q.channels is not None:
        where.append(Payment.channel_id.in_(sorted(q.channels) or [-1]))
    codes = await _codes(session, dims)
    merged: dict[tuple[tuple[str, ...], str, str], TurnoverRow] = {}
    for tz, providers in await _zones(session, q):
        start, end = day_bounds(q.first, q.last, tz)
        stmt = (
            select(*groups, *_sums())
            .select_from(Payment)
            .join(Channel, Channel.id == Payment.channel_id)
            .outerjoin(Agent, Agent.id == Channel.agent_id)
            .join(Service, Service.id == Payment.service_id)
            .where(*where, Payment.final_at >= start, Payment.final_at < end)
            .group_by(*groups)
        )
        if providers is not None:
            stmt = stmt.where(Payment.provider_id.in_(providers))
        for r in (await session.execute(stmt)).all():
            keys = tuple(codes[d].get(r[i], "?") for i, d in enumerate(dims))
            currency = r[len(dims)]
            period = ""
            if q.grain:
                period = _period(quarter_start(r[len(dims) + 1]).astimezone(tz).date(), q.grain)
            n, amount, fee, total, remuneration, commission = (int(v or 0) for v in r[-6:])
            row = TurnoverRow(keys, period, currency, n, amount, fee, total, remuneration, commission)
            k = (keys, period, currency)
            if k in merged:
                merged[k].add(row)
            else:
                merged[k] = row
    rows = sorted(merged.values(), key=lambda r: (r.period, r.keys, r.currency))
    return Turnover(q, rows, totals_by_currency(rows))


def period_labels(q: TurnoverQuery) -> list[str]:
    """Every period of the query, as rows name them: each local day first..last (grain "day"), each
    month touching them ("month"), or the one whole period ("" grain: ``[""]``)."""
    if not q.grain:
        return [""]
    out: list[str] = []
    day = q.first
    while day <= q.last:
        label = _period(day, q.grain)
        if not out or out[-1] != label:
            out.append(label)
        day += dt.timedelta(days=1)
    return out


def totals_by_currency(rows: list[TurnoverRow]) -> list[TurnoverRow]:
    totals: dict[str, TurnoverRow] = {}
    for r in rows:
        t = totals.setdefault(r.currency, TurnoverRow((), "", r.currency))
        t.add(r)
    return [totals[c] for c in sorted(totals)]


def measures_for(agent_scoped: bool) -> tuple[str, ...]:
    """The measures a viewer is shown: an agent sees its turnover and commission, not our remuneration."""
    return tuple(m for m in MEASURES if not (agent_scoped and m == "remuneration"))
