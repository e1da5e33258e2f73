"""The dashboard: today's payments (the user's day), success rate, turnover, providers' state, alerts.

Agent users see only their channels' payments and no provider information. Breaker states are this
process's (``paymux serve`` runs the workers in the same process).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth import permissions as P
from paymux.auth.principal import Principal, channel_scope
from paymux.backoffice.framework import (
    MenuEntry,
    ReadDbDep,
    Section,
    register,
    render,
    require_before_reading,
    section_router,
)
from paymux.backoffice.sections.ops import money_for, today_start
from paymux.backoffice.sections.queues import attention_count
from paymux.catalog.models import Provider
from paymux.db.base import utcnow
from paymux.ledger.models import Account
from paymux.payments.models import Payment
from paymux.runtime import Hub

router = section_router()
register(
    Section(
        "dashboard",
        router,
        menu=(MenuEntry("Dashboard", "/backoffice/dashboard", P.PAYMENTS_READ, 1),),
        permissions=(P.PAYMENTS_READ,),
    )
)

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


@router.get("/dashboard")
async def dashboard(request: Request, session: ReadDbDep, me: Reader) -> Response:
    hub: Hub = request.app.state.hub
    scope = await channel_scope(session, me)
    today = await today_stats(session, scope, today_start(me.timezone))
    staff = scope is None
    providers = (
        await provider_states(hub) if staff and (me.can(P.ROUTING_READ) or me.can(P.MONITORING_READ)) else []
    )
    deposits = await low_deposits(session) if staff and me.can(P.BALANCES_READ) else []
    return render(
        request,
        "dashboard/index.html",
        today=today,
        providers=providers,
        open_breakers=[p for p in providers if p["state"] != "closed"],
        deposits=deposits,
        attention=await attention_count(session, scope),
        money=money_for(request),
    )
