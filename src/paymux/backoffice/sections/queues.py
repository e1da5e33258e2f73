"""Payment queues: unfinished payments grouped by service, provider and status, refreshed live.

The page reloads itself every few seconds through the ``Refresh`` response header (no script, so the
strict CSP stays as it is); ``?live=0`` stops it. ``?export=xlsx`` downloads the three groupings.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import case, func, select
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
from paymux.backoffice.sections.ops import workbook
from paymux.catalog.models import Provider, Service
from paymux.db.base import utcnow
from paymux.payments.models import FINAL_STATUSES, Payment

router = section_router()
register(
    Section(
        "queues",
        router,
        menu=(MenuEntry("Payment queues", "/backoffice/queues", P.PAYMENTS_READ, 21),),
        permissions=(P.PAYMENTS_READ,),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.PAYMENTS_READ))]
REFRESH_SECONDS = 5
HEADER = ["Group", "Unfinished", "Due now", "In doubt", "Needs attention", "Oldest"]


async def queue_groups(
    session: AsyncSession, scope: set[int] | None, now: dt.datetime
) -> dict[str, list[list[Any]]]:
    """Unfinished payments by service, provider, status: [group, count, due, in doubt, attention, oldest]."""
    base = [Payment.status.not_in(FINAL_STATUSES)]
    if scope is not None:
        base.append(Payment.channel_id.in_(scope or [-1]))
    measures = (
        func.count(),
        func.sum(case((Payment.next_attempt_at <= now, 1), else_=0)),
        func.sum(case((Payment.in_doubt.is_(True), 1), else_=0)),
        func.sum(case((Payment.needs_attention.is_(True), 1), else_=0)),
        func.min(Payment.created_at),
    )
    out: dict[str, list[list[Any]]] = {}
    for key, label, joins in (
        ("service", Service.code, (Service, Service.id == Payment.service_id)),
        ("provider", Provider.code, (Provider, Provider.id == Payment.provider_id)),
        ("status", Payment.status, None),
    ):
        q = select(label, *measures).where(*base).group_by(label).order_by(label)
        if joins is not None:
            q = q.join(*joins)
        rows = (await session.execute(q)).all()
        out[key] = [
            [g, int(n), int(d or 0), int(i or 0), int(a or 0), oldest] for g, n, d, i, a, oldest in rows
        ]
    return out


async def attention_count(session: AsyncSession, scope: set[int] | None) -> int:
    q = select(func.count()).select_from(Payment).where(Payment.needs_attention.is_(True))
    if scope is not None:
        q = q.where(Payment.channel_id.in_(scope or [-1]))
    return int(await session.scalar(q) or 0)


@router.get("/queues")
async def queues(request: Request, session: ReadDbDep, me: Reader) -> Response:
    scope = await channel_scope(session, me)
    now = utcnow()
    groups = await queue_groups(session, scope, now)
    attention = await attention_count(session, scope)
    if request.query_params.get("export") == "xlsx":
        return workbook(
            request,
            "queues",
            [
                ("By service", HEADER, groups["service"]),
                ("By provider", HEADER, groups["provider"]),
                ("By status", HEADER, groups["status"]),
            ],
        )
    live = request.query_params.get("live", "1") != "0"
    response = render(
        request,
        "queues/index.html",
        groups=groups,
        attention=attention,
        live=live,
        now=now,
        refresh=REFRESH_SECONDS,
    )
    if live:
        response.headers["Refresh"] = str(REFRESH_SECONDS)
    return response
