"""Settlement: postpaid providers' debts by day, statements, bank details, payment orders (create,
approve by a second person, export as pain.001 or 1C, mark paid), bank statement import.
``?export=xlsx`` downloads a page's tables."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import select

from paymux import audit
from paymux.api.params import Id, parse_id
from paymux.auth import permissions as P
from paymux.auth.access import zone
from paymux.auth.principal import Principal
from paymux.backoffice.framework import (
    FINANCE,
    DbDep,
    MenuEntry,
    PageNotFound,
    ReadDbDep,
    Section,
    language_of,
    redirect,
    register,
    render,
    require,
    require_before_reading,
    section_router,
    timezone_of,
)
from paymux.backoffice.i18n import translator
from paymux.backoffice.sections.ops import plain_money_for
from paymux.catalog.snapshot import ProviderView
from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.downloads import attachment, attachment_built
from paymux.errors import Problem
from paymux.ledger.models import Account
from paymux.runtime import Hub
from paymux.settlement import orders as order_service
from paymux.settlement import service
from paymux.settlement.debts import local_today, settled_through
from paymux.settlement.models import BankStatement, PaymentOrder, SettlementDetails
from paymux.settlement.statement import build_statement, to_xlsx
from paymux.settlement.xlsx import (
    Sheet,
    Translate,
    debts_sheet,
    orders_sheet,
    statement_lines_sheet,
    statements_sheet,
    workbook,
)

router = section_router()
register(
    Section(
        "settlement",
        router,
        menu=(MenuEntry("Settlement", "/backoffice/settlement", P.SETTLEMENT_READ, 35, area=FINANCE),),
        permissions=(
            P.SETTLEMENT_READ,
            P.SETTLEMENT_DETAILS,
            P.ORDERS_CREATE,
            P.ORDERS_APPROVE,
            P.ORDERS_PAY,
        ),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.SETTLEMENT_READ))]
DetailsWriter = Annotated[Principal, Depends(require(P.SETTLEMENT_DETAILS))]
Maker = Annotated[Principal, Depends(require(P.ORDERS_CREATE))]
Checker = Annotated[Principal, Depends(require(P.ORDERS_APPROVE))]
Banker = Annotated[Principal, Depends(require(P.ORDERS_PAY))]
BASE = "/backoffice/settlement"


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def _provider(request: Request, code: str) -> ProviderView:
    p = (await _hub(request).catalog.get()).providers_by_code.get(code)
    if p is None or p.settlement != "postpaid":
        raise PageNotFound()
    return p


def _export(
    request: Request, name: str, sheets: Callable[[Translate, ZoneInfo], list[Sheet]]
) -> Response | None:
    """The page's tables as an Excel file when the page is asked for with ``?export=xlsx``.

    ``sheets`` is called with the user's translator and timezone."""
    if request.query_params.get("export") != "xlsx":
        return None
    built = sheets(translator(language_of(request)), zone(timezone_of(request)))
    return attachment_built(lambda: workbook(built), f"{name}.xlsx")


def _export_url(request: Request) -> str:
    return "?" + request.url.include_query_params(export="xlsx").query


def _fail(path: str, e: Problem) -> Response:
    return redirect(path, error=e.detail or e.title)


def _day(value: str | None, default: dt.date) -> dt.date:
    try:
        return dt.date.fromisoformat(value) if value else default
    except ValueError:
        return default


@router.get("/settlement")
async def overview(request: Request, session: ReadDbDep, _: Reader) -> Response:
    snap = await _hub(request).catalog.get()
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for p in sorted((p for p in snap.providers.values() if p.settlement == "postpaid"), key=lambda p: p.code):
        accounts = (
            await session.scalars(
                select(Account).where(Account.kind == "provider_payable", Account.owner_id == p.id)
            )
        ).all()
        for a in accounts:
            covered = await settled_through(session, p.id, a.currency)
            rows.append(
                {
                    "p": p,
                    "currency": a.currency,
                    "owed": -a.balance,
                    "covered": covered,
                    "today": local_today(p.tz, now),
                }
            )
    orders = (await session.scalars(select(PaymentOrder).order_by(PaymentOrder.id.desc()).limit(20))).all()
    file = _export(
        request,
        "settlement",
        lambda t, tz: [
            debts_sheet(rows, tz, t),
            orders_sheet(orders, snap, tz, t, t("Latest payment orders")),
        ],
    )
    if file is not None:
        return file
    return render(
        request,
        "settlement/overview.html",
        rows=rows,
        orders=orders,
        snap=snap,
        money=plain_money_for(request),
        export=_export_url(request),
    )


