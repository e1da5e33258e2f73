"""Invoices: intake (one or a batch), changes, cancelling, status changes with their history, the
changes feed, the biller's webhook, and applying payments. Services never commit (the edge does).

Every status change writes an :class:`InvoiceChange` (the history and the feed) and records a webhook
notice to the biller (``paymux.notifications.notify`` with ``biller_id``: signed per Standard
Webhooks, retried for three days, logged, redeliverable). An invoice's creation is in the history and
the feed but is not pushed: the biller has it in the intake's answer.

On PostgreSQL the writers of a biller's changes take a transaction-level advisory lock of the biller
before the change rows get their ids, so that ids are committed in order and a reader of the feed
never skips a change committed after it read a later id (SQLite has a single writer anyway).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.keys import digest, new_secret
from paymux.db.base import utcnow
from paymux.errors import Problem, invalid, not_found
from paymux.invoices.ledger import post_collection
from paymux.invoices.models import OPEN_STATUSES, Biller, BillerKey, Invoice, InvoiceChange, InvoicePayment
from paymux.invoices.reference import rf_from
from paymux.invoices.schemas import MAX_BATCH, InvoiceIn, InvoicePatch
from paymux.money import MoneyError, format_amount, parse_amount
from paymux.notifications.service import notify

CHUNK = 1000
WEBHOOK_WINDOW = dt.timedelta(days=3)
_ITEM = TypeAdapter(InvoiceIn)


# --- billers' API keys ---------------------------------------------------------------------------------
async def issue_biller_key(session: AsyncSession, biller: Biller, name: str = "") -> tuple[BillerKey, str]:
    """A new API key of the biller: returned once, stored as its SHA-256 only."""
    key = new_secret("pmx_bl")
    row = BillerKey(
        biller_id=biller.id, key_hash=digest(key), prefix=key[:12], name=name, created_at=utcnow()
    )
    session.add(row)
    await session.flush()
    return row, key


async def biller_for_key(session: AsyncSession, key: str) -> Biller | None:
    found: Biller | None = await session.scalar(
        select(Biller)
        .join(BillerKey, BillerKey.biller_id == Biller.id)
        .where(BillerKey.key_hash == digest(key), BillerKey.revoked_at.is_(None))
    )
    return found


# --- views ---------------------------------------------------------------------------------------------
def pay_path(invoice: Invoice | SimpleNamespace) -> str:
    return f"/pay/{invoice.link_token}"


def invoice_view(inv: Invoice | SimpleNamespace) -> dict[str, Any]:
    c = inv.currency
    return {
        "number": inv.number,
        "status": inv.status,
        "amount": format_amount(inv.amount, c),
        "paid_amount": format_amount(inv.paid_amount, c),
        "currency": c,
        "due_date": inv.due_date.isoformat(),
        "payer": {
            "name": inv.payer_name,
            "email": inv.payer_email,
            "phone": inv.payer_phone,
            "language": inv.payer_language,
        },
        "description": inv.description,
        "lines": [{**x, "amount": format_amount(int(x["amount"]), c)} for x in inv.lines]
        if inv.lines is not None
        else None,
        "reference": inv.reference,
        "partial_allowed": inv.partial_allowed,
        "refund_review": inv.refund_review,
        "payment_link": pay_path(inv),
        "created_at": inv.created_at.isoformat(),
        "updated_at": inv.updated_at.isoformat(),
    }


def change_view(ch: InvoiceChange, number: str, currency: str) -> dict[str, Any]:
    return {
        "id": ch.id,
        "number": number,
        "from": ch.from_status,
        "to": ch.to_status,
        "reason": ch.reason,
        "paid_amount": format_amount(ch.paid_amount, currency),
        "currency": currency,
        "at": ch.at.isoformat(),
    }


# --- intake --------------------------------------------------------------------------------------------
def _body_hash(item: InvoiceIn) -> str:
    return hashlib.sha256(orjson.dumps(item.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()


def reference_for(biller_id: int, number: str) -> str:
    """The RF reference made for an invoice that came without one: from its number when that is a
    valid base (1 to 21 upper-case letters and digits), else 20 digits of a hash of biller and number."""
    if len(number) <= 21 and number.isascii() and number.isalnum() and number == number.upper():
        return rf_from(number)
    h = int.from_bytes(hashlib.sha256(f"{biller_id}:{number}".encode()).digest()[:16], "big")
    return rf_from(f"{h % 10**20:020d}")


@dataclass
class ItemResult:
    index: int
    number: str | None
    status: int  # 201 created, 200 the same invoice existed, 409 conflict, 422 invalid
    invoice: Any = None  # the Invoice, or a row just inserted with the same attributes
    problem: dict[str, Any] | None = None

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "number": self.number, "status": self.status}
        if self.invoice is not None:
            out["invoice"] = invoice_view(self.invoice)
        if self.problem is not None:
            out["problem"] = self.problem
        return out


def _problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return Problem(status, slug, title, detail, **extra).to_dict()


def parse_items(raw: Sequence[Any]) -> tuple[list[tuple[int, InvoiceIn, int, str]], list[ItemResult]]:
    """Validate each item: (index, item, amount in minor units, body hash) for the valid ones, and a
    422 result for each invalid one."""
    good: list[tuple[int, InvoiceIn, int, str]] = []
    bad: list[ItemResult] = []
    for i, obj in enumerate(raw):
        number = obj.get("number") if isinstance(obj, dict) and isinstance(obj.get("number"), str) else None
        number = number if number is not None and len(number) <= 64 else None
        try:
            item = _ITEM.validate_python(obj)
            minor = item.minor()
            item.lines_minor()
        except ValidationError as e:
            fields = [
                {"field": ".".join(str(x) for x in err.get("loc", ())), "message": err.get("msg", "")}
                for err in e.errors(include_url=False, include_input=False)
            ]
            detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)[:1000]
            bad.append(
                ItemResult(
                    i,
                    number,
                    422,
                    problem=_problem(422, "validation", "Invalid invoice", detail, errors=fields),
                )
            )
            continue
        except MoneyError as e:
            bad.append(
                ItemResult(i, number, 422, problem=_problem(422, "invalid-amount", "Invalid amount", str(e)))
            )
            continue
        good.append((i, item, minor, _body_hash(item)))
    return good, bad


async def _existing(session: AsyncSession, biller_id: int, numbers: list[str]) -> dict[str, Invoice]:
    found: dict[str, Invoice] = {}
    for start in range(0, len(numbers), CHUNK):
        part = numbers[start : start + CHUNK]
        rows = await session.scalars(
            select(Invoice).where(Invoice.biller_id == biller_id, Invoice.number.in_(part))
        )
        found.update({r.number: r for r in rows})
    return found


async def _lock_feed(session: AsyncSession, biller_id: int) -> None:
    """Serialize the biller's change writers on PostgreSQL (see the module's doc)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:k, :b)"), {"k": 0x1_11_4E, "b": biller_id % 2**31}
        )


