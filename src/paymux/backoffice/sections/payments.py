"""Payment search (period, status, service, provider, channel, account, amounts, ids) and payment details.

Agent users see only their organization's channels' payments, and of those only what
``paymux.payments.visibility`` lets them see (no provider side): in the list's columns, filters,
search and export, and in the details.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import Select, and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.api.params import Id, parse_id
from paymux.audit.models import AuditEvent
from paymux.auth import permissions as P
from paymux.auth.principal import Principal
from paymux.backoffice.framework import (
    OPERATIONS,
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
from paymux.masking import mask_secrets
from paymux.money import CURRENCIES, MoneyError, format_amount, parse_amount
from paymux.payments.details import payment_attempts, payment_postings
from paymux.payments.models import FINAL_STATUSES, STATUSES, Payment
from paymux.payments.visibility import (
    AUDIT,
    EXCHANGES,
    INBOUND,
    MONEY_FIELDS,
    PaymentScope,
    payment_scope,
    payment_view,
    visible,
)

router = section_router()
register(
    Section(
        "payments",
        router,
        menu=(MenuEntry("Payments", "/backoffice/payments", P.PAYMENTS_READ, 20, area=OPERATIONS),),
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
    return lambda q, v: q.where(column == parse_id(v)) if parse_id(v) else q.where(false())


def _code_filter(model: Any, column: Any) -> Any:
    return lambda q, v: q.where(column.in_(select(model.id).where(model.code == v)))


def _cell(key: str) -> Any:
    """A column's value in the Excel export: amounts as decimal strings of their currency."""
    if key in MONEY_FIELDS:
        return lambda v: format_amount(v[key], v["currency"])
    return lambda v: v[key]


# (field shown, column): what a viewer does not see is not a column (nor a filter, nor searched)
COLUMNS: list[tuple[str, Column]] = [
    (f, Column(f, title, sort, _cell(f)))
    for f, title, sort in (
        ("id", "ID", Payment.id),
        ("created_at", "Created", Payment.created_at),
        ("status", "Status", Payment.status),
        ("service", "Service", Service.code),
        ("channel", "Channel", Channel.code),
        ("provider", "Provider", Provider.code),
        ("account", "Account", Payment.account),
        ("amount", "Amount", Payment.amount),
        ("fee", "Fee", Payment.fee),
        ("currency", "Currency", Payment.currency),
        ("external_id", "External ID", Payment.external_id),
        ("provider_txn_id", "Provider txn ID", Payment.provider_txn_id),
        ("attempts", "Attempts", Payment.attempts),
        ("needs_attention", "Needs attention", Payment.needs_attention),
    )
]
SEARCHED = [
    ("external_id", Payment.external_id),
    ("account", Payment.account),
    ("provider_txn_id", Payment.provider_txn_id),
]