@router.post("/settlement/orders")
async def create_orders(request: Request, session: DbDep, me: Maker) -> Response:
    form = await request.form()
    code = str(form.get("provider", "")).strip() or None
    try:
        made = await order_service.create_orders(
            session, await _hub(request).catalog.get(), actor=order_service.actor_id(me), provider_code=code
        )
    except Problem as e:
        await session.rollback()
        return _fail(BASE, e)
    for o in made:
        await audit.record(
            session, me, "payment_order.create", f"payment_order:{o.number}", None, order_service.state(o)
        )
    await session.commit()
    if not made:
        return redirect(BASE, "No uncovered debts: no order was created.")
    return redirect(f"{BASE}/orders", "Payment orders were created.")


@router.get("/settlement/providers/{code}")
async def provider_page(
    request: Request,
    code: str,
    session: ReadDbDep,
    _: Reader,
    start: str = "",
    end: str = "",
) -> Response:
    p = await _provider(request, code)
    today = local_today(p.tz, utcnow())
    last = _day(end, today)
    first = _day(start, last - dt.timedelta(days=13))
    if first > last or (last - first).days > 366:
        first = last - dt.timedelta(days=13)
    st = await build_statement(session, p, first, last)
    details = service.details_out(await session.get(SettlementDetails, p.id))
    return render(
        request,
        "settlement/provider.html",
        p=p,
        st=st,
        first=first,
        last=last,
        details=details,
        money=plain_money_for(request),
    )


@router.get("/settlement/providers/{code}/statement.xlsx")
async def statement_xlsx(
    request: Request, code: str, session: ReadDbDep, _: Reader, start: str = "", end: str = ""
) -> Response:
    p = await _provider(request, code)
    last = _day(end, local_today(p.tz, utcnow()))
    first = _day(start, last - dt.timedelta(days=13))
    if first > last or (last - first).days > 366:
        first = last - dt.timedelta(days=13)
    data = to_xlsx(await build_statement(session, p, first, last), _hub(request).settings.business_tz)
    name = f"statement-{code}-{first}-{last}.xlsx"
    return attachment(data, name)


@router.post("/settlement/providers/{code}/details")
async def save_details(request: Request, code: str, session: DbDep, me: DetailsWriter) -> Response:
    p = await _provider(request, code)
    form = await request.form()
    values: dict[str, Any] = {k: str(form.get(k, "")) for k in (*service.DETAIL_FIELDS, "purpose")}
    values["withhold_remuneration"] = form.get("withhold_remuneration") == "on"
    path = f"{BASE}/providers/{code}"
    try:
        before, after = await service.set_details(session, p, values, me.audit_name)
    except Problem as e:
        await session.rollback()
        return _fail(path, e)
    await audit.record(session, me, "settlement_details.put", f"provider:{code}", before, after)
    await session.commit()
    return redirect(path, "The bank details were saved.")


@router.get("/settlement/orders")
async def orders_list(request: Request, session: ReadDbDep, _: Reader, status: str = "") -> Response:
    q = select(PaymentOrder).order_by(PaymentOrder.id.desc()).limit(200)
    if status:
        q = q.where(PaymentOrder.status == status)
    orders = (await session.scalars(q)).all()
    snap = await _hub(request).catalog.get()
    file = _export(request, "payment-orders", lambda t, tz: [orders_sheet(orders, snap, tz, t)])
    if file is not None:
        return file
    return render(
        request,
        "settlement/orders.html",
        orders=orders,
        status=status,
        snap=snap,
        money=plain_money_for(request),
        export=_export_url(request),
    )


@router.get("/settlement/orders/{order_id}")
async def order_page(request: Request, order_id: Id, session: ReadDbDep, me: Reader) -> Response:
    order = await session.get(PaymentOrder, order_id)
    if order is None:
        raise PageNotFound()
    return render(
        request,
        "settlement/order.html",
        o=order,
        snap=await _hub(request).catalog.get(),
        money=plain_money_for(request),
        me_id=order_service.actor_id(me),
    )