async def intake(session: AsyncSession, biller: Biller, raw: Sequence[Any]) -> list[ItemResult]:
    """Take invoices (already-parsed JSON objects): each answered in order by its result. The same
    number with the same body answers the stored invoice (200); with another body, 409. Inserts one
    statement per chunk of ``CHUNK`` rows."""
    if len(raw) > MAX_BATCH:
        raise invalid("batch-too-large", f"a batch has at most {MAX_BATCH} invoices")
    good, results = parse_items(raw)
    first: dict[str, tuple[int, str]] = {}  # number -> (index, hash) within this batch
    fresh: list[tuple[int, InvoiceIn, int, str]] = []
    later: list[tuple[int, InvoiceIn, str]] = []  # repeats of a number within this batch
    existing = await _existing(session, biller.id, list({item.number for _, item, _, _ in good}))
    for i, item, minor, h in good:
        inv = existing.get(item.number)
        if inv is not None:
            results.append(_against(i, item.number, h, inv))
        elif item.number in first:
            later.append((i, item, h))
        else:
            first[item.number] = (i, h)
            fresh.append((i, item, minor, h))
    now = utcnow()
    made: dict[str, Any] = {}
    if fresh:
        await _lock_feed(session, biller.id)
    for start in range(0, len(fresh), CHUNK):
        part = fresh[start : start + CHUNK]
        rows: list[dict[str, Any]] = [
            {
                "biller_id": biller.id,
                "number": item.number,
                "payer_name": item.payer.name,
                "payer_email": item.payer.email,
                "payer_phone": item.payer.phone,
                "payer_language": item.payer.language,
                "amount": minor,
                "currency": item.currency,
                "paid_amount": 0,
                "due_date": item.due_date,
                "description": item.description,
                "lines": item.lines_minor(),
                "reference": item.reference or reference_for(biller.id, item.number),
                "partial_allowed": item.partial_allowed,
                "status": "open",
                "link_token": secrets.token_urlsafe(24),
                "body_hash": h,
                "refund_review": False,
                "created_at": now,
                "updated_at": now,
            }
            for _, item, minor, h in part
        ]
        try:
            async with session.begin_nested():
                # with RETURNING, SQLAlchemy sends the chunk as one INSERT ... VALUES (insertmanyvalues)
                q = insert(Invoice).returning(Invoice.id, Invoice.number)
                ids = list((await session.execute(q, rows)).all())
        except IntegrityError:
            # another request took some of these numbers meanwhile: answer those against theirs
            raced = await _existing(session, biller.id, [item.number for _, item, _, _ in part])
            ids = []
            for (i, item, _minor, h), row in zip(part, rows, strict=True):
                inv = raced.get(item.number)
                if inv is not None:
                    results.append(_against(i, item.number, h, inv))
                    continue
                got = (
                    await session.execute(insert(Invoice).values(row).returning(Invoice.id, Invoice.number))
                ).one()
                ids.append(got)
        id_of = {number: iid for iid, number in ids}
        created = [
            {
                "biller_id": biller.id,
                "invoice_id": id_of[r["number"]],
                "from_status": None,
                "to_status": "open",
                "reason": "created",
                "paid_amount": 0,
                "at": now,
            }
            for r in rows
            if r["number"] in id_of
        ]
        if created:
            # RETURNING again: one statement for the chunk, not one per row
            await session.execute(insert(InvoiceChange).returning(InvoiceChange.id), created)
        for r in rows:
            if r["number"] in id_of:
                made[r["number"]] = SimpleNamespace(id=id_of[r["number"]], **r)  # viewed like an Invoice
    for i, item, _minor, _h in fresh:
        if item.number in made:
            results.append(ItemResult(i, item.number, 201, made[item.number]))
    for i, item, h in later:
        inv = made.get(item.number) or existing.get(item.number)
        if inv is None:
            inv = (await _existing(session, biller.id, [item.number])).get(item.number)
        if inv is None:  # pragma: no cover - the first of the batch failed another way
            results.append(ItemResult(i, item.number, 409, problem=_conflict(item.number)))
        else:
            results.append(_against(i, item.number, h, inv))
    results.sort(key=lambda r: r.index)
    return results


