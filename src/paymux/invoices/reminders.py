"""Reminding payers of their invoices: the biller's policy days, days the payer asked for, and one
sent now (the back office, the biller's API); and the daily move of unpaid invoices to ``overdue``.

* **Policy**: the biller's ``reminder_days`` are days relative to the due date (``[-3, 0, 7, 14]``:
  three days before, on the day, a week and two weeks after). On each such day (in the biller's
  time zone) an invoice still ``open``, ``partially_paid`` or ``overdue`` is reminded once: the
  reminder's row (``invoice_reminders``, key ``policy:<days>``) is unique per invoice, so however often
  the worker runs, and however many workers run, a policy day is never reminded twice. A day that
  passed while no worker ran is not reminded late.
* **Requested** (:func:`request_reminder`): the payer asks, on the payment page, to be reminded on a
  date; sent that day (in the biller's zone) if the invoice is still unpaid.
* **Now** (:func:`send_now`): a reminder sent at once, refused when one went out that day already.
* **At most one a day**: a policy or requested reminder due on a day another reminder of the invoice
  was sent is skipped (kept, with its reason). Paid, cancelled and refunded invoices are never
  reminded.

Each reminder is a notice (``paymux.notifications.notify``, event ``invoice.reminder``, by e-mail
and SMS in the payer's language) carrying the payment link (``/pay/{token}``) and the QR code's image
(``/pay/{token}/qr.png``), absolute when ``PAYMUX_INVOICES_PUBLIC_URL`` is set. The notification worker
delivers it. Nothing here commits except the worker's own transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.db.base import utcnow
from paymux.errors import Problem, invalid
from paymux.invoices import service
from paymux.invoices.models import OPEN_STATUSES, Biller, Invoice, InvoiceReminder
from paymux.notifications.service import Recipient, notify
from paymux.notifications.templates import valid_timezone

if TYPE_CHECKING:
    from paymux.runtime import Hub

log = logging.getLogger("paymux.invoices.reminders")

EVENT = "invoice.reminder"
MAX_AHEAD = dt.timedelta(days=366)  # a requested reminder is at most a year ahead
BATCH = 500
OVERDUE_BATCH = 1000


class InvoiceSettings(BaseSettings):
    """Invoice collection's settings (``PAYMUX_INVOICES_*``)."""

    model_config = SettingsConfigDict(env_prefix="PAYMUX_INVOICES_", extra="ignore")

    public_url: str = Field(
        default="", max_length=500, description="the hub's public address, for links in reminders"
    )
    reminders_enabled: bool = Field(default=True, description="run the reminder and overdue worker")
    poll_seconds: float = Field(default=300, gt=0, description="how often the reminder worker looks")


def _settings() -> InvoiceSettings:
    return InvoiceSettings()


def zone_of(biller: Biller) -> ZoneInfo:
    return ZoneInfo(valid_timezone(biller.timezone))


def local_day(biller: Biller, now: dt.datetime) -> dt.date:
    """The biller's calendar day at ``now``."""
    return now.astimezone(zone_of(biller)).date()


def links(inv: Invoice, public_url: str | None = None) -> tuple[str, str]:
    """The payment link and the QR code's image of the invoice (absolute with a public address)."""
    base = (public_url if public_url is not None else _settings().public_url).rstrip("/")
    path = service.pay_path(inv)
    return base + path, f"{base}{path}/qr.png"


def _recipient(inv: Invoice, biller: Biller) -> Recipient:
    return Recipient(
        name=inv.payer_name,
        phone=inv.payer_phone,
        email=inv.payer_email,
        language=inv.payer_language,
        timezone=valid_timezone(biller.timezone),
    )


async def _sent_on(session: AsyncSession, invoice_id: int, day: dt.date) -> bool:
    found = await session.scalar(
        select(InvoiceReminder.id).where(
            InvoiceReminder.invoice_id == invoice_id,
            InvoiceReminder.day == day,
            InvoiceReminder.status == "sent",
        )
    )
    return found is not None


