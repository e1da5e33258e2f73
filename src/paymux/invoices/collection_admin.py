"""Admin API of invoices paid by bank transfer and of payouts to billers: statement uploads, the queue of
unmatched receipts (match to an invoice, ignore), the daily payouts with their pain.001 files, and the
refund decisions about what the refund hold keeps (refund to the payer or release to the biller).

``invoices.read`` reads, ``invoices.write`` changes; every change is audited.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response
from pydantic import Field, StrictStr
from sqlalchemy import select

from paymux.api.deps import HubDep, ReadSessionDep, SessionDep
from paymux.api.params import Id, Ident
from paymux.audit import service as audit
from paymux.db.base import utcnow
from paymux.errors import invalid, not_found
from paymux.invoices import receipts, refunds
from paymux.invoices.admin import CODE, PROBLEMS, Reader, Strict, Writer
from paymux.invoices.ledger import make_payouts, payout_xml
from paymux.invoices.models import Biller, Invoice, InvoicePayout, InvoiceRefund
from paymux.money import format_amount

router = APIRouter(prefix="/api/v1/admin/invoices", tags=["invoices admin"])

MAX_STATEMENT = 64 * 1024 * 1024
Format = Literal["camt053", "camt054", "mt940"]


class MatchIn(Strict):
    invoice: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", max_length=64)]
    biller: Annotated[StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class IgnoreIn(Strict):
    note: Annotated[Ident, Field(max_length=500)] = ""


class DecisionIn(Strict):
    decision: Literal["refund", "release"]
    note: Annotated[Ident, Field(max_length=500)] = ""


class PayoutsIn(Strict):
    date: dt.date
    biller: Annotated[StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] | None = None


@router.post("/statements", summary="Import a bank statement", responses=PROBLEMS)
async def import_statement(
    me: Writer,
    hub: HubDep,
    session: SessionDep,
    file: Annotated[UploadFile, File()],
    format: Annotated[Format | None, Form()] = None,
) -> dict[str, Any]:
    """A camt.053, camt.054 or MT940 file (multipart ``file``; ``format`` detected when not given).
    Each credit line is matched to an invoice and applied, or queued; a line seen before is a
    duplicate and applies nothing. The statement's account chooses whose invoices: a biller's
    collection account, that biller's; a hub-wide account (``PAYMUX_INVOICE_HUB_ACCOUNTS``), every
    biller's. A file that cannot be read, or of another account, is a 422 and nothing is stored."""
    data = await file.read(MAX_STATEMENT + 1)
    if not data:
        raise invalid("empty-statement", "send the statement as the multipart field 'file'")
    if len(data) > MAX_STATEMENT:
        raise invalid("statement-too-large", f"a statement has at most {MAX_STATEMENT} bytes")
    result = await receipts.import_statement(session, data, format, hub.settings.invoice_hub_accounts)
    await audit.record(
        session,
        me,
        "invoice_statement.import",
        f"statement:{(file.filename or 'upload')[:100]}",
        None,
        {k: v for k, v in result.view().items() if k != "receipts"},
    )
    await session.commit()
    return result.view()


