"""Customer support: finding a client, codewords, tickets and their SLA. Services never commit.

A codeword is hashed with the back office's password hasher (Argon2id). Wrong codewords are counted
per client in the database (every node sees them): after ``codeword_attempts`` in a row, checks of
that client are refused for ``codeword_lock_minutes``, whoever asks; a right one resets the count.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.api.params import CONTROL, parse_id
from paymux.auth.passwords import hash_password_off_loop, verify_password_off_loop
from paymux.db.base import utcnow
from paymux.kyc.files import CheckedFile
from paymux.support.models import (
    OPEN_STATUSES,
    PRIORITIES,
    TICKET_STATUSES,
    SupportCodeword,
    Ticket,
    TicketAttachment,
    TicketMessage,
)
from paymux.support.settings import SupportSettings
from paymux.wallets.models import Wallet, WalletCustomer


class SupportError(ValueError):
    """A readable reason a support action is refused (an English msgid)."""


# --- clients -----------------------------------------------------------------------------------------


def client_search(term: str) -> Select[Any]:
    """Customers matching ``term``: phone, e-mail, reference or name (parts of them), or a customer's
    or a wallet's id."""
    q = select(WalletCustomer)
    text = term.strip()
    if not text:
        return q
    like = f"%{text}%"
    conds: list[Any] = [
        WalletCustomer.phone.ilike(like),
        WalletCustomer.email.ilike(like),
        WalletCustomer.external_ref.ilike(like),
        WalletCustomer.name.ilike(like),
    ]
    number = parse_id(text.lstrip("#"))
    if number is not None:
        conds.append(WalletCustomer.id == number)
        conds.append(WalletCustomer.id.in_(select(Wallet.customer_id).where(Wallet.id == number)))
    return q.where(or_(*conds))


# --- codewords ---------------------------------------------------------------------------------------


def check_codeword_text(word: str) -> str:
    if not 6 <= len(word) <= 64 or CONTROL.search(word):
        raise SupportError("A codeword has 6 to 64 characters.")
    return word


async def set_codeword(session: AsyncSession, customer_id: int, word: str) -> None:
    """Set (or replace) the client's codeword; the count of wrong tries starts again."""
    hashed = await hash_password_off_loop(check_codeword_text(word))
    row = await session.scalar(select(SupportCodeword).where(SupportCodeword.customer_id == customer_id))
    if row is None:
        row = SupportCodeword(customer_id=customer_id, hash=hashed)
        session.add(row)
    row.hash, row.failures, row.locked_until, row.updated_at = hashed, 0, None, utcnow()
    await session.flush()


async def has_codeword(session: AsyncSession, customer_id: int) -> bool:
    found = await session.scalar(select(SupportCodeword.id).where(SupportCodeword.customer_id == customer_id))
    return found is not None


async def verify_codeword(
    session: AsyncSession, customer_id: int, word: str, settings: SupportSettings | None = None
) -> None:
    """Nothing when ``word`` is the client's codeword; ``SupportError`` otherwise (the wrong try is
    counted and kept even though the caller's action is refused: the caller commits it)."""
    s = settings or SupportSettings()
    row = await session.scalar(
        select(SupportCodeword).where(SupportCodeword.customer_id == customer_id).with_for_update()
    )
    if row is None:
        raise SupportError("The client has not set a codeword.")
    now = utcnow()
    if row.locked_until is not None and row.locked_until > now:
        raise SupportError("Too many wrong codewords: checks of this client are paused, try later.")
    if await verify_password_off_loop(row.hash, word[:64]):
        row.failures, row.locked_until = 0, None
        await session.flush()
        return
    row.failures += 1
    if row.failures >= s.codeword_attempts:
        row.failures, row.locked_until = 0, now + dt.timedelta(minutes=s.codeword_lock_minutes)
    await session.flush()
    raise SupportError("The codeword is wrong.")


# --- tickets -----------------------------------------------------------------------------------------


def _text(value: str, most: int, what: str, *, lines: bool = False) -> str:
    text = (value or "").strip()
    bad = CONTROL.search(text.replace("\n", "").replace("\r", "").replace("\t", "") if lines else text)
    if not text or len(text) > most or bad:
        raise SupportError(what)
    return text


def due_at(priority: str, start: dt.datetime, settings: SupportSettings | None = None) -> dt.datetime:
    return start + dt.timedelta(hours=(settings or SupportSettings()).sla_hours(priority))


