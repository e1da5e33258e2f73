"""The dashboard: today's payments (the user's day), success rate, turnover, providers' state, alerts;
charts of today's turnover by hour and provider, success rate and queue depth by provider.

Agent users see only their channels' payments and what ``paymux.payments.visibility`` lets them see:
no provider information, no delivery state (payments needing attention). Breaker states are this
process's (``paymux serve`` runs the workers in the same process).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth import permissions as P
from paymux.auth.access import zone
from paymux.auth.principal import Principal
from paymux.backoffice.charts import Series, chart, top_series
from paymux.backoffice.framework import (
    OPERATIONS,
    MenuEntry,
    ReadDbDep,
    Section,
    bo_settings,
    language_of,
    register,
    render,
    require_before_reading,
    section_router,
)
from paymux.backoffice.i18n import translator
from paymux.backoffice.sections.ops import money_for, plain_money_for, today_start
from paymux.backoffice.sections.queues import attention_count
from paymux.catalog.models import Provider
from paymux.db.base import utcnow
from paymux.ledger.models import Account
from paymux.payments.activity import OPEN_STATUSES, outcomes_by_provider, queue_by_provider, turnover_by_hour
from paymux.payments.models import Payment
from paymux.payments.visibility import payment_scope
from paymux.runtime import Hub

router = section_router()
register(
    Section(
        "dashboard",
        router,
        menu=(MenuEntry("Dashboard", "/backoffice/dashboard", P.PAYMENTS_READ, 1, area=OPERATIONS),),
        permissions=(P.PAYMENTS_READ,),
    )
)

TURNOVER_TITLES = {
    "provider": "Turnover today by provider, {currency}",
    "service": "Turnover today by service, {currency}",
}
Reader = Annotated[Principal, Depends(require_before_reading(P.PAYMENTS_READ))]


@dataclass
class Today:
    by_status: dict[str, int]
    total: int
    success_rate: int | None  # percent of today's finished payments that succeeded
    turnover: list[tuple[str, int, int]]  # (currency, succeeded count, amount in minor units)


async def today_stats(session: AsyncSession, scope: set[int] | None, since: dt.datetime) -> Today:
    where = [Payment.created_at >= since]
    if scope is not None:
        where.append(Payment.channel_id.in_(scope or [-1]))
    rows = (
        await session.execute(select(Payment.status, func.count()).where(*where).group_by(Payment.status))
    ).all()
    by_status = {s: int(n) for s, n in rows}
    finished = sum(by_status.get(s, 0) for s in ("succeeded", "failed", "cancelled"))
    rate = None if finished == 0 else (100 * by_status.get("succeeded", 0)) // finished
    turnover = (
        await session.execute(
            select(Payment.currency, func.count(), func.sum(Payment.amount))
            .where(*where, Payment.status == "succeeded")
            .group_by(Payment.currency)
            .order_by(Payment.currency)
        )
    ).all()
    return Today(by_status, sum(by_status.values()), rate, [(c, int(n), int(a or 0)) for c, n, a in turnover])


async def provider_states(hub: Hub) -> list[dict[str, Any]]:
    snap = await hub.catalog.get()
    return [
        {"code": p.code, "name": p.name, "enabled": p.enabled, **hub.breakers.state(p.id, p.breaker)}
        for p in sorted(snap.providers.values(), key=lambda p: p.code)
    ]


async def low_deposits(session: AsyncSession) -> list[dict[str, Any]]:
    """Prepaid providers whose deposit (with overdraft) would not cover the last 24 hours' deliveries."""
    since = utcnow() - dt.timedelta(hours=24)
    out = []
    rows = (
        await session.execute(
            select(Provider, Account)
            .join(Account, (Account.owner_id == Provider.id) & (Account.kind == "provider_deposit"))
            .where(Provider.settlement == "prepaid")
            .order_by(Provider.code, Account.currency)
        )
    ).all()
    for provider, account in rows:
        used = await session.scalar(
            select(func.coalesce(func.sum(Payment.amount), 0)).where(
                Payment.provider_id == provider.id,
                Payment.currency == account.currency,
                Payment.status == "succeeded",
                Payment.final_at >= since,
            )
        )
        available = account.balance + int((provider.overdraft or {}).get(account.currency, 0))
        if available <= 0 or available < int(used or 0):
            out.append(
                {
                    "code": provider.code,
                    "currency": account.currency,
                    "balance": account.balance,
                    "available": available,
                    "day": int(used or 0),
                }
            )
    return out


async def today_charts(
    request: Request, session: AsyncSession, me: Principal, channels: set[int] | None, staff: bool
) -> list[Markup]:
    """Today's turnover by local hour (a series per provider; an agent's: per service, per currency)
    and, for the operator's staff, the success rate and the queue by provider."""
    t = translator(language_of(request))
    tz = zone(me.timezone)
    snap = await request.app.state.hub.catalog.get()
    by = "provider" if staff else "service"
    names = (
        {p.id: p.code for p in snap.providers.values()}
        if staff
        else {s.id: s.code for s in snap.services.values()}
    )
    limit = bo_settings(request).chart_series
    amount = plain_money_for(request)
    day = dt.datetime.now(tz).date()
    hourly = await turnover_by_hour(session, day, tz, by, channels)
    labels = [h.astimezone(tz).strftime("%H:00") for h in hourly.hours]
    charts = []
    for currency, groups in sorted(hourly.amounts.items()):
        series = [
            Series(names.get(g, "?"), v) for g, v in sorted(groups.items(), key=lambda x: names.get(x[0], ""))
        ]
        charts.append(
            chart(
                "stacked",
                t(TURNOVER_TITLES[by], currency=currency),
                labels,
                top_series(series, limit, t("Other")),
                value=functools.partial(_amount_in, amount, currency),
            )
        )
    if not staff:
        return charts
    providers = sorted(snap.providers.values(), key=lambda p: p.code)
    codes = [p.code for p in providers]
    outcomes = await outcomes_by_provider(session, today_start(me.timezone))
    rates = [outcomes[p.id].rate if p.id in outcomes else None for p in providers]
    charts.append(
        chart("bar", t("Success rate today by provider, %"), codes, [Series(t("Success rate, %"), rates)])
    )
    queue = await queue_by_provider(session)
    charts.append(
        chart(
            "stacked",
            t("Queue by provider"),
            codes,
            [Series(t(s), [queue.get(p.id, {}).get(s, 0) for p in providers]) for s in OPEN_STATUSES],
        )
    )
    return charts


def _amount_in(amount: Callable[[int | None, str], str], currency: str, minor: int) -> str:
    return amount(minor, currency)


@router.get("/dashboard")
async def dashboard(request: Request, session: ReadDbDep, me: Reader) -> Response:
    hub: Hub = request.app.state.hub
    scope = await payment_scope(session, me)
    channels = None if scope.channels is None else set(scope.channels)
    today = await today_stats(session, channels, today_start(me.timezone))
    staff = scope.shows("provider")
    providers = (
        await provider_states(hub) if staff and (me.can(P.ROUTING_READ) or me.can(P.MONITORING_READ)) else []
    )
    deposits = await low_deposits(session) if staff and me.can(P.BALANCES_READ) else []
    attention = await attention_count(session, channels) if scope.shows("needs_attention") else 0
    charts = await today_charts(request, session, me, channels, staff)
    return render(
        request,
        "dashboard/index.html",
        today=today,
        providers=providers,
        open_breakers=[p for p in providers if p["state"] != "closed"],
        deposits=deposits,
        attention=attention,
        charts=charts,
        money=money_for(request),
    )
