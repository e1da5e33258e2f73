"""Collections: billers (brand, methods, policy, keys masked, webhook deliveries, an upload of invoices
from a file), invoices (found by number or payer, by status, biller and due dates; each with its
timeline: created, status changes, payments, reminders, webhooks; "send a reminder now", cancel) and
the collections dashboard (collected today, outstanding, overdue, days to pay, collected by method).

``invoices.read`` reads, ``invoices.write`` acts (audited). Every list exports to Excel.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from typing import Annotated, Any

import orjson
from fastapi import Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.api.params import Id
from paymux.audit import service as audit
from paymux.auth import permissions as P
from paymux.auth.access import zone
from paymux.auth.principal import Principal
from paymux.backoffice.charts import Series, chart
from paymux.backoffice.framework import (
    COLLECTIONS,
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
)
from paymux.backoffice.i18n import translator
from paymux.backoffice.listing import Column, Filter, ListSpec, respond
from paymux.backoffice.sections.ops import money_for, plain_money_for, today_start
from paymux.errors import Problem
from paymux.invoices import receipts, refunds, reminders, service
from paymux.invoices import upload as uploads
from paymux.invoices import upload_mappings as stored_mappings
from paymux.invoices.admin import CODE
from paymux.invoices.models import (
    OPEN_STATUSES,
    STATUSES,
    Biller,
    BillerKey,
    Invoice,
    InvoiceAttempt,
    InvoiceChange,
    InvoicePayment,
)
from paymux.masking import MASK, mask_url
from paymux.notifications.models import STATUSES as NOTICE_STATUSES
from paymux.notifications.models import Notification

router = section_router()
register(
    Section(
        "invoices",
        router,
        menu=(
            MenuEntry("Collections", "/backoffice/collections", P.INVOICES_READ, 1, area=COLLECTIONS),
            MenuEntry("Invoices", "/backoffice/invoices", P.INVOICES_READ, 2, area=COLLECTIONS),
            MenuEntry("Billers", "/backoffice/billers", P.INVOICES_READ, 3, area=COLLECTIONS),
        ),
        permissions=(P.INVOICES_READ, P.INVOICES_WRITE),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.INVOICES_READ))]
Writer = Annotated[Principal, Depends(require(P.INVOICES_WRITE))]
DAYS = 30  # the dashboard's period
LATEST_DELIVERIES = 10  # webhooks shown on a biller's page (all on its deliveries page)
DAYS_TO_PAY = (("0", 0, 0), ("1", 1, 1), ("2–3", 2, 3), ("4–7", 4, 7), ("8–14", 8, 14), ("15–30", 15, 30))
MAX_MAPPING = 10_000


def _date_filter(column: Any, *, end: bool) -> Any:
    def apply(q: Select[Any], v: str) -> Select[Any]:
        try:
            day = dt.date.fromisoformat(v)
        except ValueError:
            return q
        return q.where(column <= day) if end else q.where(column >= day)

    return apply


async def _biller(session: AsyncSession, code: str) -> Biller:
    if not CODE.match(code):
        raise PageNotFound()
    b: Biller | None = await session.scalar(select(Biller).where(Biller.code == code))
    if b is None:
        raise PageNotFound()
    return b


# --- billers -------------------------------------------------------------------------------------------


@router.get("/billers")
async def billers_list(request: Request, session: ReadDbDep, _: Reader) -> Response:
    open_count = (
        select(func.count())
        .where(Invoice.biller_id == Biller.id, Invoice.status.in_(OPEN_STATUSES))
        .scalar_subquery()
        .label("open")
    )
    spec = ListSpec(
        query=select(Biller, open_count),
        columns=[
            Column("code", "Code", Biller.code, lambda r: r[0].code),
            Column("name", "Name", Biller.name, lambda r: r[0].name),
            Column("methods", "Methods", None, lambda r: r[0].methods),
            Column("reminder_days", "Reminder days", None, lambda r: r[0].reminder_days),
            Column("timezone", "Time zone", None, lambda r: r[0].timezone),
            Column(
                "webhook", "Webhook", None, lambda r: mask_url(r[0].webhook_url) if r[0].webhook_url else ""
            ),
            Column("open", "Unpaid invoices", None, lambda r: r.open),
            Column("enabled", "Enabled", Biller.enabled, lambda r: r[0].enabled),
        ],
        search=[Biller.code, Biller.name],
        filters=[
            Filter(
                "enabled",
                "Enabled",
                lambda q, v: q.where(Biller.enabled.is_(v == "yes")),
                [("yes", "yes"), ("no", "no")],
            )
        ],
        default_sort="code",
        default_desc=False,
        sheet="billers",
    )
    return respond(request, await spec.run(session, request), "invoices/billers.html")


@router.get("/billers/{code}")
async def biller_detail(request: Request, code: str, session: ReadDbDep, _: Reader) -> Response:
    b = await _biller(session, code)
    keys = (
        await session.scalars(select(BillerKey).where(BillerKey.biller_id == b.id).order_by(BillerKey.id))
    ).all()
    counts = dict(
        (
            await session.execute(
                select(Invoice.status, func.count()).where(Invoice.biller_id == b.id).group_by(Invoice.status)
            )
        ).all()
    )
    latest = (
        await session.scalars(
            select(Notification)
            .where(Notification.biller_id == b.id, Notification.channel == "webhook")
            .order_by(Notification.id.desc())
            .limit(LATEST_DELIVERIES)
        )
    ).all()
    return render(
        request,
        "invoices/biller.html",
        b=b,
        latest=latest,
        keys=keys,
        counts=counts,
        statuses=STATUSES,
        webhook=mask_url(b.webhook_url) if b.webhook_url else "",
        secret=MASK if b.webhook_secret else "",
        fee=money_for(request)(b.fee_amount, b.fee_currency),
        mappings=[
            (m.name, orjson.dumps(m.config).decode()) for m in await stored_mappings.list_mappings(session, b)
        ],
        result=None,
        problem="",
    )


@router.get("/billers/{code}/deliveries")
async def biller_deliveries(request: Request, code: str, session: ReadDbDep, _: Reader) -> Response:
    b = await _biller(session, code)
    spec = ListSpec(
        query=select(Notification).where(Notification.biller_id == b.id, Notification.channel == "webhook"),
        columns=[
            Column("id", "Notification", Notification.id),
            Column("created_at", "Created", Notification.created_at),
            Column("event", "Event", Notification.event),
            Column("number", "Invoice", None, lambda n: ((n.payload or {}).get("data") or {}).get("number")),
            Column("status", "Status", Notification.status),
            Column("attempts", "Attempts", Notification.attempts),
            Column("last_error", "Error", None),
            Column("delivered_at", "Delivered", Notification.delivered_at),
        ],
        search=[Notification.event],
        filters=[
            Filter(
                "status",
                "Status",
                lambda q, v: q.where(Notification.status == v),
                [(s, s) for s in NOTICE_STATUSES],
            )
        ],
        default_sort="created_at",
        sheet="webhook deliveries",
    )
    return respond(request, await spec.run(session, request), "invoices/deliveries.html", b=b)


@router.post("/billers/{code}/upload")
async def biller_upload(
    request: Request,
    code: str,
    session: DbDep,
    me: Writer,
    file: Annotated[UploadFile | None, File()] = None,
    mapping: Annotated[str, Form(max_length=MAX_MAPPING)] = "",
    mapping_name: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Take the biller's invoices from a CSV or Excel file, read as a stored mapping or the JSON one
    given; the page shows the result of every row."""
    b = await _biller(session, code)
    page = f"/backoffice/billers/{b.code}"
    if file is None or not file.filename:
        return redirect(page, error="Choose a CSV or Excel file.")
    from paymux.invoices.endpoints import read_upload

    try:
        cfg = await stored_mappings.resolve(session, b, mapping.strip() or None, mapping_name.strip() or None)
        out = await uploads.upload(session, b, await read_upload(file), file.filename[:200], cfg)
    except Problem as e:
        await session.rollback()
        return redirect(page, error=e.detail or e.title)
    counts = {k: out[k] for k in ("rows", "created", "duplicate", "error")}
    await audit.record(session, me, "biller.invoices_upload", f"biller:{b.code}", None, counts)
    await session.commit()
    return render(request, "invoices/upload.html", b=b, result=out, file_name=file.filename[:200])


