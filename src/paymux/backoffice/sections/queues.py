"""Payment queues: unfinished payments grouped by service, provider and status, refreshed live.

The page reloads itself every few seconds through the ``Refresh`` response header (no script, so the
strict CSP stays as it is); ``?live=0`` stops it. ``?export=xlsx`` downloads the groupings. Agent users
get only what ``paymux.payments.visibility`` lets them see: their channels' payments by service and
status, counted, with the oldest (no provider, no delivery state).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth import permissions as P
from paymux.auth.principal import Principal
from paymux.backoffice.framework import (
    OPERATIONS,
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
from paymux.payments.visibility import PaymentScope, payment_scope

router = section_router()
register(
    Section(
        "queues",
        router,
        menu=(MenuEntry("Payment queues", "/backoffice/queues", P.PAYMENTS_READ, 21, area=OPERATIONS),),
        permissions=(P.PAYMENTS_READ,),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.PAYMENTS_READ))]
REFRESH_SECONDS = 5


@dataclass(frozen=True)
class Measure:
    key: str
    title: str  # msgid
    field: str  # the payment field it shows (paymux.payments.visibility): hidden with it
    expr: Callable[[dt.datetime], Any]


MEASURES = (
    Measure("unfinished", "Unfinished", "status", lambda now: func.count()),
    Measure(
        "due",
        "Due now",
        "next_attempt_at",
        lambda now: func.sum(case((Payment.next_attempt_at <= now, 1), else_=0)),
    ),
    Measure(
        "in_doubt",
        "In doubt",
        "in_doubt",
        lambda now: func.sum(case((Payment.in_doubt.is_(True), 1), else_=0)),
    ),
    Measure(
        "attention",
        "Needs attention",
        "needs_attention",
        lambda now: func.sum(case((Payment.needs_attention.is_(True), 1), else_=0)),
    ),
    Measure("oldest", "Oldest", "created_at", lambda now: func.min(Payment.created_at)),
)
# (key, title, the field grouped by, its label, the join it needs)
GROUPINGS: tuple[tuple[str, str, str, Any, Any], ...] = (
    ("service", "By service", "service", Service.code, (Service, Service.id == Payment.service_id)),
    ("provider", "By provider", "provider", Provider.code, (Provider, Provider.id == Payment.provider_id)),
    ("status", "By status", "status", Payment.status, None),
)


@dataclass
class Queues:
    measures: list[Measure]
    groups: list[tuple[str, str, list[list[Any]]]]  # (key, title, rows: [group, *measures])

    @property
    def header(self) -> list[str]:
        return ["Group", *(m.title for m in self.measures)]


async def queue_groups(session: AsyncSession, scope: PaymentScope, now: dt.datetime) -> Queues:
    """Unfinished payments grouped by service, provider and status: a count, due now, in doubt, needing
    attention and the oldest; only the groupings and measures the viewer may see."""
    base = [Payment.status.not_in(FINAL_STATUSES)]
    if scope.channels is not None:
        base.append(Payment.channel_id.in_(scope.channels or [-1]))
    measures = [m for m in MEASURES if scope.shows(m.field)]
    out = Queues(measures, [])
    for key, title, field, label, joins in GROUPINGS:
        if not scope.shows(field):
            continue
        q = select(label, *(m.expr(now) for m in measures)).where(*base).group_by(label).order_by(label)
        if joins is not None:
            q = q.join(*joins)
        rows = [
            [g, *(v if m.key == "oldest" else int(v or 0) for m, v in zip(measures, values, strict=True))]
            for g, *values in (await session.execute(q)).all()
        ]
        out.groups.append((key, title, rows))
    return out


async def attention_count(session: AsyncSession, scope: set[int] | None) -> int:
    q = select(func.count()).select_from(Payment).where(Payment.needs_attention.is_(True))
    if scope is not None:
        q = q.where(Payment.channel_id.in_(scope or [-1]))
    return int(await session.scalar(q) or 0)


@router.get("/queues")
async def queues(request: Request, session: ReadDbDep, me: Reader) -> Response:
    scope = await payment_scope(session, me)
    now = utcnow()
    found = await queue_groups(session, scope, now)
    channels = None if scope.channels is None else set(scope.channels)
    attention = await attention_count(session, channels) if scope.shows("needs_attention") else None
    if request.query_params.get("export") == "xlsx":
        return workbook(request, "queues", [(title, found.header, rows) for _, title, rows in found.groups])
    live = request.query_params.get("live", "1") != "0"
    response = render(
        request,
        "queues/index.html",
        queues=found,
        attention=attention,
        live=live,
        now=now,
        refresh=REFRESH_SECONDS,
    )
    if live:
        response.headers["Refresh"] = str(REFRESH_SECONDS)
    return response
