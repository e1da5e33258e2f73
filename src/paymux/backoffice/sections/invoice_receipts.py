"""Collections: the unmatched receipts of bank statements (upload a statement, match a waiting receipt
to an invoice or ignore it) and the payouts to billers (make a day's payouts, download a pain.001).

The same services as the admin API (``paymux.invoices.receipts``, ``paymux.invoices.ledger``), audited
the same way. ``invoices.read`` reads, ``invoices.write`` acts. Every list exports to Excel.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy import select

from paymux.api.params import Id
from paymux.audit import service as audit
from paymux.auth import permissions as P
from paymux.auth.principal import Principal
from paymux.backoffice.framework import (
    COLLECTIONS,
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
from paymux.backoffice.sections.ops import plain_money_for
from paymux.db.base import utcnow
from paymux.errors import Problem
from paymux.invoices import receipts
from paymux.invoices.admin import CODE
from paymux.invoices.collection_admin import MAX_STATEMENT
from paymux.invoices.ledger import make_payouts, payout_xml
from paymux.invoices.models import Biller, Invoice, InvoicePayout, InvoiceReceipt
from paymux.money import format_amount
from paymux.runtime import Hub

router = section_router()
register(
    Section(
        "invoice_receipts",
        router,
        menu=(
            MenuEntry(
                "Unmatched receipts", "/backoffice/collections/receipts", P.INVOICES_READ, 4, area=COLLECTIONS
            ),
            MenuEntry("Payouts", "/backoffice/collections/payouts", P.INVOICES_READ, 5, area=COLLECTIONS),
        ),
        permissions=(P.INVOICES_READ, P.INVOICES_WRITE),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.INVOICES_READ))]
Writer = Annotated[Principal, Depends(require(P.INVOICES_WRITE))]
RECEIPTS = "/backoffice/collections/receipts"
QUEUE = f"{RECEIPTS}?status=waiting"
PAYOUTS = "/backoffice/collections/payouts"
RECEIPT_STATUSES = ("waiting", "matched", "ignored")
FORMATS = ("camt053", "camt054", "mt940")
NUMBER_MAX = 64
FIRST_DAY, LAST_DAY = dt.date(1970, 1, 2), dt.date(9998, 12, 31)
MAX_BILLERS = 1000  # in the biller select of the match form


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


# --- the receipts of bank statements --------------------------------------------------------------------


def _receipt_spec(request: Request) -> ListSpec:
    money = plain_money_for(request)
    return ListSpec(
        query=select(InvoiceReceipt, Invoice.number.label("invoice"), Biller.code.label("biller"))
        .outerjoin(Invoice, Invoice.id == InvoiceReceipt.invoice_id)
        .outerjoin(Biller, Biller.id == Invoice.biller_id),
        columns=[
            Column("id", "Receipt", InvoiceReceipt.id, lambda r: r[0].id),
            Column(
                "booked_on", "Booking date", InvoiceReceipt.booked_on, lambda r: r[0].booked_on.isoformat()
            ),
            Column("amount", "Amount", InvoiceReceipt.amount, lambda r: money(r[0].amount, r[0].currency)),
            Column("currency", "Currency", InvoiceReceipt.currency, lambda r: r[0].currency),
            Column("payer", "Payer", InvoiceReceipt.payer_name, lambda r: r[0].payer_name),
            Column("payer_account", "Payer's account", None, lambda r: r[0].payer_account),
            Column("reference", "Reference", None, lambda r: r[0].creditor_reference),
            Column("remittance", "Remittance text", None, lambda r: r[0].remittance),
            Column("bank_reference", "Bank reference", None, lambda r: r[0].method_reference),
            Column("status", "Status", InvoiceReceipt.status, lambda r: r[0].status),
            Column("invoice", "Invoice", None, lambda r: f"{r.biller}/{r.invoice}" if r.invoice else ""),
            Column("note", "Note", None, lambda r: r[0].note),
        ],
        search=[
            InvoiceReceipt.payer_name,
            InvoiceReceipt.creditor_reference,
            InvoiceReceipt.remittance,
            InvoiceReceipt.method_reference,
        ],
        filters=[
            Filter(
                "status",
                "Status",
                lambda q, v: q.where(InvoiceReceipt.status == v),
                [(s, s) for s in RECEIPT_STATUSES],
            )
        ],
        default_sort="id",
        sheet="receipts",
    )


@router.get("/collections/receipts")
async def receipts_list(request: Request, session: ReadDbDep, _: Reader) -> Response:
    """The receipts of bank statements; without a status, the waiting ones (the queue)."""
    if "status" not in request.query_params:
        return redirect(QUEUE)
    page = await _receipt_spec(request).run(session, request)
    billers = (await session.scalars(select(Biller.code).order_by(Biller.code).limit(MAX_BILLERS))).all()
    return respond(
        request,
        page,
        "invoices/receipts.html",
        billers=billers,
        waiting=await receipts.count_waiting(session),
        formats=FORMATS,
    )


@router.post("/collections/receipts/upload")
async def receipts_upload(
    request: Request,
    session: DbDep,
    me: Writer,
    file: Annotated[UploadFile | None, File()] = None,
    format: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """Import a camt.053, camt.054 or MT940 statement: each credit line applied or queued."""
    if file is None or not file.filename:
        return redirect(QUEUE, error="Choose a statement file.")
    fmt = format.strip() or None
    if fmt is not None and fmt not in FORMATS:
        return redirect(QUEUE, error="Unknown statement format.")
    data = await file.read(MAX_STATEMENT + 1)
    if not data:
        return redirect(QUEUE, error="The file is empty.")
    if len(data) > MAX_STATEMENT:
        return redirect(QUEUE, error="The file is too large.")
    name = file.filename[:100]
    try:
        hub_accounts = request.app.state.hub.settings.invoice_hub_accounts
        result = await receipts.import_statement(session, data, fmt, hub_accounts)
    except Problem as e:
        await session.rollback()
        return redirect(QUEUE, error=e.detail or e.title)
    view = result.view()
    await audit.record(
        session,
        me,
        "invoice_statement.import",
        f"statement:{name}",
        None,
        {k: v for k, v in view.items() if k != "receipts"},
    )
    await session.commit()
    return render(request, "invoices/statement.html", result=view, file_name=name)


@router.post("/collections/receipts/{receipt_id}/resolve")
async def receipt_resolve(
    receipt_id: Id,
    session: DbDep,
    me: Writer,
    action: Annotated[str, Form(max_length=16)] = "",
    biller: Annotated[str, Form(max_length=100)] = "",
    invoice: Annotated[str, Form(max_length=200)] = "",
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """One form for a waiting receipt: match it to a biller's invoice, or ignore it with a note."""
    back = QUEUE
    if action == "match":
        code, number = biller.strip(), invoice.strip()
        if not CODE.match(code):
            return redirect(back, error="Choose the biller.")
        if not number or len(number) > NUMBER_MAX or not number.isprintable():
            return redirect(back, error="Give the invoice number.")
        try:
            r = await receipts.match_receipt(session, receipt_id, code, number, me.audit_name)
        except Problem as e:
            await session.rollback()
            return redirect(back, error=e.detail or e.title)
        await audit.record(
            session,
            me,
            "invoice_receipt.match",
            f"invoice_receipt:{r.id}",
            {"status": "waiting"},
            {
                "status": "matched",
                "invoice": number,
                "biller": code,
                "amount": format_amount(r.amount, r.currency),
            },
        )
        await session.commit()
        return redirect(back, "The receipt is matched.")
    if action == "ignore":
        text = " ".join(note.split())
        if not text.isprintable():
            return redirect(back, error="Give the reason.")
        try:
            r = await receipts.ignore_receipt(session, receipt_id, text, me.audit_name)
        except Problem as e:
            await session.rollback()
            return redirect(back, error=e.detail or e.title)
        await audit.record(
            session,
            me,
            "invoice_receipt.ignore",
            f"invoice_receipt:{r.id}",
            {"status": "waiting"},
            {"status": "ignored", "note": r.note},
        )
        await session.commit()
        return redirect(back, "The receipt is ignored.")
    return redirect(back, error="Choose match or ignore.")