def _conflict(number: str) -> dict[str, Any]:
    return _problem(
        409,
        "invoice-exists",
        "Invoice exists",
        f"invoice {number} exists with other content; change it with PATCH",
        number=number,
    )


def _against(i: int, number: str, h: str, inv: Invoice) -> ItemResult:
    if inv.body_hash == h:
        return ItemResult(i, number, 200, inv)
    return ItemResult(i, number, 409, problem=_conflict(number))


# --- reading -------------------------------------------------------------------------------------------
async def invoice_of(session: AsyncSession, biller: Biller, number: str, *, lock: bool = False) -> Invoice:
    q = select(Invoice).where(Invoice.biller_id == biller.id, Invoice.number == number)
    if lock:
        q = q.with_for_update()
    inv: Invoice | None = await session.scalar(q)
    if inv is None:
        raise not_found(f"invoice {number}")
    return inv


async def invoice_by_token(session: AsyncSession, token: str) -> Invoice | None:
    """The invoice of a payment link (``/pay/{token}``), for the hosted page; None when unknown."""
    if not token or len(token) > 64 or not token.isascii():
        return None
    found: Invoice | None = await session.scalar(select(Invoice).where(Invoice.link_token == token))
    return found


async def history(session: AsyncSession, invoice: Invoice) -> list[InvoiceChange]:
    q = select(InvoiceChange).where(InvoiceChange.invoice_id == invoice.id).order_by(InvoiceChange.id)
    return list((await session.scalars(q)).all())