async def _act(request: Request, session: DbDep, me: Principal, order_id: int, action: str) -> Response:
    order = await locked(session, PaymentOrder, order_id)  # the state the action is decided on
    if order is None:
        raise PageNotFound()
    before = order_service.state(order)
    who = order_service.actor_id(me)
    path = f"{BASE}/orders/{order_id}"
    try:
        if action == "approve":
            done = await order_service.approve(session, order_id, who)
        elif action == "cancel":
            done = await order_service.cancel(session, order_id, who)
        else:
            done = await order_service.mark_paid(session, _hub(request).accounts, order_id, who)
    except Problem as e:
        await session.rollback()
        return _fail(path, e)
    await audit.record(
        session,
        me,
        f"payment_order.{action}",
        f"payment_order:{done.number}",
        before,
        order_service.state(done),
    )
    await session.commit()
    return redirect(path, "The payment order was updated.")


@router.post("/settlement/orders/{order_id}/approve")
async def approve(request: Request, order_id: Id, session: DbDep, me: Checker) -> Response:
    return await _act(request, session, me, order_id, "approve")


@router.post("/settlement/orders/{order_id}/cancel")
async def cancel(request: Request, order_id: Id, session: DbDep, me: Maker) -> Response:
    return await _act(request, session, me, order_id, "cancel")


@router.post("/settlement/orders/{order_id}/paid")
async def mark_paid(request: Request, order_id: Id, session: DbDep, me: Banker) -> Response:
    return await _act(request, session, me, order_id, "mark_paid")


@router.post("/settlement/orders/export")
async def export(request: Request, session: DbDep, me: Banker) -> Response:
    form = await request.form()
    ids = [i for i in (parse_id(str(v)) for v in form.getlist("ids")) if i is not None]
    fmt = str(form.get("format", "pain001"))
    try:
        data, name, ctype, orders = await service.export_orders(
            session, ids, fmt, tz=_hub(request).settings.business_tz
        )
    except Problem as e:
        await session.rollback()
        return _fail(f"{BASE}/orders", e)
    await audit.record(
        session,
        me,
        "payment_order.export",
        f"payment_orders:{fmt}",
        None,
        {"orders": [o.number for o in orders], "file": name},
    )
    await session.commit()
    return attachment(data, name, ctype)


@router.get("/settlement/statements")
async def statements(request: Request, session: ReadDbDep, _: Reader) -> Response:
    rows = (await session.scalars(select(BankStatement).order_by(BankStatement.id.desc()).limit(100))).all()
    file = _export(request, "bank-statements", lambda t, tz: [statements_sheet(rows, tz, t)])
    if file is not None:
        return file
    return render(request, "settlement/statements.html", statements=rows, export=_export_url(request))


@router.post("/settlement/statements")
async def import_statement(request: Request, session: DbDep, me: Banker) -> Response:
    form = await request.form()
    upload = form.get("file")
    data = await upload.read() if upload is not None and hasattr(upload, "read") else b""
    name = str(getattr(upload, "filename", "") or "")
    path = f"{BASE}/statements"
    if not data:
        return _fail(path, Problem(422, "empty-statement", "Choose a statement file"))
    try:
        result = await service.import_statement(
            _hub(request), session, data, file_name=name, actor=me.audit_name
        )
    except Problem as e:
        await session.rollback()
        return _fail(path, e)
    await audit.record(
        session,
        me,
        "bank_statement.import",
        f"bank_statement:{result.statement.id}",
        None,
        {
            "file": name,
            "new_lines": len(result.new),
            "repeated": result.repeated,
            "orders_paid": result.orders_paid,
            "topups": result.topups,
        },
    )
    await session.commit()
    return redirect(f"{path}/{result.statement.id}", "The statement was imported.")


@router.get("/settlement/statements/{statement_id}")
async def statement_page(request: Request, statement_id: Id, session: ReadDbDep, _: Reader) -> Response:
    st = await session.get(BankStatement, statement_id)
    if st is None:
        raise PageNotFound()
    _st, lines = await service.statement_lines(session, statement_id)
    snap = await _hub(request).catalog.get()
    ids = {ln.order_id for ln in lines if ln.order_id}
    numbers = dict(
        (
            await session.execute(
                select(PaymentOrder.id, PaymentOrder.number).where(PaymentOrder.id.in_(ids))
            )
        ).all()
        if ids
        else []
    )
    file = _export(
        request,
        f"bank-statement-{statement_id}",
        lambda t, tz: [statement_lines_sheet(lines, numbers, snap, tz, t)],
    )
    if file is not None:
        return file
    return render(
        request,
        "settlement/statement.html",
        st=st,
        lines=lines,
        snap=snap,
        money=plain_money_for(request),
        export=_export_url(request),
    )