# --- payouts ---------------------------------------------------------------------------------------------


def _payout_spec(request: Request) -> ListSpec:
    money = plain_money_for(request)

    def on_date(q: Any, v: str) -> Any:
        try:
            return q.where(InvoicePayout.payout_date == dt.date.fromisoformat(v))
        except ValueError:
            return q

    return ListSpec(
        query=select(InvoicePayout, Biller.code.label("biller")).join(
            Biller, Biller.id == InvoicePayout.biller_id
        ),
        columns=[
            Column("biller", "Biller", Biller.code, lambda r: r.biller),
            Column("date", "Date", InvoicePayout.payout_date, lambda r: r[0].payout_date.isoformat()),
            Column("currency", "Currency", InvoicePayout.currency, lambda r: r[0].currency),
            Column("amount", "Amount", InvoicePayout.amount, lambda r: money(r[0].amount, r[0].currency)),
            Column("number", "Number", InvoicePayout.number, lambda r: r[0].number),
            Column("created_by", "Made by", None, lambda r: r[0].created_by),
            Column("created_at", "Created", InvoicePayout.created_at, lambda r: r[0].created_at),
            Column("id", "", None, lambda r: r[0].id),
        ],
        search=[InvoicePayout.number, Biller.code],
        filters=[
            Filter("biller", "Biller", lambda q, v: q.where(Biller.code == v.strip())),
            Filter("date", "Date", on_date, kind="date"),
        ],
        default_sort="created_at",
        sheet="payouts",
    )


