"""Cash (area "Cash"): cash desks and their cash days, the cashier's desk (open a day, top up, withdraw,
counter-operations, redeem payouts, close with the count), the accountant's desk (closed days to
accept, cashiers' operations, system operations to propose, redeem requests to decide), the CFO's
(system operations to approve, every desk's balance) and the cash desk report.

The same services as the admin API (``paymux.cashdesks``), audited the same way. Every list exports
to Excel.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import and_, select

from paymux.api.params import Id, parse_id
from paymux.audit import service as audit
from paymux.auth import permissions as P
from paymux.auth.principal import Principal
from paymux.auth.user_models import Organization
from paymux.backoffice.framework import (
    CASH,
    DbDep,
    MenuEntry,
    PageNotFound,
    ReadDbDep,
    Section,
    redirect,
    register,
    render,
    require,
    require_before_reading,
    section_router,
)
from paymux.backoffice.listing import Column, Filter, ListSpec, respond
from paymux.backoffice.sections.ops import local_day_start, plain_money_for
from paymux.cashdesks import redeem, redeem_transfers, service, views
from paymux.cashdesks.models import (
    DAY_STATES,
    REDEEM_STATES,
    SYSTEM_OPERATION_TYPES,
    SYSTEM_STATES,
    CashDay,
    CashDesk,
    CashOperation,
    CashSystemOperation,
    RedeemRequest,
)
from paymux.cashdesks.receipts import receipt_pdf
from paymux.errors import Problem
from paymux.ledger.models import Account
from paymux.money import CURRENCIES, MoneyError, parse_amount
from paymux.offload import in_thread
from paymux.runtime import Hub
from paymux.wallets.models import WalletCustomer

router = section_router()
register(
    Section(
        "cashdesks",
        router,
        menu=(
            MenuEntry("Cash desks", "/backoffice/cash", P.CASHDESK_READ, 1, area=CASH),
            MenuEntry("Cash days", "/backoffice/cash/days", P.CASHDESK_READ, 2, area=CASH),
            MenuEntry("Cashiers' operations", "/backoffice/cash/operations", P.CASHDESK_READ, 3, area=CASH),
            MenuEntry("System operations", "/backoffice/cash/system", P.CASHDESK_READ, 4, area=CASH),
            MenuEntry("Redeem requests", "/backoffice/cash/redeem", P.CASHDESK_READ, 5, area=CASH),
            MenuEntry("Desk balances", "/backoffice/cash/balances", P.CASHDESK_READ, 6, area=CASH),
            MenuEntry("Cash desk report", "/backoffice/cash/report", P.CASHDESK_READ, 7, area=CASH),
        ),
        permissions=(
            P.CASHDESK_READ,
            P.CASHDESK_MANAGE,
            P.CASHDESK_OPERATE,
            P.CASHDESK_ACCEPT,
            P.CASHDESK_SYSTEM_PROPOSE,
            P.CASHDESK_SYSTEM_APPROVE,
            P.REDEEM_MANAGE,
        ),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.CASHDESK_READ))]
Manager = Annotated[Principal, Depends(require(P.CASHDESK_MANAGE))]
Operator = Annotated[Principal, Depends(require(P.CASHDESK_OPERATE))]
Acceptor = Annotated[Principal, Depends(require(P.CASHDESK_ACCEPT))]
Proposer = Annotated[Principal, Depends(require(P.CASHDESK_SYSTEM_PROPOSE))]
Approver = Annotated[Principal, Depends(require(P.CASHDESK_SYSTEM_APPROVE))]
RedeemManager = Annotated[Principal, Depends(require(P.REDEEM_MANAGE))]
Text = Annotated[str, Form(max_length=500)]
HOME = "/backoffice/cash"
MAX_DESKS = 1000


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _clean(text: str) -> str:
    return " ".join(text.split()) if text.isprintable() else ""


def _amount(text: str, currency: str, *, zero: bool = False) -> int | None:
    raw = text.strip().replace(" ", "").replace(",", ".")
    try:
        return parse_amount(raw, currency, allow_zero=zero)
    except MoneyError:
        return None


def _key() -> str:
    return secrets.token_urlsafe(16)


async def _form_counts(request: Request, desk: CashDesk) -> dict[str, int] | None:
    form = await request.form()
    out: dict[str, int] = {}
    for cur in desk.currencies:
        value = form.get(f"count_{cur}")
        minor = _amount(value, cur, zero=True) if isinstance(value, str) else None
        if minor is None:
            return None
        out[cur] = minor
    return out


def _day(value: str) -> dt.date | None:
    try:
        day = dt.date.fromisoformat(value.strip())
    except ValueError:
        return None
    return day if dt.date(1970, 1, 2) <= day <= dt.date(9998, 12, 31) else None


# --- desks ----------------------------------------------------------------------------------------------


def _desk_spec() -> ListSpec:
    return ListSpec(
        query=select(CashDesk, Organization.name.label("org")).join(
            Organization, Organization.id == CashDesk.organization_id
        ),
        columns=[
            Column("code", "Code", CashDesk.code, lambda r: r[0].code),
            Column("name", "Name", CashDesk.name, lambda r: r[0].name),
            Column("organization", "Organization", Organization.name, lambda r: r.org),
            Column("currencies", "Currencies", None, lambda r: r[0].currencies),
            Column("created_at", "Created", CashDesk.created_at, lambda r: r[0].created_at),
            Column("id", "", None, lambda r: r[0].id),
        ],
        search=[CashDesk.code, CashDesk.name, Organization.name],
        default_sort="code",
        default_desc=False,
        sheet="cash-desks",
    )


@router.get("/cash")
async def desks(request: Request, session: ReadDbDep, me: Reader) -> Response:
    """The cash desks; a cashier's own desks first."""
    page = await _desk_spec().run(session, request)
    if page.export:
        page.spec.columns = [c for c in page.spec.columns if c.key != "id"]
    mine = await service.desks_of_user(session, me.user_id) if me.user_id is not None else []
    return respond(request, page, "cash/desks.html", mine=mine)