async def changes(session: AsyncSession, biller: Biller, after: int, limit: int) -> dict[str, Any]:
    """The biller's changes after the cursor ``after`` (a change id), oldest first."""
    q = (
        select(InvoiceChange, Invoice.number, Invoice.currency)
        .join(Invoice, Invoice.id == InvoiceChange.invoice_id)
        .where(InvoiceChange.biller_id == biller.id, InvoiceChange.id > after)
        .order_by(InvoiceChange.id)
        .limit(limit)
    )
    items = [change_view(ch, number, cur) for ch, number, cur in (await session.execute(q)).all()]
    return {"items": items, "next": items[-1]["id"] if items else after}


# --- status changes ------------------------------------------------------------------------------------
async def set_status(
    session: AsyncSession,
    biller: Biller,
    inv: Invoice,
    to: str,
    reason: str,
    now: dt.datetime | None = None,
    *,
    again: bool = False,
) -> InvoiceChange | None:
    """Move the invoice to ``to`` (nothing when it is there already, unless ``again``: another part
    paid of a partially paid invoice is reported too): history, feed, webhook."""
    if inv.status == to and not again:
        return None
    now = now or utcnow()
    await _lock_feed(session, biller.id)
    change = InvoiceChange(
        biller_id=biller.id,
        invoice_id=inv.id,
        from_status=inv.status,
        to_status=to,
        reason=reason[:500],
        paid_amount=inv.paid_amount,
        at=now,
    )
    inv.status, inv.updated_at = to, now
    session.add(change)
    await session.flush()
    data = {
        "change_id": change.id,
        "number": inv.number,
        "status": to,
        "previous_status": change.from_status,
        "reason": change.reason,
        "amount": format_amount(inv.amount, inv.currency),
        "paid_amount": format_amount(inv.paid_amount, inv.currency),
        "currency": inv.currency,
        "reference": inv.reference,
        "refund_review": inv.refund_review,
        "at": now.isoformat(),
    }
    await notify(
        session,
        biller_id=biller.id,
        event=f"invoice.{to}",
        recipient=None,
        data=data,
        key=f"invoice-change-{change.id}",
        channels=("webhook",),
        retry_window=WEBHOOK_WINDOW,
    )
    return change


async def update(session: AsyncSession, biller: Biller, number: str, patch: InvoicePatch) -> Invoice:
    inv = await invoice_of(session, biller, number, lock=True)
    if inv.status not in ("open", "overdue") or inv.paid_amount:
        raise Problem(
            409,
            "invoice-not-open",
            "Invoice not open",
            f"invoice {number} is {inv.status}; only open invoices change",
        )
    now = utcnow()
    if patch.amount is not None:
        try:
            inv.amount = parse_amount(patch.amount, inv.currency)
        except MoneyError as e:
            raise invalid("invalid-amount", str(e)) from None
    if patch.payer is not None:
        p = patch.payer
        inv.payer_name, inv.payer_email, inv.payer_phone, inv.payer_language = (
            p.name,
            p.email,
            p.phone,
            p.language,
        )
    if patch.description is not None:
        inv.description = patch.description
    if patch.due_date is not None:
        inv.due_date = patch.due_date
        if inv.status == "overdue" and patch.due_date >= now.date():
            await set_status(session, biller, inv, "open", "due date moved", now)
    inv.updated_at = now
    await session.flush()
    return inv


async def cancel(session: AsyncSession, biller: Biller, number: str, reason: str) -> Invoice:
    """Cancel an invoice not paid yet; a part already paid is flagged for a refund decision.
    Cancelling a cancelled invoice answers it as it is."""
    inv = await invoice_of(session, biller, number, lock=True)
    if inv.status == "cancelled":
        return inv
    if inv.status not in OPEN_STATUSES:
        raise Problem(409, "invoice-not-cancellable", "Not cancellable", f"invoice {number} is {inv.status}")
    if inv.paid_amount:
        inv.refund_review = True
    await set_status(session, biller, inv, "cancelled", reason or "cancelled by the biller")
    return inv