@router.post("/billers/{code}/mappings")
async def biller_mapping_save(
    code: str,
    session: DbDep,
    me: Writer,
    name: Annotated[str, Form(max_length=64)] = "",
    mapping: Annotated[str, Form(max_length=MAX_MAPPING)] = "",
) -> Response:
    """Store (or replace) a named upload mapping of the biller (audited)."""
    b = await _biller(session, code)
    page = f"/backoffice/billers/{b.code}"
    name = name.strip()
    if not name or not mapping.strip():
        return redirect(page, error="Give the mapping a name and its JSON.")
    try:
        config = orjson.loads(mapping)
    except orjson.JSONDecodeError:
        return redirect(page, error="The mapping is not JSON.")
    try:
        await stored_mappings.save(session, b, name, config, me)
    except Problem as e:
        await session.rollback()
        return redirect(page, error=e.detail or e.title)
    await session.commit()
    return redirect(page, "The mapping is saved.")


@router.post("/billers/{code}/mappings/delete")
async def biller_mapping_delete(
    code: str, session: DbDep, me: Writer, name: Annotated[str, Form(max_length=64)] = ""
) -> Response:
    b = await _biller(session, code)
    page = f"/backoffice/billers/{b.code}"
    try:
        await stored_mappings.delete(session, b, name.strip(), me)
    except Problem as e:
        await session.rollback()
        return redirect(page, error=e.detail or e.title)
    await session.commit()
    return redirect(page, "The mapping is deleted.")


