"""Admin API of wallets (``/api/v1/admin/wallets/...``): issuers, limits, customers and their
wallets, blocks, the review of operations a limit held, operations and refunds of merchant payments.

``wallets.read`` reads; ``wallets.manage`` creates and changes issuers and limits and refunds
merchant payments;
``wallets.block`` blocks and unblocks customers and wallets, changes overdrafts and approves or
rejects held operations. Every change is audited.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from sqlalchemy import or_, select

from paymux.api.deps import HubDep, ReadSessionDep, SessionDep
from paymux.api.params import MAX_ID, Id, Ident
from paymux.audit import service as audit
from paymux.auth import permissions as P
from paymux.auth.admin_api import require_api
from paymux.auth.principal import Principal
from paymux.db.base import utcnow
from paymux.db.concurrent import inserted, locked
from paymux.errors import invalid, not_found
from paymux.tariffs.calc import rule_from_json, rule_to_dict
from paymux.wallets import hub_payments, service
from paymux.wallets.api import (
    IdempotencyKey,
    customer_view,
    full_view,
    operation_response,
    refund_request,
    wallet_history,
    wallet_view,
)
from paymux.wallets.models import Issuer, Wallet, WalletCustomer, WalletLimit, WalletOperation
from paymux.wallets.statement import statement_answer
from paymux.wallets.units import conflict, format_units, parse_units

router = APIRouter(prefix="/api/v1/admin/wallets", tags=["wallets admin"])

Reader = Annotated[Principal, Depends(require_api(P.WALLETS_READ))]
Manager = Annotated[Principal, Depends(require_api(P.WALLETS_MANAGE))]
Blocker = Annotated[Principal, Depends(require_api(P.WALLETS_BLOCK))]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid token (problem+json)"},
    403: {"description": "the token's user lacks the permission (problem+json)"},
    404: {"description": "not found (problem+json)"},
    409: {"description": "conflict (problem+json)"},
    422: {"description": "invalid request (problem+json)"},
}
CODE = r"^[a-z0-9][a-z0-9_-]{0,31}$"
Amount = Annotated[StrictStr, Field(max_length=24)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IssuerIn(Strict):
    code: Annotated[StrictStr, Field(pattern=CODE)]
    name: Annotated[Ident, Field(min_length=1, max_length=200)]
    kind: Literal["emoney", "units", "points"]
    currency: Annotated[
        StrictStr, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 for e-money, else a unit code")
    ]
    precision: Annotated[StrictInt, Field(ge=0, le=6)] | None = None
    emission_limit: Amount | None = Field(default=None, description="in major units; null: no limit")
    fee_rules: dict[str, Any] = Field(
        default_factory=dict,
        description="per operation type, a tariff rule, money in minor units: {'p2p': {'fixed': 100}}",
    )
    exchange_spread_percent: Annotated[StrictStr, Field(max_length=12)] = "0"

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "code": "rub",
                    "name": "RUB e-money",
                    "kind": "emoney",
                    "currency": "RUB",
                    "emission_limit": "10000000.00",
                    "fee_rules": {"p2p": {"percent": "0.5", "min": 1000}, "withdrawal": {"fixed": 5000}},
                    "exchange_spread_percent": "1.5",
                }
            ]
        },
    )


class IssuerPatch(Strict):
    name: Annotated[Ident, Field(min_length=1, max_length=200)] | None = None
    emission_limit: Amount | None = None
    clear_emission_limit: bool = False
    fee_rules: dict[str, Any] | None = None
    exchange_spread_percent: Annotated[StrictStr, Field(max_length=12)] | None = None
    enabled: bool | None = None


class LimitIn(Strict):
    issuer: Annotated[StrictStr, Field(pattern=CODE)]
    type: Literal["topup", "withdrawal", "p2p", "exchange", "merchant_payment", "service_payment", "refund"]
    identification: Literal["unidentified", "identified"]
    name: Annotated[StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    min_amount: Amount | None = None
    max_amount: Amount | None = None
    daily_count: Annotated[StrictInt, Field(ge=0, le=1_000_000)] | None = None
    daily_amount: Amount | None = None
    action: Literal["refuse", "review"] = "refuse"

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "issuer": "rub",
                    "type": "p2p",
                    "identification": "unidentified",
                    "name": "p2p-daily",
                    "max_amount": "15000.00",
                    "daily_count": 10,
                    "daily_amount": "40000.00",
                    "action": "refuse",
                }
            ]
        },
    )


class Reason(Strict):
    reason: Annotated[Ident, Field(max_length=500)] = ""


class OverdraftIn(Strict):
    overdraft: Amount
    reason: Annotated[Ident, Field(max_length=500)] = ""


def issuer_view(i: Issuer) -> dict[str, Any]:
    return {
        "id": i.id,
        "code": i.code,
        "name": i.name,
        "kind": i.kind,
        "currency": i.currency,
        "precision": i.precision,
        "emission_limit": None if i.emission_limit is None else format_units(i.emission_limit, i.precision),
        "fee_rules": dict(i.fee_rules or {}),
        "exchange_spread_percent": i.exchange_spread_percent,
        "enabled": i.enabled,
        "float_account_id": i.float_account_id,
        "created_at": i.created_at.isoformat(),
    }


def limit_view(limit: WalletLimit, i: Issuer) -> dict[str, Any]:
    def fmt(v: int | None) -> str | None:
        return None if v is None else format_units(v, i.precision)

    return {
        "id": limit.id,
        "issuer": i.code,
        "type": limit.type,
        "identification": limit.identification,
        "name": limit.name,
        "min_amount": fmt(limit.min_amount),
        "max_amount": fmt(limit.max_amount),
        "daily_count": limit.daily_count,
        "daily_amount": fmt(limit.daily_amount),
        "action": limit.action,
    }


def _code(code: str) -> str:
    if not re.match(CODE, code):
        raise not_found(f"issuer {code[:40]!r}")
    return code


def _limit_amount(text: str | None, i: Issuer, field: str) -> int | None:
    return None if text is None else parse_units(text, i.precision, field, allow_zero=True)


# --- issuers ------------------------------------------------------------------------------------------


@router.get("/issuers", summary="Issuers", responses=PROBLEMS)
async def list_issuers(me: Reader, session: ReadSessionDep, hub: HubDep) -> dict[str, Any]:
    rows = (await session.scalars(select(Issuer).order_by(Issuer.code))).all()
    out = []
    for i in rows:
        view = issuer_view(i)
        totals = await service.issuer_totals(session, hub.accounts, i)
        view["emitted"] = format_units(totals["emitted"], i.precision)
        out.append(view)
    return {"items": out}


@router.post("/issuers", status_code=201, summary="Create an issuer", responses=PROBLEMS)
async def create_issuer(body: IssuerIn, me: Manager, session: SessionDep, hub: HubDep) -> dict[str, Any]:
    """An issuer and its float account. E-money takes its currency's minor digits."""
    precision = body.precision
    limit_text = body.emission_limit
    issuer = await service.create_issuer(
        session,
        hub.accounts,
        code=body.code,
        name=body.name,
        kind=body.kind,
        currency=body.currency,
        precision=precision,
        emission_limit=None,
        fee_rules=service.parse_fee_rules(body.fee_rules),
        exchange_spread_percent=service.parse_spread(body.exchange_spread_percent),
    )
    if limit_text is not None:
        issuer.emission_limit = parse_units(limit_text, issuer.precision, "emission_limit", allow_zero=True)
    await session.flush()
    view = issuer_view(issuer)
    await audit.record(session, me, "wallet_issuer.create", f"wallet_issuer:{issuer.code}", None, view)
    await session.commit()
    return view


