"""Admin API of cash desks (``/api/v1/admin/cashdesks/...``): desks and cashiers, cash days, cashier
operations with their receipts, system operations (maker-checker), reports and redeem requests.

``cashdesk.read`` reads; ``cashdesk.manage`` creates desks and chooses cashiers; ``cashdesk.operate``
(a cashier of the desk) opens and closes days and makes operations; ``cashdesk.accept`` accepts
closed days; ``cashdesk.system.propose``/``.approve`` the maker-checker of system operations;
``redeem.manage`` decides redeem requests. Every change is audited.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from sqlalchemy import select

from paymux.api.app import problem_response
from paymux.api.deps import HubDep, ReadSessionDep, SessionDep
from paymux.api.params import Id, Ident
from paymux.audit import service as audit
from paymux.auth import permissions as P
from paymux.auth.admin_api import require_api
from paymux.auth.principal import Principal
from paymux.cashdesks import redeem, redeem_transfers, service, views
from paymux.cashdesks.models import (
    DAY_STATES,
    REDEEM_STATES,
    SYSTEM_STATES,
    CashDay,
    CashDesk,
    CashOperation,
    CashSystemOperation,
    RedeemRequest,
)
from paymux.cashdesks.receipts import receipt_pdf
from paymux.errors import Problem, invalid, not_found
from paymux.money import CURRENCIES
from paymux.offload import in_thread
from paymux.wallets.models import Issuer, Wallet
from paymux.wallets.units import parse_units

router = APIRouter(prefix="/api/v1/admin/cashdesks", tags=["cash desks admin"])

Reader = Annotated[Principal, Depends(require_api(P.CASHDESK_READ))]
Manager = Annotated[Principal, Depends(require_api(P.CASHDESK_MANAGE))]
Operator = Annotated[Principal, Depends(require_api(P.CASHDESK_OPERATE))]
Acceptor = Annotated[Principal, Depends(require_api(P.CASHDESK_ACCEPT))]
Proposer = Annotated[Principal, Depends(require_api(P.CASHDESK_SYSTEM_PROPOSE))]
Approver = Annotated[Principal, Depends(require_api(P.CASHDESK_SYSTEM_APPROVE))]
RedeemManager = Annotated[Principal, Depends(require_api(P.REDEEM_MANAGE))]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid token (problem+json)"},
    403: {"description": "the permission is missing, or not a cashier of the desk (problem+json)"},
    404: {"description": "not found (problem+json)"},
    409: {"description": "no open day, a day open already, decided already, key reused (problem+json)"},
    422: {"description": "invalid request, a limit, insufficient funds or cash (problem+json)"},
}
CODE = r"^[a-z0-9][a-z0-9_-]{0,31}$"
KEY = re.compile(r"^[\x21-\x7e]{1,64}\Z")
Amount = Annotated[StrictStr, Field(max_length=24, examples=["1500.00"])]
Counts = Annotated[dict[Annotated[str, Field(pattern=r"^[A-Z]{3}$")], Amount], Field(max_length=20)]
Note = Annotated[Ident, Field(max_length=500)]
IdempotencyKey = Annotated[
    str,
    Header(alias="Idempotency-Key", description="unique per desk: the same key answers as the first time"),
]
LIST_LIMIT = 500


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeskIn(Strict):
    code: Annotated[StrictStr, Field(pattern=CODE)]
    name: Annotated[Ident, Field(min_length=1, max_length=200)]
    organization: Annotated[Ident, Field(min_length=1, max_length=64)]
    currencies: Annotated[
        list[Annotated[str, Field(pattern=r"^[A-Z]{3}$")]], Field(min_length=1, max_length=20)
    ]
    cashiers: Annotated[list[Annotated[Ident, Field(max_length=100)]], Field(max_length=100)] = []


class CashiersIn(Strict):
    cashiers: Annotated[list[Annotated[Ident, Field(max_length=100)]], Field(max_length=100)]


class CountIn(Strict):
    counts: Counts = Field(description="the cash counted per currency, in major units: {'RUB': '1500.00'}")


class NoteIn(Strict):
    note: Note = ""


class OperationIn(Strict):
    type: Literal["topup", "withdrawal", "redeem_payout"]
    wallet: Id | None = None
    amount: Amount | None = None
    document: Annotated[Ident, Field(max_length=200)] | None = Field(
        default=None, description="the customer's identity document (needed for a withdrawal)"
    )
    redeem_request: Id | None = None


class ReverseIn(Strict):
    reason: Annotated[Ident, Field(min_length=1, max_length=500)]


class SystemIn(Strict):
    type: Literal["cash_input", "collection", "investment"]
    desk: Id
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    amount: Amount
    note: Note = ""


class ReasonIn(Strict):
    reason: Note = ""


def parse_counts(counts: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for cur, text in counts.items():
        if cur not in CURRENCIES:
            raise invalid("invalid-currency", f"{cur} is not an ISO 4217 currency")
        out[cur] = parse_units(text, CURRENCIES[cur], f"counts.{cur}", allow_zero=True)
    return out


def _key(value: str) -> str:
    if not KEY.match(value):
        raise invalid("invalid-idempotency-key", "Idempotency-Key is 1 to 64 printable ASCII characters")
    return value


# --- desks ----------------------------------------------------------------------------------------------


@router.get("", summary="Cash desks with their cash", responses=PROBLEMS)
async def list_desks(session: ReadSessionDep, _: Reader) -> dict[str, Any]:
    desks = (await session.scalars(select(CashDesk).order_by(CashDesk.code).limit(LIST_LIMIT))).all()
    return {"items": [await views.desk_view(session, d) for d in desks]}


@router.post("", status_code=201, summary="Create a cash desk", responses=PROBLEMS)
async def create_desk(body: DeskIn, session: SessionDep, me: Manager) -> dict[str, Any]:
    try:
        desk = await service.create_desk(
            session,
            code=body.code,
            name=body.name,
            organization=body.organization,
            currencies=body.currencies,
        )
        await service.set_cashiers(session, desk, list(body.cashiers))
    except Problem:
        await session.rollback()
        raise
    view = await views.desk_view(session, desk)
    await audit.record(session, me, "cashdesk.create", f"cashdesk:{desk.code}", None, view)
    await session.commit()
    return view


@router.get("/balances", summary="Every desk's cash per currency", responses=PROBLEMS)
async def balances(session: ReadSessionDep, _: Reader) -> dict[str, Any]:
    rows = await service.all_balances(session)
    return {"items": [{**r, "balance": views.format_amount(r["balance"], r["currency"])} for r in rows]}


# --- days -----------------------------------------------------------------------------------------------


@router.get("/days", summary="Cash days (closed ones wait for an accountant)", responses=PROBLEMS)
async def list_days(
    session: ReadSessionDep,
    _: Reader,
    state: Literal["open", "closed", "accepted"] | None = None,
    desk: Id | None = None,
) -> dict[str, Any]:
    q = select(CashDay).order_by(CashDay.id.desc()).limit(LIST_LIMIT)
    if state is not None:
        q = q.where(CashDay.state == state)
    if desk is not None:
        q = q.where(CashDay.desk_id == desk)
    return {
        "items": [views.day_view(d) for d in (await session.scalars(q)).all()],
        "states": list(DAY_STATES),
    }


@router.get("/days/{day_id}", summary="A cash day and its totals", responses=PROBLEMS)
async def get_day(day_id: Id, session: ReadSessionDep, _: Reader) -> dict[str, Any]:
    day = await session.get(CashDay, day_id)
    if day is None:
        raise not_found(f"cash day {day_id}")
    totals = await service.day_totals(session, day)
    return {
        **views.day_view(day),
        "totals": {
            c: {
                "in": views.format_amount(t["in"], c),
                "out": views.format_amount(t["out"], c),
                "count": t["count"],
            }
            for c, t in totals.items()
        },
    }


@router.post("/days/{day_id}/accept", summary="Accept a closed cash day", responses=PROBLEMS)
async def accept_day(day_id: Id, body: NoteIn, session: SessionDep, me: Acceptor) -> dict[str, Any]:
    try:
        day = await service.accept_day(session, day_id, service.Actor.of(me), body.note)
    except Problem:
        await session.rollback()
        raise
    await audit.record(
        session, me, "cashday.accept", f"cashday:{day.id}", {"state": "closed"}, {"state": "accepted"}
    )
    await session.commit()
    return views.day_view(day)


# --- operations -----------------------------------------------------------------------------------------


@router.get("/operations", summary="Cashiers' operations, newest first", responses=PROBLEMS)
async def list_operations(
    session: ReadSessionDep,
    _: Reader,
    desk: Id | None = None,
    day: Id | None = None,
    limit: Annotated[int, Query(ge=1, le=LIST_LIMIT)] = 100,
) -> dict[str, Any]:
    q = select(CashOperation).order_by(CashOperation.id.desc()).limit(limit)
    if desk is not None:
        q = q.where(CashOperation.desk_id == desk)
    if day is not None:
        q = q.where(CashOperation.day_id == day)
    return {"items": [views.operation_view(o) for o in (await session.scalars(q)).all()]}


@router.get(
    "/operations/{operation_id}/receipt",
    summary="The printable receipt (PDF) of a cashier's operation",
    responses={**PROBLEMS, 200: {"content": {"application/pdf": {}}, "description": "the receipt"}},
)
async def receipt(operation_id: Id, session: ReadSessionDep, _: Reader) -> Response:
    op = await session.get(CashOperation, operation_id)
    if op is None:
        raise not_found(f"cash operation {operation_id}")
    data = await in_thread(receipt_pdf, await views.receipt_data(session, op))
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="receipt-{op.id}.pdf"'},
    )


# --- system operations ----------------------------------------------------------------------------------


@router.get("/system-operations", summary="System operations", responses=PROBLEMS)
async def list_system(
    session: ReadSessionDep, _: Reader, state: Literal["pending", "approved", "rejected"] | None = None
) -> dict[str, Any]:
    q = select(CashSystemOperation).order_by(CashSystemOperation.id.desc()).limit(LIST_LIMIT)
    if state is not None:
        q = q.where(CashSystemOperation.state == state)
    return {
        "items": [views.system_view(o) for o in (await session.scalars(q)).all()],
        "states": list(SYSTEM_STATES),
    }


@router.post("/system-operations", status_code=201, summary="Propose a system operation", responses=PROBLEMS)
async def propose_system(body: SystemIn, session: SessionDep, me: Proposer) -> dict[str, Any]:
    if body.currency not in CURRENCIES:
        raise invalid("invalid-currency", f"{body.currency} is not an ISO 4217 currency")
    amount = parse_units(body.amount, CURRENCIES[body.currency])
    try:
        op = await service.propose_system(
            session,
            type=body.type,
            desk_id=body.desk,
            currency=body.currency,
            amount=amount,
            note=body.note,
            actor=service.Actor.of(me),
        )
    except Problem:
        await session.rollback()
        raise
    view = views.system_view(op)
    await audit.record(session, me, "cash_system.propose", f"cash_system:{op.id}", None, view)
    await session.commit()
    return view


async def _decide_system(
    session: Any, hub: Any, op_id: int, approve: bool, note: str, me: Principal
) -> dict[str, Any]:
    try:
        op = await service.decide_system(
            session, hub.accounts, op_id, approve=approve, note=note, actor=service.Actor.of(me)
        )
    except Problem:
        await session.rollback()
        raise
    await audit.record(
        session,
        me,
        f"cash_system.{'approve' if approve else 'reject'}",
        f"cash_system:{op.id}",
        {"state": "pending"},
        {"state": op.state},
    )
    await session.commit()
    return views.system_view(op)


@router.post(
    "/system-operations/{operation_id}/approve",
    summary="Approve (and post) a system operation",
    responses=PROBLEMS,
)
async def approve_system(
    operation_id: Id, body: NoteIn, session: SessionDep, hub: HubDep, me: Approver
) -> dict[str, Any]:
    return await _decide_system(session, hub, operation_id, True, body.note, me)


@router.post(
    "/system-operations/{operation_id}/reject", summary="Reject a system operation", responses=PROBLEMS
)
async def reject_system(
    operation_id: Id, body: NoteIn, session: SessionDep, hub: HubDep, me: Approver
) -> dict[str, Any]:
    return await _decide_system(session, hub, operation_id, False, body.note, me)


# --- redeem requests ------------------------------------------------------------------------------------


async def _precision(session: Any, r: RedeemRequest) -> int:
    p = await session.scalar(
        select(Issuer.precision).join(Wallet, Wallet.issuer_id == Issuer.id).where(Wallet.id == r.wallet_id)
    )
    return int(p or 0)


@router.get("/redeem-requests", summary="Customers' redeem requests", responses=PROBLEMS)
async def list_redeem(
    session: ReadSessionDep,
    _: Reader,
    state: Literal["pending", "approved", "sent", "paid", "cancelled"] | None = None,
) -> dict[str, Any]:
    q = select(RedeemRequest).order_by(RedeemRequest.id.desc()).limit(LIST_LIMIT)
    if state is not None:
        q = q.where(RedeemRequest.state == state)
    rows = (await session.scalars(q)).all()
    return {
        "items": [redeem.view(r, await _precision(session, r)) for r in rows],
        "states": list(REDEEM_STATES),
    }


async def _decide_redeem(
    session: Any, hub: Any, request_id: int, approve: bool, reason: str, me: Principal
) -> dict[str, Any]:
    try:
        r = await redeem.decide(
            session, hub.accounts, request_id, approve=approve, reason=reason, actor=service.Actor.of(me)
        )
    except Problem:
        await session.rollback()
        raise
    await audit.record(
        session,
        me,
        f"redeem.{'approve' if approve else 'cancel'}",
        f"redeem_request:{r.id}",
        {"state": "pending"},
        {"state": r.state, "reason": r.reason, "order_number": r.order_number},
    )
    await session.commit()
    return redeem.view(r, await _precision(session, r))


@router.post("/redeem-requests/{request_id}/approve", summary="Approve a redeem request", responses=PROBLEMS)
async def approve_redeem(
    request_id: Id, body: ReasonIn, session: SessionDep, hub: HubDep, me: RedeemManager
) -> dict[str, Any]:
    return await _decide_redeem(session, hub, request_id, True, body.reason, me)


@router.post(
    "/redeem-requests/{request_id}/cancel",
    summary="Cancel a redeem request with a reason",
    responses=PROBLEMS,
)
async def cancel_redeem(
    request_id: Id, body: ReasonIn, session: SessionDep, hub: HubDep, me: RedeemManager
) -> dict[str, Any]:
    return await _decide_redeem(session, hub, request_id, False, body.reason, me)


async def _transfer_response(
    session: Any, hub: Any, me: Principal, rows: list[RedeemRequest], marked: list[RedeemRequest]
) -> Response:
    for r in marked:
        await audit.record(
            session,
            me,
            "redeem.send",
            f"redeem_request:{r.id}",
            {"state": "approved"},
            {"state": r.state, "order_number": r.order_number, "transfer_batch": r.transfer_batch},
        )
    data = redeem_transfers.build_file(rows, hub.settings.business_tz)
    await session.commit()
    return Response(
        data,
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{rows[0].transfer_batch}.xml"'},
    )


@router.post(
    "/redeem-requests/transfer-file",
    summary="The pain.001 of every approved bank transfer (marked sent)",
    responses=PROBLEMS,
)
async def send_approved_redeem(session: SessionDep, hub: HubDep, me: RedeemManager) -> Response:
    """One credit transfer file (pain.001.001.03) of every approved, not yet sent bank-transfer request,
    which are marked ``sent``; 409 when none waits, 422 when our bank details
    (``PAYMUX_SETTLEMENT_DEBTOR_*``) are not set."""
    try:
        rows = await redeem_transfers.file_of_approved(session, actor=service.Actor.of(me))
    except Problem:
        await session.rollback()
        raise
    return await _transfer_response(session, hub, me, rows, rows)


@router.post(
    "/redeem-requests/{request_id}/transfer-file",
    summary="The pain.001 of a bank-transfer redeem request (marked sent)",
    responses=PROBLEMS,
)
async def send_redeem(request_id: Id, session: SessionDep, hub: HubDep, me: RedeemManager) -> Response:
    """The credit transfer file of an approved bank-transfer request, which is marked ``sent``; a sent
    request's file again, unchanged (the whole file it was sent in). 404 for a cash request, 409 when
    not approved, 422 when our bank details (``PAYMUX_SETTLEMENT_DEBTOR_*``) are not set."""
    try:
        rows, marked = await redeem_transfers.file_of(session, request_id, actor=service.Actor.of(me))
    except Problem:
        await session.rollback()
        raise
    return await _transfer_response(session, hub, me, rows, marked)


# --- one desk (after the fixed paths) -------------------------------------------------------------------


@router.get("/{desk_id}", summary="A cash desk", responses=PROBLEMS)
async def get_desk(desk_id: Id, session: ReadSessionDep, _: Reader) -> dict[str, Any]:
    return await views.desk_view(session, await service.get_desk(session, desk_id))


@router.put("/{desk_id}/cashiers", summary="Choose the desk's cashiers", responses=PROBLEMS)
async def put_cashiers(desk_id: Id, body: CashiersIn, session: SessionDep, me: Manager) -> dict[str, Any]:
    try:
        desk = await service.get_desk(session, desk_id)
        before = await service.cashiers_of(session, desk.id)
        after = await service.set_cashiers(session, desk, list(body.cashiers))
    except Problem:
        await session.rollback()
        raise
    await audit.record(
        session, me, "cashdesk.cashiers", f"cashdesk:{desk.code}", {"cashiers": before}, {"cashiers": after}
    )
    await session.commit()
    return await views.desk_view(session, desk)


@router.post("/{desk_id}/days", status_code=201, summary="Open the desk's cash day", responses=PROBLEMS)
async def open_day(
    desk_id: Id, body: CountIn, session: SessionDep, hub: HubDep, me: Operator
) -> dict[str, Any]:
    counts = parse_counts(body.counts)
    try:
        day = await service.open_day(session, hub.accounts, desk_id, counts, service.Actor.of(me))
    except Problem:
        await session.rollback()
        raise
    view = views.day_view(day)
    await audit.record(session, me, "cashday.open", f"cashday:{day.id}", None, view)
    await session.commit()
    return view


@router.post("/{desk_id}/days/close", summary="Close the desk's cash day with the count", responses=PROBLEMS)
async def close_day(
    desk_id: Id, body: CountIn, session: SessionDep, hub: HubDep, me: Operator
) -> dict[str, Any]:
    counts = parse_counts(body.counts)
    try:
        day = await service.close_day(session, hub.accounts, desk_id, counts, service.Actor.of(me))
    except Problem:
        await session.rollback()
        raise
    view = views.day_view(day)
    await audit.record(session, me, "cashday.close", f"cashday:{day.id}", {"state": "open"}, view)
    await session.commit()
    return view


@router.post(
    "/{desk_id}/operations", summary="A cash top-up, withdrawal or redeem payout", responses=PROBLEMS
)
async def make_operation(
    desk_id: Id,
    body: OperationIn,
    session: SessionDep,
    hub: HubDep,
    me: Operator,
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    amount = 0
    if body.type != "redeem_payout":
        if body.wallet is None or body.amount is None:
            raise invalid("invalid-operation", "give the wallet and the amount")
        w = await session.get(Wallet, body.wallet)
        if w is None:
            raise not_found(f"wallet {body.wallet}")
        issuer = await session.get(Issuer, w.issuer_id)
        assert issuer is not None
        amount = parse_units(body.amount, issuer.precision)
    elif body.redeem_request is None:
        raise invalid("invalid-operation", "give the redeem request")
    req = service.CashRequest(
        desk_id, _key(idempotency_key), body.type, body.wallet, amount, body.document, body.redeem_request
    )
    try:
        op, created = await service.cash_operation(session, hub.accounts, req, service.Actor.of(me))
    except Problem:
        await session.rollback()
        raise
    view = views.operation_view(op)
    if created:
        await audit.record(session, me, f"cash.{op.type}", f"cash_operation:{op.id}", None, view)
    await session.commit()
    if op.state == "failed" and op.problem:
        return problem_response(int(op.problem.get("status", 422)), {**op.problem, "operation_id": op.id})
    return JSONResponse(view, status_code=201 if created else 200)


@router.post(
    "/{desk_id}/operations/{operation_id}/reverse",
    summary="The counter-operation of a cash operation, with a reason",
    responses=PROBLEMS,
)
async def reverse_operation(
    desk_id: Id,
    operation_id: Id,
    body: ReverseIn,
    session: SessionDep,
    hub: HubDep,
    me: Operator,
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    try:
        op, created = await service.reverse(
            session,
            hub.accounts,
            desk_id=desk_id,
            operation_id=operation_id,
            idempotency_key=_key(idempotency_key),
            reason=body.reason,
            actor=service.Actor.of(me),
        )
    except Problem:
        await session.rollback()
        raise
    view = views.operation_view(op)
    if created:
        await audit.record(session, me, "cash.reversal", f"cash_operation:{op.id}", None, view)
    await session.commit()
    return JSONResponse(view, status_code=201 if created else 200)


@router.get("/{desk_id}/report", summary="The cash desk report for a period and currency", responses=PROBLEMS)
async def report(
    desk_id: Id,
    session: ReadSessionDep,
    _: Reader,
    currency: Annotated[
        str | None, Query(pattern=r"^[A-Z]{3}$", description="default: the desk's first")
    ] = None,
    date_from: Annotated[dt.date | None, Query(alias="from", description="UTC date; default: today")] = None,
    date_to: Annotated[
        dt.date | None, Query(alias="to", description="UTC date, included; default: from")
    ] = None,
) -> dict[str, Any]:
    desk = await service.get_desk(session, desk_id)
    currency = currency or desk.currencies[0]
    if currency not in desk.currencies:
        raise invalid("currency-not-at-desk", f"desk {desk.code} holds no {currency}")
    date_from = date_from or dt.datetime.now(dt.UTC).date()
    date_to = date_to or date_from
    if date_to < date_from or (date_to - date_from).days > 366 or date_to >= dt.date(9999, 12, 31):
        raise invalid("invalid-period", "the period is from a date to a later one, a year at most")
    start = dt.datetime.combine(date_from, dt.time(), dt.UTC)
    end = dt.datetime.combine(date_to, dt.time(), dt.UTC) + dt.timedelta(days=1)
    return await views.desk_report(session, desk, currency, start, end)