@router.post("/cash/desks")
async def desk_create(
    session: DbDep,
    me: Manager,
    code: Annotated[str, Form(max_length=32)] = "",
    name: Annotated[str, Form(max_length=200)] = "",
    organization: Annotated[str, Form(max_length=64)] = "",
    currencies: Annotated[str, Form(max_length=100)] = "",
    cashiers: Text = "",
) -> Response:
    curs = [c.strip().upper() for c in currencies.replace(";", ",").split(",") if c.strip()]
    users = [u.strip() for u in cashiers.replace(";", ",").split(",") if u.strip()]
    if not re.match(r"^[a-z0-9][a-z0-9_-]{0,31}\Z", code.strip()) or not _clean(name):
        return redirect(HOME, error="Give the desk's code (small letters, digits) and name.")
    try:
        desk = await service.create_desk(
            session, code=code.strip(), name=_clean(name), organization=organization.strip(), currencies=curs
        )
        await service.set_cashiers(session, desk, users)
    except Problem as e:
        await session.rollback()
        return redirect(HOME, error=e.detail or e.title)
    view = await views.desk_view(session, desk)
    await audit.record(session, me, "cashdesk.create", f"cashdesk:{desk.code}", None, view)
    await session.commit()
    return redirect(f"{HOME}/desks/{desk.id}", "The cash desk is created.")


async def _desk_or_404(session: Any, desk_id: int) -> CashDesk:
    desk = await session.get(CashDesk, desk_id)
    if desk is None:
        raise PageNotFound()
    return desk