async def _deliver(
    session: AsyncSession, row: InvoiceReminder, inv: Invoice, biller: Biller, now: dt.datetime
) -> InvoiceReminder:
    """Send the reminder ``row`` (flushed, ``pending``), or skip it with the reason."""
    if inv.status not in OPEN_STATUSES:
        row.status, row.reason = "skipped", f"the invoice is {inv.status}"
        return row
    if row.kind != "manual" and await _sent_on(session, inv.id, row.day):
        row.status, row.reason = "skipped", "a reminder was sent that day already"
        return row
    pay_url, qr_url = links(inv)
    data = {
        "number": inv.number,
        "biller": biller.name,
        "amount": inv.amount - inv.paid_amount,
        "total": inv.amount,
        "currency": inv.currency,
        "due_date": inv.due_date.isoformat(),
        "days": (row.day - inv.due_date).days,
        "reference": inv.reference,
        "pay_url": pay_url,
        "qr_url": qr_url,
        "kind": row.kind,
    }
    ids = await notify(
        session,
        biller_id=biller.id,
        event=EVENT,
        recipient=_recipient(inv, biller),
        data=data,
        key=f"invoice-reminder-{row.id}",
        channels=("sms", "email"),
    )
    if not ids:
        row.status, row.reason = "skipped", "the payer has no e-mail address or phone number"
        return row
    row.status, row.sent_at, row.notifications, row.reason = "sent", now, ids, ""
    return row