# --- invoices ------------------------------------------------------------------------------------------


def _invoice_spec(request: Request) -> ListSpec:
    money = plain_money_for(request)
    return ListSpec(
        query=select(Invoice, Biller.code.label("biller")).join(Biller, Biller.id == Invoice.biller_id),
        columns=[
            Column("number", "Invoice", Invoice.number, lambda r: r[0].number),
            Column("biller", "Biller", Biller.code, lambda r: r.biller),
            Column("payer", "Payer", Invoice.payer_name, lambda r: r[0].payer_name or r[0].payer_email or ""),
            Column("amount", "Amount", Invoice.amount, lambda r: money(r[0].amount, r[0].currency)),
            Column("paid", "Paid", Invoice.paid_amount, lambda r: money(r[0].paid_amount, r[0].currency)),
            Column("currency", "Currency", Invoice.currency, lambda r: r[0].currency),
            Column("due_date", "Due date", Invoice.due_date, lambda r: r[0].due_date.isoformat()),
            Column("status", "Status", Invoice.status, lambda r: r[0].status),
            Column("created_at", "Created", Invoice.created_at, lambda r: r[0].created_at),
            Column("id", "", None, lambda r: r[0].id),
        ],
        search=[
            Invoice.number,
            Invoice.payer_name,
            Invoice.payer_email,
            Invoice.payer_phone,
            Invoice.reference,
        ],
        filters=[
            Filter("status", "Status", lambda q, v: q.where(Invoice.status == v), [(s, s) for s in STATUSES]),
            Filter("biller", "Biller", lambda q, v: q.where(Biller.code == v.strip())),
            Filter("due_from", "Due from", _date_filter(Invoice.due_date, end=False), kind="date"),
            Filter("due_to", "Due to", _date_filter(Invoice.due_date, end=True), kind="date"),
        ],
        default_sort="created_at",
        sheet="invoices",
    )


@router.get("/invoices")
async def invoices_list(request: Request, session: ReadDbDep, _: Reader) -> Response:
    page = await _invoice_spec(request).run(session, request)
    if page.export:  # the link column is the page's, not the workbook's
        page.spec.columns = [c for c in page.spec.columns if c.key != "id"]
    return respond(request, page, "invoices/list.html")


async def _timeline(session: AsyncSession, inv: Invoice) -> list[dict[str, Any]]:
    """What happened to the invoice, oldest first: its changes, the payer's first view of the payment
    page, the methods chosen there (attempts), payments, reminders and webhooks."""
    out: list[dict[str, Any]] = []
    changes = await service.history(session, inv)
    for ch in changes:
        out.append(
            {
                "at": ch.at,
                "kind": "created" if ch.from_status is None else "status",
                "what": ch.to_status,
                "detail": ch.reason,
                "id": f"change-{ch.id}",
            }
        )
    payments = (
        await session.scalars(
            select(InvoicePayment).where(InvoicePayment.invoice_id == inv.id).order_by(InvoicePayment.id)
        )
    ).all()
    for p in payments:
        out.append(
            {
                "at": p.at,
                "kind": "payment",
                "what": p.method,
                "detail": p.method_reference + (f" · {p.note}" if p.note else ""),
                "amount": (p.amount, p.currency),
                "id": f"payment-{p.id}",
            }
        )
    if inv.first_viewed_at is not None:
        out.append(
            {
                "at": inv.first_viewed_at,
                "kind": "viewed",
                "what": "payment page",
                "detail": "",
                "id": "viewed",
            }
        )
    tries = (
        await session.scalars(
            select(InvoiceAttempt).where(InvoiceAttempt.invoice_id == inv.id).order_by(InvoiceAttempt.id)
        )
    ).all()
    for a in tries:
        out.append(
            {
                "at": a.created_at,
                "kind": "method",
                "what": a.method,
                "detail": f"{a.status} · {a.reference}" + (f" · {a.detail}" if a.detail else ""),
                "amount": (a.amount, a.currency),
                "id": f"attempt-{a.id}",
            }
        )
    rows = await reminders.reminders_of(session, inv.id)
    for r in rows:
        out.append(
            {
                "at": r.sent_at or r.created_at,
                "kind": "reminder",
                "what": r.status,
                "detail": f"{r.kind} · {r.day.isoformat()}" + (f" · {r.reason}" if r.reason else ""),
                "id": f"reminder-{r.id}",
            }
        )
    keys = [f"invoice-change-{ch.id}" for ch in changes]
    if keys:
        hooks = (
            await session.scalars(
                select(Notification)
                .where(
                    Notification.biller_id == inv.biller_id,
                    Notification.key.in_(keys),
                    Notification.channel == "webhook",
                )
                .order_by(Notification.id)
            )
        ).all()
        for n in hooks:
            out.append(
                {
                    "at": n.delivered_at or n.created_at,
                    "kind": "webhook",
                    "what": n.status,
                    "detail": n.event + (f" · {n.last_error}" if n.last_error else ""),
                    "id": f"webhook-{n.id}",
                }
            )
    # cause before effect
    rank = {"created": 0, "viewed": 1, "method": 2, "payment": 3, "status": 4, "reminder": 5, "webhook": 6}
    out.sort(key=lambda e: (e["at"], rank[e["kind"]], e["id"]))
    return out