@router.get("/cash/desks/{desk_id}")
async def desk_page(request: Request, desk_id: Id, session: ReadDbDep, me: Reader) -> Response:
    """A desk: its cash, cashiers and open day with the day's operations; the cashier's forms."""
    desk = await _desk_or_404(session, desk_id)
    view = await views.desk_view(session, desk)
    day = await service.open_day_of(session, desk, lock=False)
    ops: list[CashOperation] = []
    if day is not None:
        ops = list(
            (
                await session.scalars(
                    select(CashOperation)
                    .where(CashOperation.day_id == day.id)
                    .order_by(CashOperation.id.desc())
                )
            ).all()
        )
    reversed_ids = {o.reverses_id for o in ops if o.reverses_id}
    payable = (
        await session.scalars(
            select(RedeemRequest)
            .where(RedeemRequest.state == "approved", RedeemRequest.method == "cash")
            .where(RedeemRequest.currency.in_(desk.currencies))
            .order_by(RedeemRequest.id)
            .limit(100)
        )
    ).all()
    works_here = me.user_id is None or desk.id in await service.desks_of_user(session, me.user_id)
    return render(
        request,
        "cash/desk.html",
        desk=view,
        day=views.day_view(day) if day else None,
        day_row=day,
        ops=ops,
        reversed_ids=reversed_ids,
        payable=payable,
        money=plain_money_for(request),
        can_operate=me.can(P.CASHDESK_OPERATE) and works_here,
        key=_key(),
    )


@router.post("/cash/desks/{desk_id}/open")
async def day_open(request: Request, desk_id: Id, session: DbDep, me: Operator) -> Response:
    desk = await _desk_or_404(session, desk_id)
    back = f"{HOME}/desks/{desk.id}"
    counts = await _form_counts(request, desk)
    if counts is None:
        return redirect(back, error="Give the count of each currency.")
    try:
        day = await service.open_day(session, _hub(request).accounts, desk.id, counts, service.Actor.of(me))
    except Problem as e:
        await session.rollback()
        return redirect(back, error=e.detail or e.title)
    await audit.record(session, me, "cashday.open", f"cashday:{day.id}", None, views.day_view(day))
    await session.commit()
    return redirect(back, "The cash day is open.")


@router.post("/cash/desks/{desk_id}/close")
async def day_close(request: Request, desk_id: Id, session: DbDep, me: Operator) -> Response:
    desk = await _desk_or_404(session, desk_id)
    back = f"{HOME}/desks/{desk.id}"
    counts = await _form_counts(request, desk)
    if counts is None:
        return redirect(back, error="Give the count of each currency.")
    try:
        day = await service.close_day(session, _hub(request).accounts, desk.id, counts, service.Actor.of(me))
    except Problem as e:
        await session.rollback()
        return redirect(back, error=e.detail or e.title)
    view = views.day_view(day)
    await audit.record(session, me, "cashday.close", f"cashday:{day.id}", {"state": "open"}, view)
    await session.commit()
    return redirect(f"{HOME}/days/{day.id}", "The cash day is closed.")