@router.get("/issuers/{code}", summary="An issuer with its totals", responses=PROBLEMS)
async def get_issuer(code: str, me: Reader, session: ReadSessionDep, hub: HubDep) -> dict[str, Any]:
    """The issuer, what it has emitted (outstanding), the sum of its wallets and its fees:
    ``emitted == wallets + fees`` always."""
    i = await service.issuer_by_code(session, _code(code))
    totals = await service.issuer_totals(session, hub.accounts, i)
    view = issuer_view(i)
    view["totals"] = {k: format_units(v, i.precision) for k, v in totals.items()}
    view["fee_rules_readable"] = {
        t: rule_to_dict(rule_from_json(r), i.currency)
        for t, r in (i.fee_rules or {}).items()
        if i.kind == "emoney"
    }
    return view


@router.patch("/issuers/{code}", summary="Change an issuer", responses=PROBLEMS)
async def patch_issuer(code: str, body: IssuerPatch, me: Manager, session: SessionDep) -> dict[str, Any]:
    """Name, emission limit, fee rules, spread, enabled. Code, kind, currency and precision never change."""
    found = await service.issuer_by_code(session, _code(code))
    i = await locked(session, Issuer, found.id)
    assert i is not None
    before = issuer_view(i)
    if body.name is not None:
        i.name = body.name
    if body.clear_emission_limit:
        i.emission_limit = None
    elif body.emission_limit is not None:
        i.emission_limit = parse_units(body.emission_limit, i.precision, "emission_limit", allow_zero=True)
    if body.fee_rules is not None:
        i.fee_rules = service.parse_fee_rules(body.fee_rules)
    if body.exchange_spread_percent is not None:
        i.exchange_spread_percent = service.parse_spread(body.exchange_spread_percent)
    if body.enabled is not None:
        i.enabled = body.enabled
    i.updated_at = utcnow()
    await session.flush()
    after = issuer_view(i)
    await audit.record(session, me, "wallet_issuer.update", f"wallet_issuer:{i.code}", before, after)
    await session.commit()
    return after


