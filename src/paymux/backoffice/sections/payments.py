"""Payment search (period, status, service, provider, channel, account, amounts, ids) and payment details.

Agent users see only their organization's channels' payments (``channel_scope``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import Select, and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.audit.models import AuditEvent
from paymux.auth import permissions as P
from paymux.auth.principal import Principal, channel_scope
from paymux.backoffice.framework import (
    MenuEntry,
    PageNotFound,
    ReadDbDep,
    Section,
    register,
    render,
    require_before_reading,
    section_router,
)
from paymux.backoffice.listing import Column, Filter, ListSpec, respond
from paymux.backoffice.sections.ops import YES_NO, code_choices, codes_by_id, day_filter, money_for, yes_no
from paymux.catalog.models import Channel, Provider, Service
from paymux.gateways.exchanges import for_payment as inbound_exchanges
from paymux.money import CURRENCIES, MoneyError, format_amount, parse_amount
from paymux.payments.details import payment_attempts, payment_postings
from paymux.payments.models import FINAL_STATUSES, STATUSES, Payment

router = section_router()
register(
    Section(
        "payments",
        router,
        menu=(MenuEntry("Payments", "/backoffice/payments", P.PAYMENTS_READ, 20),),
        permissions=(P.PAYMENTS_READ,),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.PAYMENTS_READ))]


def _amount_filter(column: Any, *, low: bool) -> Any:
    """``amount >= v`` (or ``<=``) with ``v`` in major units, exact in each currency's minor units."""

    def apply(q: Select[Any], v: str) -> Select[Any]:
        terms = []
        for cur in CURRENCIES:
            try:
                minor = parse_amount(v.strip().replace(",", "."), cur, allow_zero=True)
            except MoneyError:
                continue
            terms.append(and_(Payment.currency == cur, column >= minor if low else column <= minor))
        return q.where(or_(*terms)) if terms else q.where(false())

    return apply


def _int_filter(column: Any) -> Any:
    return lambda q, v: q.where(column == int(v)) if v.strip().isdigit() else q.where(false())


def _code_filter(model: Any, column: Any) -> Any:
    return lambda q, v: q.where(column.in_(select(model.id).where(model.code == v)))


