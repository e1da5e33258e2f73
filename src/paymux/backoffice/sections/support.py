"""Customer support: find a client (phone, e-mail, reference, name, customer or wallet id), the
client's card (wallets, operations, subscriptions, invoices, tickets), tickets with messages,
attachments and SLA deadlines. Support opens a ticket for a client only with the client's codeword."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.api.params import Id, parse_id
from paymux.auth import permissions as P
from paymux.auth.principal import Principal, permissions_of
from paymux.auth.user_models import Role, User
from paymux.backoffice.framework import (
    CUSTOMERS,
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
from paymux.backoffice.sections.kyc import download_name
from paymux.backoffice.sections.ops import money_for
from paymux.db.base import utcnow
from paymux.downloads import attachment
from paymux.invoices.models import Invoice
from paymux.kyc import files
from paymux.kyc.models import KycCase
from paymux.recurring.models import Customer as RecurringCustomer
from paymux.recurring.models import Subscription
from paymux.support import service
from paymux.support.models import OPEN_STATUSES, PRIORITIES, TICKET_STATUSES, Ticket, TicketAttachment
from paymux.wallets import service as wallets
from paymux.wallets.api import wallet_view
from paymux.wallets.models import Wallet, WalletCustomer, WalletOperation

router = section_router()
register(
    Section(
        "support",
        router,
        menu=(
            MenuEntry("Clients", "/backoffice/support/clients", P.SUPPORT_READ, 21, area=CUSTOMERS),
            MenuEntry("Support tickets", "/backoffice/support/tickets", P.SUPPORT_READ, 22, area=CUSTOMERS),
        ),
        permissions=(P.SUPPORT_READ, P.SUPPORT_TICKETS, P.SUPPORT_ASSIGN),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.SUPPORT_READ))]
Agent = Annotated[Principal, Depends(require(P.SUPPORT_TICKETS))]


# --- clients -----------------------------------------------------------------------------------------


@router.get("/support/clients")
async def clients(request: Request, session: ReadDbDep, me: Reader) -> Response:
    term = request.query_params.get("q", "")
    spec = ListSpec(
        query=service.client_search(term[:200]),
        columns=[
            Column("id", "Customer", WalletCustomer.id),
            Column("external_ref", "Reference", WalletCustomer.external_ref),
            Column("name", "Name", WalletCustomer.name),
            Column("email", "E-mail", WalletCustomer.email),
            Column("phone", "Phone", WalletCustomer.phone),
            Column("status", "Status", WalletCustomer.status),
            Column("created_at", "Created", WalletCustomer.created_at),
        ],
        default_sort="id",
        sheet="clients",
    )
    return respond(request, await spec.run(session, request), "support/clients.html")


async def _customer(session: AsyncSession, customer_id: int) -> WalletCustomer:
    c = await session.get(WalletCustomer, customer_id)
    if c is None:
        raise PageNotFound()
    return c


def _linked(column_email: Any, column_phone: Any, c: WalletCustomer) -> Any:
    conds = []
    if c.email:
        conds.append(column_email == c.email)
    if c.phone:
        conds.append(column_phone == c.phone)
    return or_(*conds) if conds else None


async def client_card(session: AsyncSession, c: WalletCustomer) -> dict[str, Any]:
    """What the card shows: wallets with balances, the latest operations, subscriptions and invoices
    linked by e-mail or phone, tickets."""
    wallet_rows = (
        await session.scalars(select(Wallet).where(Wallet.customer_id == c.id).order_by(Wallet.id))
    ).all()
    ops = (
        await session.scalars(
            select(WalletOperation)
            .where(WalletOperation.customer_id == c.id)
            .order_by(WalletOperation.id.desc())
            .limit(50)
        )
    ).all()
    operations = [wallets.operation_view(op, await wallets.precisions_of(session, op)) for op in ops]
    subs: list[Any] = []
    link = _linked(RecurringCustomer.email, RecurringCustomer.phone, c)
    if link is not None:
        subs = list(
            (
                await session.execute(
                    select(Subscription, RecurringCustomer.reference)
                    .join(RecurringCustomer, RecurringCustomer.id == Subscription.customer_id)
                    .where(link)
                    .order_by(Subscription.id.desc())
                    .limit(50)
                )
            ).all()
        )
    invoices: list[Invoice] = []
    link = _linked(Invoice.payer_email, Invoice.payer_phone, c)
    if link is not None:
        invoices = list(
            (await session.scalars(select(Invoice).where(link).order_by(Invoice.id.desc()).limit(50))).all()
        )
    tickets = (
        await session.scalars(select(Ticket).where(Ticket.customer_id == c.id).order_by(Ticket.id.desc()))
    ).all()
    case = await session.scalar(select(KycCase).where(KycCase.customer_id == c.id))
    return {
        "wallets": [await wallet_view(session, w) for w in wallet_rows],
        "operations": operations,
        "subscriptions": subs,
        "invoices": invoices,
        "tickets": tickets,
        "kyc_status": case.status if case else c.identification,
        "has_codeword": await service.has_codeword(session, c.id),
    }


@router.get("/support/clients/{customer_id}")
async def client(request: Request, customer_id: Id, session: ReadDbDep, me: Reader) -> Response:
    c = await _customer(session, customer_id)
    return render(
        request,
        "support/client.html",
        customer=c,
        priorities=PRIORITIES,
        money=money_for(request),
        now=utcnow(),
        **await client_card(session, c),
    )


@router.post("/support/clients/{customer_id}/tickets")
async def client_ticket(request: Request, customer_id: Id, session: DbDep, me: Agent) -> Response:
    c = await _customer(session, customer_id)
    form = await request.form()
    back = f"/backoffice/support/clients/{c.id}"
    try:
        await service.verify_codeword(session, c.id, str(form.get("codeword", "")))
    except service.SupportError as e:
        await audit.record(session, me, "support.codeword", f"wallet_customer:{c.id}", outcome="refused")
        await session.commit()  # the wrong try counts
        return redirect(back, error=str(e))
    try:
        t = await service.create_ticket(
            session,
            c,
            subject=str(form.get("subject", "")),
            message=str(form.get("message", "")),
            priority=str(form.get("priority", "normal")),
            source="support",
            author=me.audit_name,
        )
    except service.SupportError as e:
        await session.commit()  # the right codeword reset the count of wrong ones
        return redirect(back, error=str(e))
    await audit.record(session, me, "support_ticket.create", f"ticket:{t.id}", None, service.ticket_view(t))
    await session.commit()
    return redirect(f"/backoffice/support/tickets/{t.id}", "The ticket was created.")


# --- tickets -----------------------------------------------------------------------------------------


def _overdue(q: Any, v: str) -> Any:
    if v != "yes":
        return q
    return q.where(Ticket.status.in_(OPEN_STATUSES), Ticket.due_at < utcnow())


def _assignee(q: Any, v: str) -> Any:
    if v == "none":
        return q.where(Ticket.assignee_id.is_(None))
    uid = parse_id(v)
    return q.where(Ticket.assignee_id == uid) if uid is not None else q


@router.get("/support/tickets")
async def tickets(request: Request, session: ReadDbDep, me: Reader) -> Response:
    spec = ListSpec(
        query=select(Ticket, WalletCustomer.external_ref, User.username)
        .join(WalletCustomer, WalletCustomer.id == Ticket.customer_id)
        .outerjoin(User, User.id == Ticket.assignee_id),
        columns=[
            Column("id", "Ticket", Ticket.id, lambda r: r[0].id),
            Column("subject", "Subject", None, lambda r: r[0].subject),
            Column("client", "Client", WalletCustomer.external_ref, lambda r: r[1]),
            Column("status", "Status", Ticket.status, lambda r: r[0].status),
            Column("priority", "Priority", Ticket.priority, lambda r: r[0].priority),
            Column("assignee", "Assignee", User.username, lambda r: r[2]),
            Column("due_at", "Due", Ticket.due_at, lambda r: r[0].due_at),
            Column("created_at", "Created", Ticket.created_at, lambda r: r[0].created_at),
        ],
        search=[Ticket.subject, WalletCustomer.external_ref],
        filters=[
            Filter(
                "status",
                "Status",
                lambda q, v: q.where(Ticket.status == v),
                [(s, s) for s in TICKET_STATUSES],
            ),
            Filter(
                "priority",
                "Priority",
                lambda q, v: q.where(Ticket.priority == v),
                [(p, p) for p in PRIORITIES],
            ),
            Filter("overdue", "Overdue", _overdue, [("yes", "yes")]),
            Filter("assignee", "Assignee", _assignee, [("none", "nobody"), (str(me.user_id or 0), "me")]),
        ],
        default_sort="due_at",
        default_desc=False,
        sheet="tickets",
    )
    return respond(request, await spec.run(session, request), "support/tickets.html", now=utcnow())


async def _ticket(session: AsyncSession, ticket_id: int) -> Ticket:
    t = await session.get(Ticket, ticket_id)
    if t is None:
        raise PageNotFound()
    return t


async def support_staff(session: AsyncSession) -> list[tuple[int, str]]:
    """Enabled users whose role may work on tickets (the assignees to choose from)."""
    rows = (
        await session.execute(
            select(User.id, User.username, Role)
            .join(Role, Role.id == User.role_id)
            .where(User.enabled.is_(True))
        )
    ).all()
    return [(uid, name) for uid, name, role in rows if P.SUPPORT_TICKETS in permissions_of(role)]


@router.get("/support/tickets/{ticket_id}")
async def ticket(request: Request, ticket_id: Id, session: ReadDbDep, me: Reader) -> Response:
    t = await _ticket(session, ticket_id)
    c = await _customer(session, t.customer_id)
    attachments = (
        await session.scalars(
            select(TicketAttachment).where(TicketAttachment.ticket_id == t.id).order_by(TicketAttachment.id)
        )
    ).all()
    assignee = await session.get(User, t.assignee_id) if t.assignee_id else None
    return render(
        request,
        "support/ticket.html",
        ticket=t,
        customer=c,
        messages=await service.messages_of(session, t.id),
        attachments=attachments,
        assignee=assignee,
        staff=await support_staff(session) if me.can(P.SUPPORT_ASSIGN) else [],
        statuses=TICKET_STATUSES,
        priorities=PRIORITIES,
        overdue=service.is_overdue(t),
        max_bytes=files.UploadSettings().max_bytes,
    )


@router.post("/support/tickets/{ticket_id}/messages")
async def ticket_message(request: Request, ticket_id: Id, session: DbDep, me: Agent) -> Response:
    t = await _ticket(session, ticket_id)
    form = await request.form()
    back = f"/backoffice/support/tickets/{t.id}"
    try:
        await service.add_message(
            session, t, str(form.get("message", "")), me.audit_name, from_customer=False
        )
    except service.SupportError as e:
        await session.rollback()
        return redirect(back, error=str(e))
    if t.status == "open":
        t.status = "in_progress"
    if t.assignee_id is None and me.user_id is not None:
        t.assignee_id = me.user_id
    await session.commit()
    return redirect(back, "The message was added.")


@router.post("/support/tickets/{ticket_id}/change")
async def ticket_change(request: Request, ticket_id: Id, session: DbDep, me: Agent) -> Response:
    t = await _ticket(session, ticket_id)
    form = await request.form()
    back = f"/backoffice/support/tickets/{t.id}"
    raw = str(form.get("assignee", "")) if "assignee" in form else None
    assignee = (me.user_id if raw == "me" else parse_id(raw)) if raw else None
    assign = raw is not None and assignee != t.assignee_id
    if assign:
        # anyone who works on tickets takes one or lets go of their own; only a manager moves others'
        own = assignee == me.user_id or (assignee is None and t.assignee_id == me.user_id)
        if not (own or me.can(P.SUPPORT_ASSIGN)):
            return redirect(back, error="Only a support manager assigns tickets to others.")
        if assignee is not None and assignee not in {u for u, _ in await support_staff(session)}:
            return redirect(back, error="Choose a user who works on tickets.")
    try:
        await service.change_ticket(
            session,
            me,
            t,
            status=str(form["status"]) if form.get("status") else None,
            priority=str(form["priority"]) if form.get("priority") else None,
            assign=assign,
            assignee_id=assignee,
        )
    except service.SupportError as e:
        await session.rollback()
        return redirect(back, error=str(e))
    await session.commit()
    return redirect(back, "The ticket was changed.")


@router.post("/support/tickets/{ticket_id}/attachments")
async def ticket_attach(request: Request, ticket_id: Id, session: DbDep, me: Agent) -> Response:
    t = await _ticket(session, ticket_id)
    back = f"/backoffice/support/tickets/{t.id}"
    form = await request.form()
    upload = form.get("file")
    limit = files.UploadSettings().max_bytes
    if upload is None or isinstance(upload, str):
        return redirect(back, error="Choose a file.")
    try:
        checked = files.check(await upload.read(limit + 1), upload.filename, limit)
    except files.UploadRefused as e:
        return redirect(back, error=str(e))
    a = await service.add_attachment(session, t, checked, me.audit_name)
    await audit.record(
        session, me, "support_ticket.attach", f"ticket:{t.id}", None, {"file": a.filename, "sha256": a.sha256}
    )
    await session.commit()
    return redirect(back, "The file was attached.")


@router.get("/support/attachments/{attachment_id}")
async def ticket_file(attachment_id: Id, session: ReadDbDep, me: Reader) -> Response:
    a = await session.get(TicketAttachment, attachment_id)
    if a is None:
        raise PageNotFound()
    return attachment(a.data, download_name("ticket-file", a.id, a.content_type), a.content_type)