async def _new_row(
    session: AsyncSession, inv: Invoice, kind: str, key: str, day: dt.date, now: dt.datetime, by: str = ""
) -> InvoiceReminder | None:
    """Insert the reminder row; None when the invoice has one under ``key`` already."""
    exists = await session.scalar(
        select(InvoiceReminder.id).where(InvoiceReminder.invoice_id == inv.id, InvoiceReminder.key == key)
    )
    if exists is not None:
        return None
    row = InvoiceReminder(
        invoice_id=inv.id,
        biller_id=inv.biller_id,
        kind=kind,
        key=key,
        day=day,
        status="pending",
        reason="",
        notifications=[],
        requested_by=by[:200],
        created_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return None  # another worker made it at the same time
    return row


# --- the service ---------------------------------------------------------------------------------------


async def request_reminder(
    session: AsyncSession,
    invoice: Invoice,
    day: dt.date,
    *,
    now: dt.datetime | None = None,
    by: str = "payer",
) -> InvoiceReminder:
    """Remind the payer of ``invoice`` on ``day`` (the biller's calendar day): today or later, at most a
    year ahead, the invoice not paid or cancelled. Asking again for the same day answers the same
    reminder. Never commits."""
    now = now or utcnow()
    biller = await session.get(Biller, invoice.biller_id)
    assert biller is not None
    today = local_day(biller, now)
    if not today <= day <= today + MAX_AHEAD:
        raise invalid("invalid-reminder-date", "a reminder date is today or later, at most a year ahead")
    if invoice.status not in OPEN_STATUSES:
        raise Problem(
            409, "invoice-not-open", "Invoice not open", f"invoice {invoice.number} is {invoice.status}"
        )
    key = f"requested:{day.isoformat()}"
    row = await _new_row(session, invoice, "requested", key, day, now, by)
    if row is None:
        found = await session.scalar(
            select(InvoiceReminder).where(
                InvoiceReminder.invoice_id == invoice.id, InvoiceReminder.key == key
            )
        )
        assert found is not None
        return found
    return row


async def send_now(
    session: AsyncSession, invoice: Invoice, *, now: dt.datetime | None = None, by: str = ""
) -> InvoiceReminder:
    """Send a reminder of ``invoice`` at once (its notices are recorded; the worker delivers them).
    409 when the invoice is paid, cancelled or refunded, or was reminded today already. Never commits."""
    now = now or utcnow()
    biller = await session.get(Biller, invoice.biller_id)
    assert biller is not None
    if invoice.status not in OPEN_STATUSES:
        raise Problem(
            409, "invoice-not-open", "Invoice not open", f"invoice {invoice.number} is {invoice.status}"
        )
    today = local_day(biller, now)
    row = None
    if not await _sent_on(session, invoice.id, today):
        row = await _new_row(session, invoice, "manual", f"manual:{today.isoformat()}", today, now, by)
    if row is None:
        raise Problem(
            409,
            "reminded-today",
            "Reminded today",
            f"a reminder of invoice {invoice.number} was sent today already; at most one a day",
        )
    await _deliver(session, row, invoice, biller, now)
    if row.status != "sent":
        raise Problem(409, "reminder-not-sent", "Reminder not sent", row.reason)
    await session.flush()
    return row


async def reminders_of(session: AsyncSession, invoice_id: int) -> list[InvoiceReminder]:
    q = select(InvoiceReminder).where(InvoiceReminder.invoice_id == invoice_id).order_by(InvoiceReminder.id)
    return list((await session.scalars(q)).all())


def reminder_view(r: InvoiceReminder) -> dict[str, object]:
    return {
        "id": r.id,
        "kind": r.kind,
        "day": r.day.isoformat(),
        "status": r.status,
        "reason": r.reason,
        "sent_at": r.sent_at.isoformat() if r.sent_at else None,
        "notifications": list(r.notifications or []),
        "created_at": r.created_at.isoformat(),
    }


# --- the worker's round ---------------------------------------------------------------------------------


@dataclass(slots=True)
class RoundResult:
    overdue: int = 0
    sent: list[int] = field(default_factory=list)  # reminder ids
    skipped: list[int] = field(default_factory=list)


async def _policy_for(hub: Hub, biller_id: int, now: dt.datetime, result: RoundResult) -> None:
    async with hub.sessions() as session:
        biller = await session.get(Biller, biller_id)
        if biller is None or not biller.enabled or not biller.reminder_days:
            return
        today = local_day(biller, now)
        by_due = {today - dt.timedelta(days=int(d)): int(d) for d in biller.reminder_days}
        last = 0
        while True:
            invoices = (
                await session.scalars(
                    select(Invoice)
                    .where(
                        Invoice.biller_id == biller.id,
                        Invoice.status.in_(OPEN_STATUSES),
                        Invoice.due_date.in_(list(by_due)),
                        Invoice.id > last,
                    )
                    .order_by(Invoice.id)
                    .limit(BATCH)
                )
            ).all()
            for inv in invoices:
                days = by_due[inv.due_date]
                row = await _new_row(session, inv, "policy", f"policy:{days}", today, now)
                if row is None:
                    continue
                await _deliver(session, row, inv, biller, now)
                (result.sent if row.status == "sent" else result.skipped).append(row.id)
            await session.commit()
            if len(invoices) < BATCH:
                return
            last = invoices[-1].id


async def _requested(hub: Hub, now: dt.datetime, result: RoundResult) -> None:
    async with hub.sessions() as session:
        # a requested day is the biller's: anything due by tomorrow in UTC may be due somewhere now
        horizon = (now + dt.timedelta(days=1)).date()
        rows = (
            await session.scalars(
                select(InvoiceReminder)
                .where(InvoiceReminder.status == "pending", InvoiceReminder.day <= horizon)
                .order_by(InvoiceReminder.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for row in rows:
            inv = await session.get(Invoice, row.invoice_id)
            biller = await session.get(Biller, row.biller_id)
            assert inv is not None and biller is not None
            if row.day > local_day(biller, now):
                continue
            await _deliver(session, row, inv, biller, now)
            (result.sent if row.status == "sent" else result.skipped).append(row.id)
        await session.commit()


async def run_round(hub: Hub, now: dt.datetime | None = None) -> RoundResult:
    """One round: move unpaid invoices past their due date (in the biller's zone) to ``overdue``,
    send the policy reminders due today and the requested ones due by today (each committed)."""
    now = now or utcnow()
    result = RoundResult()
    async with hub.read_sessions() as session:
        zones = (await session.execute(select(Biller.id, Biller.timezone))).all()
    by_day: dict[dt.date, list[int]] = {}
    for biller_id, tz in zones:  # an invoice is overdue from the day after its due date, the biller's day
        by_day.setdefault(now.astimezone(ZoneInfo(valid_timezone(tz))).date(), []).append(biller_id)
    for today, ids in sorted(by_day.items()):
        while True:
            async with hub.sessions() as session:
                moved = await service.mark_overdue(session, today, OVERDUE_BATCH, biller_ids=ids)
                await session.commit()
            result.overdue += moved
            if moved < OVERDUE_BATCH:
                break
    async with hub.read_sessions() as session:
        billers = list((await session.scalars(select(Biller.id).where(Biller.enabled.is_(True)))).all())
    for biller_id in billers:
        await _policy_for(hub, biller_id, now, result)
    await _requested(hub, now, result)
    return result


class InvoiceReminderWorker:
    """Runs :func:`run_round` every ``poll_seconds``."""

    name = "invoice reminders"

    def __init__(self, hub: Hub, *, poll_seconds: float = 300.0) -> None:
        self.hub = hub
        self.poll_seconds = poll_seconds
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run_once(self, now: dt.datetime | None = None) -> RoundResult:
        return await run_round(self.hub, now)

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("invoice reminders: worker round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.poll_seconds)


@contextlib.asynccontextmanager
async def running_invoice_reminder_worker(
    hub: Hub, settings: InvoiceSettings | None = None
) -> AsyncIterator[InvoiceReminderWorker | None]:
    """Run the worker in the background for the block (nothing when
    ``PAYMUX_INVOICES_REMINDERS_ENABLED=false``)."""
    settings = settings or _settings()
    if not settings.reminders_enabled:
        yield None
        return
    worker = InvoiceReminderWorker(hub, poll_seconds=settings.poll_seconds)
    task = asyncio.create_task(worker.run(), name="paymux-invoice-reminders")
    try:
        yield worker
    finally:
        worker.stop()
        await task