async def _invoice(session: AsyncSession, invoice_id: int) -> tuple[Invoice, Biller]:
    inv = await session.get(Invoice, invoice_id)
    if inv is None:
        raise PageNotFound()
    b = await session.get(Biller, inv.biller_id)
    assert b is not None
    return inv, b


@router.get("/invoices/{invoice_id}")
async def invoice_detail(request: Request, invoice_id: Id, session: ReadDbDep, _: Reader) -> Response:
    inv, b = await _invoice(session, invoice_id)
    pay_url, qr_url = reminders.links(inv)
    return render(
        request,
        "invoices/detail.html",
        inv=inv,
        b=b,
        timeline=await _timeline(session, inv),
        money=money_for(request),
        pay_url=pay_url,
        qr_url=qr_url,
        is_open=inv.status in OPEN_STATUSES,
        held=[p for p, _code, _number in await refunds.waiting(session, invoice_id=inv.id)],
        decisions=[r for r, _code, _number in await refunds.decided(session, invoice_id=inv.id)],
    )


@router.post("/invoices/{invoice_id}/remind")
async def invoice_remind(invoice_id: Id, session: DbDep, me: Writer) -> Response:
    inv, b = await _invoice(session, invoice_id)
    page = f"/backoffice/invoices/{inv.id}"
    try:
        row = await reminders.send_now(session, inv, by=me.audit_name)
    except Problem as e:
        await session.rollback()
        return redirect(page, error=e.detail or e.title)
    await audit.record(
        session, me, "invoice.remind", f"invoice:{b.code}/{inv.number}", None, reminders.reminder_view(row)
    )
    await session.commit()
    return redirect(page, "The reminder is sent.")