@router.get("/receipts", summary="Receipts of bank statements", responses=PROBLEMS)
async def list_receipts(
    _: Reader,
    session: ReadSessionDep,
    status: Literal["waiting", "matched", "ignored"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Id | None = None,
) -> dict[str, Any]:
    """Newest first; ``status=waiting`` is the queue of lines nobody could match."""
    rows = await receipts.list_receipts(session, status, limit, before_id)
    return {
        "items": [await receipts.receipt_view(session, r) for r in rows],
        "waiting": await receipts.count_waiting(session),
    }


@router.get("/receipts/{receipt_id}", summary="A receipt", responses=PROBLEMS)
async def get_receipt(receipt_id: Id, _: Reader, session: ReadSessionDep) -> dict[str, Any]:
    r = await session.get(receipts.InvoiceReceipt, receipt_id)
    if r is None:
        raise not_found(f"receipt {receipt_id}")
    return await receipts.receipt_view(session, r)


@router.post("/receipts/{receipt_id}/match", summary="Apply a receipt to an invoice", responses=PROBLEMS)
async def match_receipt(receipt_id: Id, body: MatchIn, me: Writer, session: SessionDep) -> dict[str, Any]:
    """Applied as any payment is (a part, an over-payment, a closed invoice: kept for a refund
    decision); 409 when the receipt is not waiting."""
    r = await receipts.match_receipt(session, receipt_id, body.biller, body.invoice, me.audit_name)
    view = await receipts.receipt_view(session, r)
    await audit.record(
        session,
        me,
        "invoice_receipt.match",
        f"invoice_receipt:{r.id}",
        {"status": "waiting"},
        {"status": "matched", "invoice": body.invoice, "biller": body.biller, "amount": view["amount"]},
    )
    await session.commit()
    return view


@router.post("/receipts/{receipt_id}/ignore", summary="Ignore a receipt", responses=PROBLEMS)
async def ignore_receipt(
    receipt_id: Id, me: Writer, session: SessionDep, body: IgnoreIn | None = None
) -> dict[str, Any]:
    """The line is not an invoice's (409 when it is not waiting)."""
    r = await receipts.ignore_receipt(session, receipt_id, body.note if body else "", me.audit_name)
    await audit.record(
        session,
        me,
        "invoice_receipt.ignore",
        f"invoice_receipt:{r.id}",
        {"status": "waiting"},
        {"status": "ignored", "note": r.note},
    )
    view = await receipts.receipt_view(session, r)
    await session.commit()
    return view


def _payout_view(p: InvoicePayout, code: str, created: bool | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "number": p.number,
        "biller": code,
        "date": p.payout_date.isoformat(),
        "amount": format_amount(p.amount, p.currency),
        "currency": p.currency,
        "created_by": p.created_by,
        "created_at": p.created_at.isoformat(),
        "pain001": f"{router.prefix}/payouts/{code}/{p.payout_date.isoformat()}/pain001",
    }
    if created is not None:
        out["created"] = created
    return out


@router.post("/payouts", summary="Make the payouts of a day", responses=PROBLEMS)
async def payouts(body: PayoutsIn, me: Writer, hub: HubDep, session: SessionDep) -> dict[str, Any]:
    """Per biller and currency: what was collected until the end of ``date`` (business time) less the
    fees and what earlier payouts sent. Made once per day: asked again, the same payouts answer."""
    made, skipped = await make_payouts(
        session, body.date, hub.settings.business_tz, actor=me.audit_name, biller_code=body.biller
    )
    fresh = [m for m in made if m.created]
    if fresh:
        await audit.record(
            session,
            me,
            "invoice_payout.create",
            f"payouts:{body.date.isoformat()}",
            None,
            {"payouts": [_payout_view(m.payout, m.biller.code)["number"] for m in fresh]},
        )
    await session.commit()
    return {
        "date": body.date.isoformat(),
        "items": [_payout_view(m.payout, m.biller.code, m.created) for m in made],
        "skipped_no_account": skipped,
    }


@router.get("/payouts", summary="Payouts", responses=PROBLEMS)
async def list_payouts(
    _: Reader,
    session: ReadSessionDep,
    date: dt.date | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    q = (
        select(InvoicePayout, Biller.code)
        .join(Biller, Biller.id == InvoicePayout.biller_id)
        .order_by(InvoicePayout.id.desc())
        .limit(limit)
    )
    if date is not None:
        q = q.where(InvoicePayout.payout_date == date)
    return {"items": [_payout_view(p, code) for p, code in (await session.execute(q)).all()]}


@router.get("/payouts/{code}/{date}/pain001", summary="A biller's payouts as pain.001", responses=PROBLEMS)
async def payout_file(code: str, date: dt.date, _: Reader, hub: HubDep, session: ReadSessionDep) -> Response:
    """The credit transfer (ISO 20022 pain.001.001.03) of the biller's payouts of ``date``; 409 when
    our bank details (``PAYMUX_SETTLEMENT_DEBTOR_*``) or the biller's account are missing."""
    if not CODE.match(code):
        raise not_found(f"biller {code[:64]!r}")
    biller = await session.scalar(select(Biller).where(Biller.code == code))
    if biller is None:
        raise not_found(f"biller {code!r}")
    rows = list(
        (
            await session.scalars(
                select(InvoicePayout)
                .where(InvoicePayout.biller_id == biller.id, InvoicePayout.payout_date == date)
                .order_by(InvoicePayout.currency)
            )
        ).all()
    )
    if not rows:
        raise not_found(f"payouts of biller {code} on {date.isoformat()}")
    now = utcnow().astimezone(hub.settings.business_tz)
    data = payout_xml(
        rows,
        message_id=f"IPO{date:%Y%m%d}-{biller.id}",
        execution_date=max(date + dt.timedelta(days=1), now.date()),
        created_at=now,
    )
    name = f"payout-{code}-{date.isoformat()}.xml"
    return Response(
        data, media_type="application/xml", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


# --- the refund hold -----------------------------------------------------------------------------------
@router.get(
    "/refunds", summary="The refund hold: payments waiting for a decision, and decisions", responses=PROBLEMS
)
async def list_refunds(
    _: Reader,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """``waiting``: payments that left money in the hold (an over-payment, a payment to a closed
    invoice) with no decision yet, oldest first; ``decided``: the decisions, newest first."""
    return {
        "waiting": [
            refunds.held_view(p, code, number) for p, code, number in await refunds.waiting(session, limit)
        ],
        "decided": [
            refunds.refund_view(r, code, number) for r, code, number in await refunds.decided(session, limit)
        ],
    }


@router.post(
    "/payments/{payment_id}/refund-decision", summary="Refund or release a payment's hold", responses=PROBLEMS
)
async def refund_decision(
    payment_id: Id, body: DecisionIn, me: Writer, hub: HubDep, session: SessionDep
) -> dict[str, Any]:
    """``refund``: back to the payer through the method (card) or by a payment order to the payer's
    account (a bank transfer: its pain.001 at ``pain001``); ``release``: to the biller with its next
    payout. Either empties the hold by a balanced ledger entry. Once per payment: the same decision
    again answers it (``created`` false), another is a 409; 409 also when nothing is held or the
    payment cannot be refunded here, 502 when the processor did not refund (nothing changes)."""
    from paymux.invoices.paypage import plugin

    row, created = await refunds.decide(
        session,
        payment_id,
        body.decision,
        lambda biller, name: plugin(hub, biller, name),
        actor=me.audit_name,
        note=body.note,
    )
    code = await session.scalar(select(Biller.code).where(Biller.id == row.biller_id))
    number = await session.scalar(select(Invoice.number).where(Invoice.id == row.invoice_id))
    view = refunds.refund_view(row, str(code), str(number))
    if created:
        await audit.record(
            session,
            me,
            f"invoice_refund.{body.decision}",
            f"invoice_payment:{payment_id}",
            {"held": view["amount"], "currency": row.currency},
            {k: view[k] for k in ("decision", "channel", "amount", "currency", "number", "note")},
        )
    await session.commit()
    return {**view, "created": created}


@router.get(
    "/refunds/{refund_id}/pain001", summary="A refund by payment order as pain.001", responses=PROBLEMS
)
async def refund_file(refund_id: Id, _: Reader, hub: HubDep, session: ReadSessionDep) -> Response:
    """The credit transfer (pain.001.001.03) of a refund to the payer's account; 404 for a refund made
    otherwise, 409 when our bank details (``PAYMUX_SETTLEMENT_DEBTOR_*``) are missing."""
    row = await session.get(InvoiceRefund, refund_id)
    if row is None or row.channel != "payment_order":
        raise not_found(f"refund by payment order {refund_id}")
    now = utcnow().astimezone(hub.settings.business_tz)
    data = refunds.refund_xml([row], created_at=now, execution_date=now.date())
    return Response(
        data,
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="refund-{row.number}.xml"'},
    )


__all__ = ["router"]