async def payments_spec(session: AsyncSession, me: Principal, scope: set[int] | None) -> ListSpec:
    query = (
        select(
            Payment,
            Service.code.label("service"),
            Provider.code.label("provider"),
            Channel.code.label("channel"),
        )
        .join(Service, Service.id == Payment.service_id)
        .join(Provider, Provider.id == Payment.provider_id)
        .join(Channel, Channel.id == Payment.channel_id)
    )
    if scope is not None:
        query = query.where(Payment.channel_id.in_(scope or [-1]))
    tz = me.timezone
    unfinished = [("yes", "yes"), ("no", "no")]
    return ListSpec(
        query=query,
        columns=[
            Column("id", "ID", Payment.id, lambda r: r[0].id),
            Column("created_at", "Created", Payment.created_at, lambda r: r[0].created_at),
            Column("status", "Status", Payment.status, lambda r: r[0].status),
            Column("service", "Service", Service.code, lambda r: r.service),
            Column("channel", "Channel", Channel.code, lambda r: r.channel),
            Column("provider", "Provider", Provider.code, lambda r: r.provider),
            Column("account", "Account", Payment.account, lambda r: r[0].account),
            Column("amount", "Amount", Payment.amount, lambda r: format_amount(r[0].amount, r[0].currency)),
            Column("fee", "Fee", Payment.fee, lambda r: format_amount(r[0].fee, r[0].currency)),
            Column("currency", "Currency", Payment.currency, lambda r: r[0].currency),
            Column("external_id", "External ID", Payment.external_id, lambda r: r[0].external_id),
            Column(
                "provider_txn_id", "Provider txn ID", Payment.provider_txn_id, lambda r: r[0].provider_txn_id
            ),
            Column("attempts", "Attempts", Payment.attempts, lambda r: r[0].attempts),
            Column(
                "needs_attention", "Needs attention", Payment.needs_attention, lambda r: r[0].needs_attention
            ),
        ],
        search=[Payment.external_id, Payment.account, Payment.provider_txn_id],
        filters=[
            Filter("from", "From (date)", day_filter(Payment.created_at, tz, end=False), kind="date"),
            Filter("to", "To (date)", day_filter(Payment.created_at, tz, end=True), kind="date"),
            Filter(
                "status",
                "Status",
                lambda q, v: q.where(Payment.status == v),
                [(s, s) for s in STATUSES],
            ),
            Filter(
                "open",
                "Unfinished",
                lambda q, v: q.where(
                    Payment.status.not_in(FINAL_STATUSES)
                    if v == "yes"
                    else Payment.status.in_(FINAL_STATUSES)
                ),
                unfinished,
            ),
            Filter(
                "service",
                "Service",
                _code_filter(Service, Payment.service_id),
                await code_choices(session, Service),
            ),
            Filter(
                "provider",
                "Provider",
                _code_filter(Provider, Payment.provider_id),
                await code_choices(session, Provider),
            ),
            Filter(
                "channel",
                "Channel",
                _code_filter(Channel, Payment.channel_id),
                await code_choices(session, Channel, scope),
            ),
            Filter("account", "Account", lambda q, v: q.where(Payment.account == v)),
            Filter("amount_min", "Amount from", _amount_filter(Payment.amount, low=True)),
            Filter("amount_max", "Amount to", _amount_filter(Payment.amount, low=False)),
            Filter("id", "ID", _int_filter(Payment.id)),
            Filter("external_id", "External ID", lambda q, v: q.where(Payment.external_id == v)),
            Filter("txn", "Provider txn ID", lambda q, v: q.where(Payment.provider_txn_id == v)),
            Filter("attention", "Needs attention", yes_no(Payment.needs_attention), YES_NO),
            Filter("in_doubt", "In doubt", yes_no(Payment.in_doubt), YES_NO),
        ],
        default_sort="id",
        page_size=25,
        sheet="payments",
    )


@router.get("/payments")
async def payments_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    scope = await channel_scope(session, me)
    spec = await payments_spec(session, me, scope)
    return respond(request, await spec.run(session, request), "payments/list.html", money=money_for(request))


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


@router.get("/payments/{payment_id}")
async def payment_detail(request: Request, payment_id: int, session: ReadDbDep, me: Reader) -> Response:
    p = await session.get(Payment, payment_id)
    scope = await channel_scope(session, me)
    if p is None or (scope is not None and p.channel_id not in scope):
        raise PageNotFound()
    codes = await codes_by_id(session)
    attempts = await payment_attempts(session, p.id)
    postings = await payment_postings(session, p.id)

    def owner(kind: str, owner_id: int) -> str:
        if kind.startswith("provider"):
            return codes["provider"].get(owner_id, str(owner_id))
        if kind.startswith("channel"):
            return codes["channel"].get(owner_id, str(owner_id))
        return "system"

    audit_rows = (
        await session.scalars(
            select(AuditEvent).where(AuditEvent.target == f"payment:{p.id}").order_by(AuditEvent.seq)
        )
    ).all()
    return render(
        request,
        "payments/detail.html",
        p=p,
        codes=codes,
        attempts=[(a, [_pretty(e) for e in a.exchanges or []]) for a in attempts],
        postings=[
            (e, ek, at, f"{ak}:{owner(ak, oid)}", amt, cur) for e, ek, at, ak, oid, amt, cur in postings
        ],
        audit_rows=audit_rows,
        inbound=[_pretty(x) for x in await inbound_exchanges(session, p.id)],
        fields=_pretty(p.fields or {}),
        money=money_for(request),
    )