def _business_today(request: Request) -> dt.date:
    return utcnow().astimezone(_hub(request).settings.business_tz).date()


@router.get("/collections/payouts")
async def payouts_list(request: Request, session: ReadDbDep, _: Reader) -> Response:
    page = await _payout_spec(request).run(session, request)
    if page.export:  # the link column is the page's, not the workbook's
        page.spec.columns = [c for c in page.spec.columns if c.key != "id"]
    return respond(request, page, "invoices/payouts.html", today=_business_today(request).isoformat())


@router.post("/collections/payouts")
async def payouts_make(
    request: Request,
    session: DbDep,
    me: Writer,
    date: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Make the payouts of a day (as the admin API does: once per biller, currency and day)."""
    try:
        day = dt.date.fromisoformat(date.strip())
    except ValueError:
        return redirect(PAYOUTS, error="Give the date.")
    if not FIRST_DAY <= day <= LAST_DAY:  # the day's end in any time zone must be a datetime
        return redirect(PAYOUTS, error="Give the date.")
    try:
        made, skipped = await make_payouts(
            session, day, _hub(request).settings.business_tz, actor=me.audit_name
        )
    except Problem as e:
        await session.rollback()
        return redirect(PAYOUTS, error=e.detail or e.title)
    fresh = [m for m in made if m.created]
    if fresh:
        await audit.record(
            session,
            me,
            "invoice_payout.create",
            f"payouts:{day.isoformat()}",
            None,
            {"payouts": [m.payout.number for m in fresh]},
        )
    await session.commit()
    money = plain_money_for(request)
    items = [
        {
            "id": m.payout.id,
            "biller": m.biller.code,
            "currency": m.payout.currency,
            "amount": money(m.payout.amount, m.payout.currency),
            "number": m.payout.number,
            "created": m.created,
        }
        for m in made
    ]
    return render(request, "invoices/payouts_made.html", day=day.isoformat(), items=items, skipped=skipped)


@router.get("/collections/payouts/{payout_id}/pain001")
async def payout_pain001(request: Request, payout_id: Id, session: ReadDbDep, _: Reader) -> Response:
    """The pain.001 of the biller's payouts of the payout's day (as the admin API builds it)."""
    p = await session.get(InvoicePayout, payout_id)
    if p is None:
        raise PageNotFound()
    biller = await session.get(Biller, p.biller_id)
    assert biller is not None
    rows = list(
        (
            await session.scalars(
                select(InvoicePayout)
                .where(InvoicePayout.biller_id == biller.id, InvoicePayout.payout_date == p.payout_date)
                .order_by(InvoicePayout.currency)
            )
        ).all()
    )
    now = utcnow().astimezone(_hub(request).settings.business_tz)
    try:
        data = payout_xml(
            rows,
            message_id=f"IPO{p.payout_date:%Y%m%d}-{biller.id}",
            execution_date=max(p.payout_date + dt.timedelta(days=1), now.date()),
            created_at=now,
        )
    except Problem as e:
        return redirect(PAYOUTS, error=e.detail or e.title)
    name = f"payout-{biller.code}-{p.payout_date.isoformat()}.xml"
    return Response(
        data, media_type="application/xml", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