# --- limits -------------------------------------------------------------------------------------------


@router.get("/limits", summary="Limits", responses=PROBLEMS)
async def list_limits(me: Reader, session: ReadSessionDep) -> dict[str, Any]:
    rows = (await session.execute(select(WalletLimit, Issuer).join(Issuer).order_by(WalletLimit.id))).all()
    return {"items": [limit_view(limit, i) for limit, i in rows]}


@router.post("/limits", status_code=201, summary="Add a limit", responses=PROBLEMS)
async def add_limit(body: LimitIn, me: Manager, session: SessionDep) -> dict[str, Any]:
    """A limit on one operation type of one issuer for one identification level (amounts in major
    units of the issuer). ``action``: ``refuse`` or hold for ``review``."""
    i = await service.issuer_by_code(session, body.issuer)
    service.check_limit_fields(body.action, body.identification, body.type)
    limit = WalletLimit(
        issuer_id=i.id,
        type=body.type,
        identification=body.identification,
        name=body.name,
        min_amount=_limit_amount(body.min_amount, i, "min_amount"),
        max_amount=_limit_amount(body.max_amount, i, "max_amount"),
        daily_count=body.daily_count,
        daily_amount=_limit_amount(body.daily_amount, i, "daily_amount"),
        action=body.action,
    )
    if all(v is None for v in (limit.min_amount, limit.max_amount, limit.daily_count, limit.daily_amount)):
        raise invalid(
            "invalid-limit", "a limit needs at least one of min_amount, max_amount, daily_count, daily_amount"
        )
    if not await inserted(session, limit):
        raise conflict("limit-exists", "Limit exists", f"limit {body.name} exists for {i.code} {body.type}")
    view = limit_view(limit, i)
    await audit.record(session, me, "wallet_limit.create", f"wallet_limit:{limit.id}", None, view)
    await session.commit()
    return view


@router.delete("/limits/{limit_id}", summary="Remove a limit", responses=PROBLEMS)
async def delete_limit(limit_id: Id, me: Manager, session: SessionDep) -> dict[str, Any]:
    limit = await session.get(WalletLimit, limit_id)
    if limit is None:
        raise not_found(f"limit {limit_id}")
    i = await session.get(Issuer, limit.issuer_id)
    assert i is not None
    view = limit_view(limit, i)
    await session.delete(limit)
    await audit.record(session, me, "wallet_limit.delete", f"wallet_limit:{limit_id}", view, None)
    await session.commit()
    return view