def ticket_view(t: Ticket) -> dict[str, Any]:
    return {
        "id": t.id,
        "subject": t.subject,
        "status": t.status,
        "priority": t.priority,
        "due_at": t.due_at.isoformat(),
        "overdue": is_overdue(t),
        "created_at": t.created_at.isoformat(),
        "updated_at": t.updated_at.isoformat(),
    }


def is_overdue(t: Ticket, now: dt.datetime | None = None) -> bool:
    return t.status in OPEN_STATUSES and t.due_at < (now or utcnow())


async def create_ticket(
    session: AsyncSession,
    customer: WalletCustomer,
    *,
    subject: str,
    message: str,
    priority: str = "normal",
    source: str,
    author: str,
    settings: SupportSettings | None = None,
) -> Ticket:
    if priority not in PRIORITIES:
        raise SupportError("Unknown priority.")
    now = utcnow()
    t = Ticket(
        customer_id=customer.id,
        subject=_text(subject, 200, "A subject has 1 to 200 characters, one line."),
        status="open",
        priority=priority,
        source=source,
        created_by=author[:200],
        due_at=due_at(priority, now, settings),
        created_at=now,
        updated_at=now,
    )
    body = _text(message, 5000, "A message has 1 to 5000 characters.", lines=True)
    session.add(t)
    await session.flush()
    session.add(
        TicketMessage(ticket_id=t.id, author=author[:200], from_customer=source == "customer", body=body)
    )
    await session.flush()
    return t


async def add_message(
    session: AsyncSession, t: Ticket, body: str, author: str, *, from_customer: bool
) -> TicketMessage:
    text = _text(body, 5000, "A message has 1 to 5000 characters.", lines=True)
    m = TicketMessage(ticket_id=t.id, author=author[:200], from_customer=from_customer, body=text)
    session.add(m)
    now = utcnow()
    t.updated_at = now
    if from_customer and t.status in ("waiting_customer", "resolved"):
        t.status, t.resolved_at = "open", None
    await session.flush()
    return m


async def change_ticket(
    session: AsyncSession,
    actor: Any,
    t: Ticket,
    *,
    status: str | None = None,
    priority: str | None = None,
    assign: bool = False,
    assignee_id: int | None = None,
    settings: SupportSettings | None = None,
) -> None:
    """Change status, priority (the SLA deadline moves with it) or, with ``assign``, the assignee
    (None: nobody); audited."""
    before = {**ticket_view(t), "assignee_id": t.assignee_id}
    now = utcnow()
    if status is not None:
        if status not in TICKET_STATUSES:
            raise SupportError("Unknown status.")
        t.status = status
        t.resolved_at = now if status in ("resolved", "closed") else None
    if priority is not None and priority != t.priority:
        if priority not in PRIORITIES:
            raise SupportError("Unknown priority.")
        t.priority, t.due_at = priority, due_at(priority, t.created_at, settings)
    if assign:
        t.assignee_id = assignee_id
    t.updated_at = now
    await session.flush()
    await audit.record(
        session,
        actor,
        "support_ticket.change",
        f"ticket:{t.id}",
        before,
        {**ticket_view(t), "assignee_id": t.assignee_id},
    )


async def add_attachment(session: AsyncSession, t: Ticket, file: CheckedFile, by: str) -> TicketAttachment:
    a = TicketAttachment(
        ticket_id=t.id,
        filename=file.filename,
        content_type=file.content_type,
        size=file.size,
        sha256=file.sha256,
        data=file.data,
        uploaded_by=by[:200],
    )
    session.add(a)
    t.updated_at = utcnow()
    await session.flush()
    return a


async def messages_of(session: AsyncSession, ticket_id: int) -> list[TicketMessage]:
    q = select(TicketMessage).where(TicketMessage.ticket_id == ticket_id).order_by(TicketMessage.id)
    return list((await session.scalars(q)).all())


async def overdue_count(session: AsyncSession, assignee_id: int | None = None) -> int:
    q = (
        select(func.count())
        .select_from(Ticket)
        .where(Ticket.status.in_(OPEN_STATUSES), Ticket.due_at < utcnow())
    )
    if assignee_id is not None:
        q = q.where(Ticket.assignee_id == assignee_id)
    return int(await session.scalar(q) or 0)


async def unassigned_count(session: AsyncSession) -> int:
    q = select(func.count()).select_from(Ticket).where(Ticket.status == "open", Ticket.assignee_id.is_(None))
    return int(await session.scalar(q) or 0)