@router.post("/invoices/{invoice_id}/payments/{payment_id}/refund-decision")
async def invoice_refund_decision(
    request: Request,
    invoice_id: Id,
    payment_id: Id,
    session: DbDep,
    me: Writer,
    decision: Annotated[str, Form(max_length=16)] = "",
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Refund to the payer or release to the biller what a payment of the invoice left in the hold."""
    from paymux.invoices.paypage import plugin

    inv, b = await _invoice(session, invoice_id)
    page = f"/backoffice/invoices/{inv.id}"
    if decision not in ("refund", "release"):
        return redirect(page, error="Choose refund or release.")
    payment = await session.get(InvoicePayment, payment_id)
    if payment is None or payment.invoice_id != inv.id:
        raise PageNotFound()
    hub = request.app.state.hub
    try:
        row, created = await refunds.decide(
            session,
            payment_id,
            decision,
            lambda biller, name: plugin(hub, biller, name),
            actor=me.audit_name,
            note=" ".join(note.split()),
        )
    except Problem as e:
        await session.rollback()
        return redirect(page, error=e.detail or e.title)
    if created:
        view = refunds.refund_view(row, b.code, inv.number)
        await audit.record(
            session,
            me,
            f"invoice_refund.{decision}",
            f"invoice_payment:{payment_id}",
            {"held": view["amount"], "currency": row.currency},
            {k: view[k] for k in ("decision", "channel", "amount", "currency", "number", "note")},
        )
    await session.commit()
    return redirect(
        page,
        "The refunded amount is on its way to the payer."
        if decision == "refund"
        else "The amount is released to the biller.",
    )


@router.post("/invoices/{invoice_id}/cancel")
async def invoice_cancel(
    invoice_id: Id,
    session: DbDep,
    me: Writer,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    inv, b = await _invoice(session, invoice_id)
    page = f"/backoffice/invoices/{inv.id}"
    reason = " ".join(reason.split())
    if not reason:
        return redirect(page, error="Give the reason.")
    before = inv.status
    try:
        await service.cancel(session, b, inv.number, reason)
    except Problem as e:
        await session.rollback()
        return redirect(page, error=e.detail or e.title)
    await audit.record(
        session,
        me,
        "invoice.cancel",
        f"invoice:{b.code}/{inv.number}",
        {"status": before},
        {"status": "cancelled", "reason": reason},
    )
    await session.commit()
    return redirect(page, "The invoice is cancelled.")


# --- the collections dashboard ------------------------------------------------------------------------


def _amount(fmt: Any, currency: str, v: int) -> str:
    return str(fmt(v, currency))


def _sums(rows: Any) -> dict[str, tuple[int, int]]:
    """currency -> (count, sum) of (currency, count, sum) rows."""
    return {c: (int(n), int(s or 0)) for c, n, s in rows}


@router.get("/collections")
async def collections_dashboard(request: Request, session: ReadDbDep, me: Reader) -> Response:
    tz = zone(me.timezone)
    since_today = today_start(me.timezone)
    first_day = since_today.astimezone(tz).date() - dt.timedelta(days=DAYS - 1)
    since = since_today - dt.timedelta(days=DAYS - 1)
    collected_today = _sums(
        (
            await session.execute(
                select(InvoicePayment.currency, func.count(), func.sum(InvoicePayment.applied))
                .where(InvoicePayment.at >= since_today, InvoicePayment.applied > 0)
                .group_by(InvoicePayment.currency)
            )
        ).all()
    )

    def unpaid(statuses: tuple[str, ...]) -> Any:
        return (
            select(Invoice.currency, func.count(), func.sum(Invoice.amount - Invoice.paid_amount))
            .where(Invoice.status.in_(statuses))
            .group_by(Invoice.currency)
        )

    outstanding = _sums((await session.execute(unpaid(OPEN_STATUSES))).all())
    overdue = _sums((await session.execute(unpaid(("overdue",)))).all())

    # collected by day and method over the period, one chart per currency
    days = [first_day + dt.timedelta(days=i) for i in range(DAYS)]
    labels = [d.strftime("%d.%m") for d in days]
    index = {d: i for i, d in enumerate(days)}
    by: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0] * DAYS))
    for method, currency, applied, at in (
        await session.execute(
            select(
                InvoicePayment.method, InvoicePayment.currency, InvoicePayment.applied, InvoicePayment.at
            ).where(InvoicePayment.at >= since, InvoicePayment.applied > 0)
        )
    ).all():
        i = index.get(at.astimezone(tz).date())
        if i is not None:
            by[currency][method][i] += int(applied)
    t = translator(language_of(request))
    plain = plain_money_for(request)
    charts: list[Markup] = []
    for currency in sorted(by) or ["EUR"]:
        series = [Series(t(m), v) for m, v in sorted(by[currency].items())] or [Series(t("none"), [0] * DAYS)]
        charts.append(
            chart(
                "stacked",
                t("Collected by day and method, {currency}", currency=currency),
                labels,
                series,
                value=functools.partial(_amount, plain, currency),
            )
        )
    # days from the invoice to its payment, of the invoices paid in the period
    buckets = [0] * (len(DAYS_TO_PAY) + 1)
    for created, paid_at in (
        await session.execute(
            select(Invoice.created_at, InvoiceChange.at)
            .join(InvoiceChange, InvoiceChange.invoice_id == Invoice.id)
            .where(InvoiceChange.to_status == "paid", InvoiceChange.at >= since)
        )
    ).all():
        d = max(0, (paid_at.astimezone(tz).date() - created.astimezone(tz).date()).days)
        slot = next((i for i, (_, lo, hi) in enumerate(DAYS_TO_PAY) if lo <= d <= hi), len(DAYS_TO_PAY))
        buckets[slot] += 1
    charts.append(
        chart(
            "bar",
            t("Days to pay, invoices paid in the last {n} days", n=DAYS),
            [label for label, _, _ in DAYS_TO_PAY] + ["31+"],
            [Series(t("Invoices"), buckets)],
        )
    )
    return render(
        request,
        "invoices/dashboard.html",
        collected_today=collected_today,
        outstanding=outstanding,
        overdue=overdue,
        money=money_for(request),
        charts=charts,
        days=DAYS,
        waiting=await receipts.count_waiting(session),
    )