@router.post("/cash/desks/{desk_id}/operations")
async def operation_make(
    request: Request,
    desk_id: Id,
    session: DbDep,
    me: Operator,
    type: Annotated[str, Form(max_length=20)] = "",
    wallet: Annotated[str, Form(max_length=20)] = "",
    amount: Annotated[str, Form(max_length=30)] = "",
    document: Annotated[str, Form(max_length=200)] = "",
    redeem_request: Annotated[str, Form(max_length=20)] = "",
    key: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """A cash top-up or withdrawal, or a redeem payout; the form's key makes a second send harmless."""
    desk = await _desk_or_404(session, desk_id)
    back = f"{HOME}/desks/{desk.id}"
    if not key or not key.isascii() or not key.isprintable() or " " in key:
        return redirect(back, error="The form is out of date: open the page again.")
    wallet_id, minor = parse_id(wallet), 0
    request_id = parse_id(redeem_request)
    if type in ("topup", "withdrawal"):
        from paymux.wallets.models import Issuer, Wallet

        w = await session.get(Wallet, wallet_id) if wallet_id else None
        issuer = await session.get(Issuer, w.issuer_id) if w else None
        if w is None or issuer is None:
            return redirect(back, error="No such wallet.")
        got = _amount(amount, issuer.currency) if issuer.currency in CURRENCIES else None
        if got is None:
            return redirect(back, error="Give the amount, such as 150.00.")
        minor = got
    elif type != "redeem_payout" or request_id is None:
        return redirect(back, error="Choose the operation.")
    req = service.CashRequest(desk.id, key, type, wallet_id, minor, _clean(document) or None, request_id)
    try:
        op, created = await service.cash_operation(session, _hub(request).accounts, req, service.Actor.of(me))
    except Problem as e:
        await session.rollback()
        return redirect(back, error=e.detail or e.title)
    if created:
        await audit.record(
            session, me, f"cash.{op.type}", f"cash_operation:{op.id}", None, views.operation_view(op)
        )
    await session.commit()
    if op.state != "done":
        detail = (op.problem or {}).get("detail") or (op.problem or {}).get("title") or ""
        return redirect(back, error=f"The operation is refused: {detail}")
    return redirect(back, f"Operation {op.id} is done.")


@router.post("/cash/desks/{desk_id}/operations/{operation_id}/reverse")
async def operation_reverse(
    request: Request,
    desk_id: Id,
    operation_id: Id,
    session: DbDep,
    me: Operator,
    reason: Text = "",
    key: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    back = f"{HOME}/desks/{desk_id}"
    if not key or not key.isascii() or not key.isprintable() or " " in key:
        return redirect(back, error="The form is out of date: open the page again.")
    try:
        op, created = await service.reverse(
            session,
            _hub(request).accounts,
            desk_id=desk_id,
            operation_id=operation_id,
            idempotency_key=key,
            reason=_clean(reason),
            actor=service.Actor.of(me),
        )
    except Problem as e:
        await session.rollback()
        return redirect(back, error=e.detail or e.title)
    if created:
        await audit.record(
            session, me, "cash.reversal", f"cash_operation:{op.id}", None, views.operation_view(op)
        )
    await session.commit()
    return redirect(back, f"Operation {op.id} reverses operation {operation_id}.")


@router.get("/cash/operations/{operation_id}/receipt")
async def receipt(operation_id: Id, session: ReadDbDep, _: Reader) -> Response:
    op = await session.get(CashOperation, operation_id)
    if op is None:
        raise PageNotFound()
    data = await in_thread(receipt_pdf, await views.receipt_data(session, op))
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="receipt-{op.id}.pdf"'},
    )


# --- balances -------------------------------------------------------------------------------------------


def _balance_spec(request: Request) -> ListSpec:
    money = plain_money_for(request)
    return ListSpec(
        query=select(CashDesk, Organization.name.label("org"), Account.currency, Account.balance)
        .join(Organization, Organization.id == CashDesk.organization_id)
        .join(Account, and_(Account.kind == service.DESK, Account.owner_id == CashDesk.id)),
        columns=[
            Column("desk", "Cash desk", CashDesk.code, lambda r: r[0].code),
            Column("name", "Name", CashDesk.name, lambda r: r[0].name),
            Column("organization", "Organization", Organization.name, lambda r: r.org),
            Column("currency", "Currency", Account.currency, lambda r: r.currency),
            Column("balance", "Cash", Account.balance, lambda r: money(r.balance, r.currency)),
            Column("id", "", None, lambda r: r[0].id),
        ],
        search=[CashDesk.code, CashDesk.name, Organization.name],
        filters=[Filter("currency", "Currency", lambda q, v: q.where(Account.currency == v.strip().upper()))],
        default_sort="desk",
        default_desc=False,
        sheet="desk-balances",
    )


@router.get("/cash/balances")
async def balances(request: Request, session: ReadDbDep, _: Reader) -> Response:
    """Every desk's cash per currency (the CFO's view)."""
    page = await _balance_spec(request).run(session, request)
    if page.export:
        page.spec.columns = [c for c in page.spec.columns if c.key != "id"]
    return respond(
        request, page, "cash/list.html", title="Desk balances", table="balances", links={"desk": "desks"}
    )


# --- days -----------------------------------------------------------------------------------------------


def _day_spec(request: Request) -> ListSpec:
    def amounts(values: dict[str, Any] | None) -> str:
        return ", ".join(f"{v} {c}" for c, v in (views.amounts(values) or {}).items())

    return ListSpec(
        query=select(CashDay, CashDesk.code.label("desk")).join(CashDesk, CashDesk.id == CashDay.desk_id),
        columns=[
            Column("id", "Day", CashDay.id, lambda r: r[0].id),
            Column("desk", "Cash desk", CashDesk.code, lambda r: r.desk),
            Column("state", "State", CashDay.state, lambda r: r[0].state),
            Column("opened_at", "Opened", CashDay.opened_at, lambda r: r[0].opened_at),
            Column("opened_by", "Opened by", CashDay.opened_by, lambda r: r[0].opened_by),
            Column("opening", "Opening count", None, lambda r: amounts(r[0].opening_count)),
            Column("closed_at", "Closed", CashDay.closed_at, lambda r: r[0].closed_at),
            Column("closing", "Closing count", None, lambda r: amounts(r[0].closing_count)),
            Column("difference", "Difference", None, lambda r: amounts(r[0].difference)),
            Column("accepted_by", "Accepted by", None, lambda r: r[0].accepted_by),
        ],
        search=[CashDesk.code, CashDay.opened_by],
        filters=[
            Filter("state", "State", lambda q, v: q.where(CashDay.state == v), [(s, s) for s in DAY_STATES]),
            Filter("desk", "Cash desk", lambda q, v: q.where(CashDesk.code == v.strip())),
        ],
        default_sort="id",
        sheet="cash-days",
    )


@router.get("/cash/days")
async def days(request: Request, session: ReadDbDep, _: Reader) -> Response:
    """Cash days; ``state=closed`` is the accountant's queue."""
    page = await _day_spec(request).run(session, request)
    return respond(request, page, "cash/list.html", title="Cash days", table="days", links={"id": "days"})


@router.get("/cash/days/{day_id}")
async def day_page(request: Request, day_id: Id, session: ReadDbDep, _: Reader) -> Response:
    """A day to reconcile: counts, books, differences, totals and every operation."""
    day = await session.get(CashDay, day_id)
    if day is None:
        raise PageNotFound()
    desk = await _desk_or_404(session, day.desk_id)
    ops = (
        await session.scalars(
            select(CashOperation).where(CashOperation.day_id == day.id).order_by(CashOperation.id)
        )
    ).all()
    totals = await service.day_totals(session, day)
    return render(
        request,
        "cash/day.html",
        day=views.day_view(day),
        day_row=day,
        desk=await views.desk_view(session, desk),
        ops=ops,
        totals=totals,
        money=plain_money_for(request),
    )


@router.post("/cash/days/{day_id}/accept")
async def day_accept(day_id: Id, session: DbDep, me: Acceptor, note: Text = "") -> Response:
    back = f"{HOME}/days/{day_id}"
    try:
        day = await service.accept_day(session, day_id, service.Actor.of(me), _clean(note))
    except Problem as e:
        await session.rollback()
        return redirect(back, error=e.detail or e.title)
    await audit.record(
        session,
        me,
        "cashday.accept",
        f"cashday:{day.id}",
        {"state": "closed"},
        {"state": "accepted", "note": day.accept_note},
    )
    await session.commit()
    return redirect(back, "The cash day is accepted.")


# --- cashiers' operations -------------------------------------------------------------------------------


def _operation_spec(request: Request) -> ListSpec:
    money = plain_money_for(request)
    return ListSpec(
        query=select(
            CashOperation, CashDesk.code.label("desk"), WalletCustomer.external_ref.label("customer")
        )
        .join(CashDesk, CashDesk.id == CashOperation.desk_id)
        .outerjoin(WalletCustomer, WalletCustomer.id == CashOperation.customer_id),
        columns=[
            Column("id", "Operation", CashOperation.id, lambda r: r[0].id),
            Column("created_at", "Time", CashOperation.created_at, lambda r: r[0].created_at),
            Column("desk", "Cash desk", CashDesk.code, lambda r: r.desk),
            Column("day", "Day", CashOperation.day_id, lambda r: r[0].day_id),
            Column("cashier", "Cashier", CashOperation.cashier, lambda r: r[0].cashier),
            Column("type", "Type", CashOperation.type, lambda r: r[0].type),
            Column("state", "State", CashOperation.state, lambda r: r[0].state),
            Column("customer", "Customer", None, lambda r: r.customer),
            Column("wallet", "Wallet", None, lambda r: r[0].wallet_id),
            Column("amount", "Amount", CashOperation.amount, lambda r: money(r[0].amount, r[0].currency)),
            Column("currency", "Currency", CashOperation.currency, lambda r: r[0].currency),
            Column("fee", "Fee", None, lambda r: money(r[0].fee, r[0].currency)),
            Column("reverses", "Reverses", None, lambda r: r[0].reverses_id),
            Column("reason", "Reason", None, lambda r: r[0].reason or (r[0].problem or {}).get("detail")),
        ],
        search=[CashOperation.cashier, WalletCustomer.external_ref, CashDesk.code],
        filters=[
            Filter("desk", "Cash desk", lambda q, v: q.where(CashDesk.code == v.strip())),
            Filter("cashier", "Cashier", lambda q, v: q.where(CashOperation.cashier == v.strip())),
            Filter(
                "type",
                "Type",
                lambda q, v: q.where(CashOperation.type == v),
                [(t, t) for t in ("topup", "withdrawal", "reversal", "redeem_payout")],
            ),
            Filter("day", "Day", lambda q, v: q.where(CashOperation.day_id == (parse_id(v) or 0))),
        ],
        default_sort="id",
        sheet="cash-operations",
    )


@router.get("/cash/operations")
async def operations(request: Request, session: ReadDbDep, _: Reader) -> Response:
    """The history of cashiers' operations."""
    page = await _operation_spec(request).run(session, request)
    return respond(
        request,
        page,
        "cash/list.html",
        title="Cashiers' operations",
        table="operations",
        links={"id": "receipt"},
    )


# --- system operations ----------------------------------------------------------------------------------


def _system_spec(request: Request) -> ListSpec:
    money = plain_money_for(request)
    return ListSpec(
        query=select(CashSystemOperation, CashDesk.code.label("desk")).join(
            CashDesk, CashDesk.id == CashSystemOperation.desk_id
        ),
        columns=[
            Column("id", "Operation", CashSystemOperation.id, lambda r: r[0].id),
            Column("type", "Type", CashSystemOperation.type, lambda r: r[0].type),
            Column("desk", "Cash desk", CashDesk.code, lambda r: r.desk),
            Column(
                "amount", "Amount", CashSystemOperation.amount, lambda r: money(r[0].amount, r[0].currency)
            ),
            Column("currency", "Currency", CashSystemOperation.currency, lambda r: r[0].currency),
            Column("state", "State", CashSystemOperation.state, lambda r: r[0].state),
            Column("note", "Note", None, lambda r: r[0].note),
            Column("proposed_by", "Proposed by", None, lambda r: r[0].proposed_by),
            Column("proposed_at", "Proposed", CashSystemOperation.proposed_at, lambda r: r[0].proposed_at),
            Column("decided_by", "Decided by", None, lambda r: r[0].decided_by),
            Column("decision_note", "Decision note", None, lambda r: r[0].decision_note),
        ],
        search=[CashDesk.code, CashSystemOperation.note, CashSystemOperation.proposed_by],
        filters=[
            Filter(
                "state",
                "State",
                lambda q, v: q.where(CashSystemOperation.state == v),
                [(s, s) for s in SYSTEM_STATES],
            ),
            Filter(
                "type",
                "Type",
                lambda q, v: q.where(CashSystemOperation.type == v),
                [(t, t) for t in SYSTEM_OPERATION_TYPES],
            ),
        ],
        default_sort="id",
        sheet="system-operations",
    )


@router.get("/cash/system")
async def system_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    page = await _system_spec(request).run(session, request)
    desks = (await session.scalars(select(CashDesk).order_by(CashDesk.code).limit(MAX_DESKS))).all()
    return respond(
        request,
        page,
        "cash/system.html",
        desks=desks,
        me_key=service.Actor.of(me).key,
        types=SYSTEM_OPERATION_TYPES,
    )


@router.post("/cash/system")
async def system_propose(
    session: DbDep,
    me: Proposer,
    type: Annotated[str, Form(max_length=20)] = "",
    desk: Annotated[str, Form(max_length=20)] = "",
    currency: Annotated[str, Form(max_length=3)] = "",
    amount: Annotated[str, Form(max_length=30)] = "",
    note: Text = "",
) -> Response:
    back = f"{HOME}/system"
    desk_id = parse_id(desk)
    minor = _amount(amount, currency) if currency in CURRENCIES else None
    if desk_id is None or minor is None or type not in SYSTEM_OPERATION_TYPES:
        return redirect(back, error="Choose the type and the desk, and give the currency and the amount.")
    try:
        op = await service.propose_system(
            session,
            type=type,
            desk_id=desk_id,
            currency=currency,
            amount=minor,
            note=_clean(note),
            actor=service.Actor.of(me),
        )
    except Problem as e:
        await session.rollback()
        return redirect(back, error=e.detail or e.title)
    await audit.record(
        session, me, "cash_system.propose", f"cash_system:{op.id}", None, views.system_view(op)
    )
    await session.commit()
    return redirect(f"{back}?state=pending", "The operation waits for approval.")


@router.post("/cash/system/{operation_id}/decide")
async def system_decide(
    request: Request,
    operation_id: Id,
    session: DbDep,
    me: Approver,
    action: Annotated[str, Form(max_length=10)] = "",
    note: Text = "",
) -> Response:
    back = f"{HOME}/system?state=pending"
    if action not in ("approve", "reject"):
        return redirect(back, error="Choose approve or reject.")
    try:
        op = await service.decide_system(
            session,
            _hub(request).accounts,
            operation_id,
            approve=action == "approve",
            note=_clean(note),
            actor=service.Actor.of(me),
        )
    except Problem as e:
        await session.rollback()
        return redirect(back, error=e.detail or e.title)
    await audit.record(
        session,
        me,
        f"cash_system.{action}",
        f"cash_system:{op.id}",
        {"state": "pending"},
        {"state": op.state},
    )
    await session.commit()
    return redirect(
        back, "The operation is approved." if op.state == "approved" else "The operation is rejected."
    )


# --- redeem requests ------------------------------------------------------------------------------------


def _redeem_spec(request: Request) -> ListSpec:
    money = plain_money_for(request)
    return ListSpec(
        query=select(
            RedeemRequest, WalletCustomer.external_ref.label("customer"), WalletCustomer.name.label("cname")
        ).join(WalletCustomer, WalletCustomer.id == RedeemRequest.customer_id),
        columns=[
            Column("id", "Request", RedeemRequest.id, lambda r: r[0].id),
            Column("created_at", "Time", RedeemRequest.created_at, lambda r: r[0].created_at),
            Column("customer", "Customer", WalletCustomer.external_ref, lambda r: r.customer),
            Column("name", "Name", None, lambda r: r.cname),
            Column("wallet", "Wallet", None, lambda r: r[0].wallet_id),
            Column("method", "Method", RedeemRequest.method, lambda r: r[0].method),
            Column("amount", "Amount", RedeemRequest.amount, lambda r: money(r[0].amount, r[0].currency)),
            Column("currency", "Currency", RedeemRequest.currency, lambda r: r[0].currency),
            Column("iban", "IBAN", None, lambda r: r[0].iban),
            Column("state", "State", RedeemRequest.state, lambda r: r[0].state),
            Column("order_number", "Payment order", None, lambda r: r[0].order_number),
            Column("reason", "Reason", None, lambda r: r[0].reason),
            Column("decided_by", "Decided by", None, lambda r: r[0].decided_by),
        ],
        search=[WalletCustomer.external_ref, WalletCustomer.name, RedeemRequest.order_number],
        filters=[
            Filter(
                "state",
                "State",
                lambda q, v: q.where(RedeemRequest.state == v),
                [(s, s) for s in REDEEM_STATES],
            ),
            Filter(
                "method",
                "Method",
                lambda q, v: q.where(RedeemRequest.method == v),
                [("cash", "cash"), ("bank_transfer", "bank_transfer")],
            ),
        ],
        default_sort="id",
        sheet="redeem-requests",
    )


@router.get("/cash/redeem")
async def redeem_list(request: Request, session: ReadDbDep, _: Reader) -> Response:
    page = await _redeem_spec(request).run(session, request)
    return respond(request, page, "cash/redeem.html")


@router.post("/cash/redeem/{request_id}/decide")
async def redeem_decide(
    request: Request,
    request_id: Id,
    session: DbDep,
    me: RedeemManager,
    action: Annotated[str, Form(max_length=10)] = "",
    reason: Text = "",
) -> Response:
    back = f"{HOME}/redeem?state=pending"
    if action not in ("approve", "cancel"):
        return redirect(back, error="Choose approve or cancel.")
    try:
        r = await redeem.decide(
            session,
            _hub(request).accounts,
            request_id,
            approve=action == "approve",
            reason=_clean(reason),
            actor=service.Actor.of(me),
        )
    except Problem as e:
        await session.rollback()
        return redirect(back, error=e.detail or e.title)
    await audit.record(
        session,
        me,
        f"redeem.{action}",
        f"redeem_request:{r.id}",
        {"state": "pending"},
        {"state": r.state, "reason": r.reason, "order_number": r.order_number},
    )
    await session.commit()
    return redirect(
        back, "The request is approved." if r.state == "approved" else "The request is cancelled."
    )


@router.post("/cash/redeem/transfer-file")
async def redeem_transfer_file(
    request: Request, session: DbDep, me: RedeemManager, request_id: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    """The pain.001 of one bank-transfer request (``request_id``) or of every approved one not yet sent;
    they are marked sent (a sent request's file again, unchanged)."""
    back = f"{HOME}/redeem?method=bank_transfer"
    rid = parse_id(request_id) if request_id else None
    try:
        if request_id and rid is None:
            raise Problem(422, "invalid-id", "Invalid id", "no such redeem request")
        if rid is not None:
            rows, marked = await redeem_transfers.file_of(session, rid, actor=service.Actor.of(me))
        else:
            rows = marked = await redeem_transfers.file_of_approved(session, actor=service.Actor.of(me))
    except Problem as e:
        await session.rollback()
        return redirect(back, error=e.detail or e.title)
    for r in marked:
        await audit.record(
            session,
            me,
            "redeem.send",
            f"redeem_request:{r.id}",
            {"state": "approved"},
            {"state": r.state, "order_number": r.order_number, "transfer_batch": r.transfer_batch},
        )
    data = redeem_transfers.build_file(rows, _hub(request).settings.business_tz)
    await session.commit()
    return Response(
        data,
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{rows[0].transfer_batch}.xml"'},
    )


# --- the cash desk report -------------------------------------------------------------------------------


@router.get("/cash/report")
async def report(request: Request, session: ReadDbDep, me: Reader) -> Response:
    """A desk's days opened in the period, its operations in the currency (the list exports) and totals."""
    params = request.query_params
    desks = (await session.scalars(select(CashDesk).order_by(CashDesk.code).limit(MAX_DESKS))).all()
    desk = next((d for d in desks if d.code == params.get("desk", "")), None)
    currency = params.get("currency", "")
    today = dt.datetime.now(dt.UTC).astimezone(_hub(request).settings.business_tz).date()
    start_day = _day(params["from"]) if "from" in params else today
    end_day = _day(params["to"]) if "to" in params else start_day
    context: dict[str, Any] = {
        "desks": desks,
        "form": {
            "desk": desk.code if desk else "",
            "currency": currency,
            "from": (start_day or today).isoformat(),
            "to": (end_day or today).isoformat(),
        },
        "report": None,
    }
    if (
        desk is None
        or currency not in desk.currencies
        or start_day is None
        or end_day is None
        or end_day < start_day
    ):
        return render(request, "cash/report.html", page=None, **context)
    tz = me.timezone or "UTC"
    start = local_day_start(start_day, tz)
    end = local_day_start(end_day + dt.timedelta(days=1), tz)
    spec = _operation_spec(request)
    spec.query = spec.query.where(
        CashOperation.desk_id == desk.id,
        CashOperation.currency == currency,
        CashOperation.created_at >= start,
        CashOperation.created_at < end,
    )
    spec.filters, spec.page_size = [], 500
    spec.sheet = f"report-{desk.code}-{currency}"
    page = await spec.run(session, request)
    context["report"] = await views.desk_report(session, desk, currency, start, end)
    context["day_rows"] = (
        await session.scalars(
            select(CashDay)
            .where(CashDay.desk_id == desk.id, CashDay.opened_at >= start, CashDay.opened_at < end)
            .order_by(CashDay.opened_at)
        )
    ).all()
    return respond(request, page, "cash/report.html", **context)