# --- customers, wallets, blocks -----------------------------------------------------------------------


@router.get("/customers", summary="Search wallet customers", responses=PROBLEMS)
async def search_customers(
    me: Reader,
    session: ReadSessionDep,
    q: Annotated[
        str, Query(max_length=200, description="id, external reference, e-mail, phone or name")
    ] = "",
    status: Literal["active", "blocked"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    query = select(WalletCustomer).order_by(WalletCustomer.id.desc()).limit(limit)
    text = q.strip()
    if text:
        conds = [
            WalletCustomer.external_ref == text,
            WalletCustomer.email == text.lower(),
            WalletCustomer.email == text,
            WalletCustomer.phone == text,
            WalletCustomer.name.ilike(f"%{text.replace('%', '').replace('_', '')}%"),
        ]
        if text.isascii() and text.isdigit() and len(text) <= 18:
            conds.append(WalletCustomer.id == int(text))
        query = query.where(or_(*conds))
    if status is not None:
        query = query.where(WalletCustomer.status == status)
    return {"items": [customer_view(c) for c in (await session.scalars(query)).all()]}


@router.get("/customers/{customer_id}", summary="A customer with its wallets", responses=PROBLEMS)
async def get_customer(customer_id: Id, me: Reader, session: ReadSessionDep) -> dict[str, Any]:
    c = await session.get(WalletCustomer, customer_id)
    if c is None:
        raise not_found(f"customer {customer_id}")
    wallets = (
        await session.scalars(select(Wallet).where(Wallet.customer_id == c.id).order_by(Wallet.id))
    ).all()
    return {**customer_view(c), "wallets": [await wallet_view(session, w) for w in wallets]}


async def _set_customer_status(
    session: Any, me: Principal, customer_id: int, status: str, reason: str
) -> dict[str, Any]:
    c = await locked(session, WalletCustomer, customer_id)
    if c is None:
        raise not_found(f"customer {customer_id}")
    before = c.status
    c.status, c.updated_at = status, utcnow()
    action = "wallet_customer.block" if status == "blocked" else "wallet_customer.unblock"
    await audit.record(
        session,
        me,
        action,
        f"wallet_customer:{c.id}",
        {"status": before},
        {"status": status, "reason": reason},
    )
    await session.commit()
    return customer_view(c)


@router.post("/customers/{customer_id}/block", summary="Block a customer", responses=PROBLEMS)
async def block_customer(customer_id: Id, body: Reason, me: Blocker, session: SessionDep) -> dict[str, Any]:
    """Every operation of a blocked customer (and every payment to it) is refused with 403."""
    return await _set_customer_status(session, me, customer_id, "blocked", body.reason)


@router.post("/customers/{customer_id}/unblock", summary="Unblock a customer", responses=PROBLEMS)
async def unblock_customer(customer_id: Id, body: Reason, me: Blocker, session: SessionDep) -> dict[str, Any]:
    return await _set_customer_status(session, me, customer_id, "active", body.reason)


async def _set_wallet_status(
    session: Any, me: Principal, wallet_id: int, status: str, reason: str
) -> dict[str, Any]:
    w = await locked(session, Wallet, wallet_id)
    if w is None:
        raise not_found(f"wallet {wallet_id}")
    before = w.status
    w.status, w.updated_at = status, utcnow()
    action = "wallet.block" if status == "blocked" else "wallet.unblock"
    await audit.record(
        session, me, action, f"wallet:{w.id}", {"status": before}, {"status": status, "reason": reason}
    )
    await session.commit()
    return await wallet_view(session, w)


@router.get("/wallets/{wallet_id}/statement", summary="A wallet's statement for a period", responses=PROBLEMS)
async def wallet_statement(
    wallet_id: Id,
    me: Reader,
    session: ReadSessionDep,
    first: Annotated[dt.date, Query(alias="from", description="the first day (in timezone)")],
    last: Annotated[dt.date, Query(alias="to", description="the last day (in timezone)")],
    timezone: Annotated[
        str | None, Query(max_length=64, description="IANA timezone of the days (UTC)")
    ] = None,
    format: Annotated[Literal["json", "xlsx"], Query()] = "json",
) -> Any:
    """The statement the customer sees (JSON, or Excel with ``format=xlsx``)."""
    w = await session.get(Wallet, wallet_id)
    if w is None:
        raise not_found(f"wallet {wallet_id}")
    return await statement_answer(session, w, first, last, timezone, format)


@router.get("/wallets/{wallet_id}/history", summary="A wallet's history", responses=PROBLEMS)
async def history(
    wallet_id: Id,
    me: Reader,
    session: ReadSessionDep,
    cursor: Annotated[int, Query(ge=1, le=MAX_ID, description="the next_cursor of the previous page")]
    | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The wallet's postings, newest first, as its customer sees them."""
    w = await session.get(Wallet, wallet_id)
    if w is None:
        raise not_found(f"wallet {wallet_id}")
    return {**await wallet_view(session, w), **await wallet_history(session, w, cursor, limit)}


@router.post("/wallets/{wallet_id}/block", summary="Block a wallet", responses=PROBLEMS)
async def block_wallet(wallet_id: Id, body: Reason, me: Blocker, session: SessionDep) -> dict[str, Any]:
    return await _set_wallet_status(session, me, wallet_id, "blocked", body.reason)


@router.post("/wallets/{wallet_id}/unblock", summary="Unblock a wallet", responses=PROBLEMS)
async def unblock_wallet(wallet_id: Id, body: Reason, me: Blocker, session: SessionDep) -> dict[str, Any]:
    return await _set_wallet_status(session, me, wallet_id, "active", body.reason)


@router.post("/wallets/{wallet_id}/overdraft", summary="Set a wallet's overdraft", responses=PROBLEMS)
async def set_overdraft(wallet_id: Id, body: OverdraftIn, me: Manager, session: SessionDep) -> dict[str, Any]:
    """How far below zero the wallet may go (major units; 0: never)."""
    w = await locked(session, Wallet, wallet_id)
    if w is None:
        raise not_found(f"wallet {wallet_id}")
    i = await session.get(Issuer, w.issuer_id)
    assert i is not None
    before = format_units(w.overdraft, i.precision)
    w.overdraft = parse_units(body.overdraft, i.precision, "overdraft", allow_zero=True)
    w.updated_at = utcnow()
    after = format_units(w.overdraft, i.precision)
    await audit.record(
        session,
        me,
        "wallet.overdraft",
        f"wallet:{w.id}",
        {"overdraft": before},
        {"overdraft": after, "reason": body.reason},
    )
    await session.commit()
    return await wallet_view(session, w, i)


# --- operations and their review ----------------------------------------------------------------------


@router.get("/operations", summary="Operations", responses=PROBLEMS)
async def list_operations(
    me: Reader,
    session: ReadSessionDep,
    state: Literal["created", "pending_review", "processing", "done", "rejected", "failed"] | None = None,
    type: Literal[
        "topup", "withdrawal", "p2p", "merchant_payment", "service_payment", "exchange", "cashback", "refund"
    ]
    | None = None,
    customer_id: Id | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    query = select(WalletOperation).order_by(WalletOperation.id.desc()).limit(limit)
    if state is not None:
        query = query.where(WalletOperation.state == state)
    if type is not None:
        query = query.where(WalletOperation.type == type)
    if customer_id is not None:
        query = query.where(WalletOperation.customer_id == customer_id)
    out = []
    for op in (await session.scalars(query)).all():
        view = service.operation_view(op, await service.precisions_of(session, op))
        view["customer_id"] = op.customer_id
        out.append(view)
    return {"items": out}


async def _review(
    session: Any, hub: Any, me: Principal, operation_id: int, approve: bool, reason: str
) -> dict[str, Any]:
    op = await service.review(
        session,
        hub.accounts,
        operation_id,
        approve=approve,
        actor=str(getattr(me, "audit_name", me)),
        reason=reason,
    )
    await hub_payments.after_review(session, op)
    view = await full_view(session, op)
    action = "wallet_operation.approve" if approve else "wallet_operation.reject"
    await audit.record(
        session,
        me,
        action,
        f"wallet_operation:{op.id}",
        {"state": "pending_review"},
        {"state": op.state, "reason": reason},
    )
    await session.commit()
    return view


@router.post("/operations/{operation_id}/approve", summary="Approve a held operation", responses=PROBLEMS)
async def approve(
    operation_id: Id, body: Reason, me: Blocker, session: SessionDep, hub: HubDep
) -> dict[str, Any]:
    """Post the operation now (``done``), or ``failed`` with its problem if it can no longer be
    (funds, blocks, the emission limit)."""
    return await _review(session, hub, me, operation_id, True, body.reason)


@router.post("/operations/{operation_id}/reject", summary="Reject a held operation", responses=PROBLEMS)
async def reject(
    operation_id: Id, body: Reason, me: Blocker, session: SessionDep, hub: HubDep
) -> dict[str, Any]:
    """``rejected``: nothing is posted."""
    return await _review(session, hub, me, operation_id, False, body.reason)


@router.get("/operations/{operation_id}", summary="An operation with its refunds", responses=PROBLEMS)
async def get_operation(operation_id: Id, me: Reader, session: ReadSessionDep) -> dict[str, Any]:
    """One operation (a service payment with its payment), and the refunds made of it."""
    op = await session.get(WalletOperation, operation_id)
    if op is None:
        raise not_found(f"operation {operation_id}")
    view = await full_view(session, op)
    view["customer_id"] = op.customer_id
    refunds = (
        await session.scalars(
            select(WalletOperation).where(WalletOperation.refund_of_id == op.id).order_by(WalletOperation.id)
        )
    ).all()
    view["refunds"] = [service.operation_view(r, await service.precisions_of(session, r)) for r in refunds]
    if op.type == "merchant_payment" and op.state == "done":
        view["refundable"] = format_units(
            await service.refundable(session, op), (await service.precisions_of(session, op))[op.currency]
        )
    return view


class RefundBody(Strict):
    amount: Amount | None = Field(default=None, description="what to give back; omitted: the whole payment")
    reason: Annotated[Ident, Field(max_length=500)] = ""


@router.post("/operations/{operation_id}/refund", summary="Refund a merchant payment", responses=PROBLEMS)
async def refund(
    operation_id: Id,
    body: RefundBody,
    me: Manager,
    session: SessionDep,
    hub: HubDep,
    idempotency_key: IdempotencyKey,
) -> Any:
    """Give back all or part of a merchant payment from the merchant's wallet to the payer's, as
    the merchant would (``POST /api/v1/wallet/refunds``); never more than was paid. Audited."""
    original = await session.get(WalletOperation, operation_id)
    merchant_w = (
        await session.get(Wallet, original.to_wallet_id)
        if original is not None and original.to_wallet_id is not None
        else None
    )
    if original is None or original.type != "merchant_payment" or merchant_w is None:
        raise not_found(f"merchant payment {operation_id}")
    req = await refund_request(
        session, original.id, merchant_w.customer_id, original.channel_id, idempotency_key, body.amount
    )
    try:
        op, created = await service.execute(session, hub.accounts, req)
    except Exception:
        await session.rollback()
        raise
    if created:
        await audit.record(
            session,
            me,
            "wallet_operation.refund",
            f"wallet_operation:{original.id}",
            None,
            {"refund_operation": op.id, "state": op.state, "amount": body.amount, "reason": body.reason},
        )
    await session.commit()
    return await operation_response(session, op, created)