async def payments_spec(session: AsyncSession, me: Principal, scope: PaymentScope) -> ListSpec:
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
    if scope.channels is not None:
        query = query.where(Payment.channel_id.in_(scope.channels or [-1]))
    tz = me.timezone
    unfinished = [("yes", "yes"), ("no", "no")]
    channels = None if scope.channels is None else set(scope.channels)
    filters: list[tuple[str, Filter]] = [
        (
            "created_at",
            Filter("from", "From (date)", day_filter(Payment.created_at, tz, end=False), kind="date"),
        ),
        ("created_at", Filter("to", "To (date)", day_filter(Payment.created_at, tz, end=True), kind="date")),
        (
            "status",
            Filter("status", "Status", lambda q, v: q.where(Payment.status == v), [(s, s) for s in STATUSES]),
        ),
        (
            "status",
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
        ),
        (
            "service",
            Filter(
                "service",
                "Service",
                _code_filter(Service, Payment.service_id),
                await code_choices(session, Service),
            ),
        ),
        (
            "provider",
            Filter(
                "provider",
                "Provider",
                _code_filter(Provider, Payment.provider_id),
                await code_choices(session, Provider) if scope.shows("provider") else [],
            ),
        ),
        (
            "channel",
            Filter(
                "channel",
                "Channel",
                _code_filter(Channel, Payment.channel_id),
                await code_choices(session, Channel, channels),
            ),
        ),
        ("account", Filter("account", "Account", lambda q, v: q.where(Payment.account == v))),
        ("amount", Filter("amount_min", "Amount from", _amount_filter(Payment.amount, low=True))),
        ("amount", Filter("amount_max", "Amount to", _amount_filter(Payment.amount, low=False))),
        ("id", Filter("id", "ID", _int_filter(Payment.id))),
        ("external_id", Filter("external_id", "External ID", lambda q, v: q.where(Payment.external_id == v))),
        (
            "provider_txn_id",
            Filter("txn", "Provider txn ID", lambda q, v: q.where(Payment.provider_txn_id == v)),
        ),
        ("needs_attention", Filter("attention", "Needs attention", yes_no(Payment.needs_attention), YES_NO)),
        ("in_doubt", Filter("in_doubt", "In doubt", yes_no(Payment.in_doubt), YES_NO)),
    ]
    return ListSpec(
        query=query,
        columns=visible(scope, COLUMNS),
        search=visible(scope, SEARCHED),
        filters=visible(scope, filters),
        default_sort="id",
        page_size=25,
        sheet="payments",
        row_view=lambda r: payment_view(
            scope, r[0], _no_codes, service=r.service, channel=r.channel, provider=r.provider
        ),
    )


def _no_codes(kind: str, owner_id: int) -> Any:  # the list's query reads the codes with the rows
    return owner_id


@router.get("/payments")
async def payments_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    scope = await payment_scope(session, me)
    spec = await payments_spec(session, me, scope)
    return respond(request, await spec.run(session, request), "payments/list.html", money=money_for(request))


def _pretty(value: Any) -> str:
    """A payment's fields or exchange as the page shows it: secrets masked (``paymux.masking``)."""
    return json.dumps(mask_secrets(value), ensure_ascii=False, indent=2, sort_keys=True, default=str)


@router.get("/payments/{payment_id}")
async def payment_detail(request: Request, payment_id: Id, session: ReadDbDep, me: Reader) -> Response:
    p = await session.get(Payment, payment_id)
    scope = await payment_scope(session, me)
    if p is None or not scope.sees_payment_of(p.channel_id):
        raise PageNotFound()
    codes = await codes_by_id(session)

    def code_of(kind: str, owner_id: int) -> Any:
        return codes[kind].get(owner_id, owner_id)

    def owner(kind: str, owner_id: int) -> str:
        if kind.startswith("provider"):
            return str(code_of("provider", owner_id))
        if kind.startswith("channel"):
            return str(code_of("channel", owner_id))
        return "system"

    shown = scope.shows
    attempts = await payment_attempts(session, p.id) if shown(EXCHANGES) else []
    audit_rows = (
        (
            await session.scalars(
                select(AuditEvent).where(AuditEvent.target == f"payment:{p.id}").order_by(AuditEvent.seq)
            )
        ).all()
        if shown(AUDIT)
        else []
    )
    view = payment_view(scope, p, code_of)
    return render(
        request,
        "payments/detail.html",
        v=view,
        shown=shown,
        attempts=[
            (a, code_of("provider", a.provider_id), [_pretty(e) for e in a.exchanges or []]) for a in attempts
        ],
        postings=[
            (e, ek, at, f"{ak}:{owner(ak, oid)}", amt, cur)
            for e, ek, at, ak, oid, amt, cur in scope.postings(await payment_postings(session, p.id))
        ],
        audit_rows=audit_rows,
        inbound=[_pretty(x) for x in await inbound_exchanges(session, p.id)] if shown(INBOUND) else [],
        fields=_pretty(view.get("fields", {})),
        money=money_for(request),
    )