async def mark_overdue(
    session: AsyncSession, today: dt.date, limit: int = 1000, *, biller_ids: Sequence[int] | None = None
) -> int:
    """Move open and partially paid invoices past their due date to ``overdue`` (a sweep's step); of
    the billers ``biller_ids`` only when given (those whose calendar day ``today`` is)."""
    q = select(Invoice).where(Invoice.status.in_(("open", "partially_paid")), Invoice.due_date < today)
    if biller_ids is not None:
        q = q.where(Invoice.biller_id.in_(list(biller_ids)))
    # locked, skipping rows another sweep holds: two workers never move (and report) one invoice twice
    q = q.order_by(Invoice.id).limit(limit).with_for_update(skip_locked=True)
    rows = (await session.scalars(q)).all()
    billers: dict[int, Biller] = {}
    for inv in rows:
        b = billers.get(inv.biller_id) or await session.get(Biller, inv.biller_id)
        assert b is not None
        billers[b.id] = b
        await set_status(session, b, inv, "overdue", f"not paid by {inv.due_date.isoformat()}")
    return len(rows)


# --- payments ------------------------------------------------------------------------------------------
class DuplicatePayment(Exception):
    def __init__(self, payment: InvoicePayment) -> None:
        super().__init__(f"payment {payment.method}:{payment.method_reference} was applied already")
        self.payment = payment


async def record_payment(
    session: AsyncSession,
    invoice: Invoice,
    amount: int,
    method: str,
    reference: str,
    currency: str | None = None,
) -> InvoicePayment:
    """Apply a payment (minor units) to the invoice, once per ``(method, reference)``: a repeat
    returns the payment recorded the first time. What the invoice cannot take (an over-payment, a
    payment to a cancelled, paid or refunded invoice, another currency, a part where partial
    payments are not allowed) is kept and flagged for a refund decision. Status, history, feed, the
    biller's webhook and the ledger entry (``invoices.ledger``) follow."""
    if amount <= 0:
        raise ValueError("amount must be positive")
    if not method or len(method) > 32 or not reference or len(reference) > 200:
        raise ValueError("method is 1 to 32 characters, reference 1 to 200")
    done = await session.scalar(
        select(InvoicePayment).where(
            InvoicePayment.method == method, InvoicePayment.method_reference == reference
        )
    )
    if done is not None:
        return done
    locked = await session.scalar(select(Invoice).where(Invoice.id == invoice.id).with_for_update())
    assert locked is not None
    inv = locked
    biller = await session.get(Biller, inv.biller_id)
    assert biller is not None
    now = utcnow()
    currency = currency or inv.currency
    due = inv.amount - inv.paid_amount
    note = ""
    if currency != inv.currency:
        applied, note = 0, f"paid in {currency}, the invoice is in {inv.currency}"
    elif inv.status not in OPEN_STATUSES:
        applied, note = 0, f"the invoice is {inv.status}"
    elif amount < due and not inv.partial_allowed:
        applied, note = 0, "a part payment and the invoice takes no partial payments"
    else:
        applied = min(amount, due)
        if amount > due:
            note = "over-payment"
    payment = InvoicePayment(
        invoice_id=inv.id,
        method=method,
        method_reference=reference,
        amount=amount,
        currency=currency,
        applied=applied,
        excess=amount - applied,
        refund_review=amount > applied,
        note=note,
        at=now,
    )
    try:
        async with session.begin_nested():
            session.add(payment)
            await session.flush()
            await post_collection(session, biller, payment)
    except IntegrityError:
        done = await session.scalar(
            select(InvoicePayment).where(
                InvoicePayment.method == method, InvoicePayment.method_reference == reference
            )
        )
        if done is None:
            raise
        return done
    if payment.refund_review:
        inv.refund_review = True
    if applied:
        inv.paid_amount += applied
        inv.updated_at = now
        to = "paid" if inv.paid_amount >= inv.amount else "partially_paid"
        why = f"{method} payment {reference}: {format_amount(applied, inv.currency)} {inv.currency}"
        await set_status(session, biller, inv, to, why, now, again=True)
    await session.flush()
    return payment


async def count(session: AsyncSession, biller: Biller) -> int:
    return int(await session.scalar(select(func.count()).where(Invoice.biller_id == biller.id)) or 0)
