"""The customer's side of support (``/api/v1/wallet/...``): its codeword, its tickets and their
messages."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from sqlalchemy import select

from paymux.api.deps import ReadSessionDep, SessionDep
from paymux.api.params import Id
from paymux.errors import invalid, not_found
from paymux.kyc.api import read_upload
from paymux.support import service
from paymux.support.models import Ticket, TicketAttachment
from paymux.wallets.api import PROBLEMS, CustomerDep
from paymux.wallets.models import WalletCustomer

router = APIRouter(prefix="/api/v1/wallet", tags=["wallet"])


class CodewordIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"codeword": "blue heron 42"}]})
    codeword: Annotated[StrictStr, Field(min_length=6, max_length=64)]


class TicketIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"subject": "Top-up not credited", "message": "Paid 500 RUB at 10:12."}]
        },
    )
    subject: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    message: Annotated[StrictStr, Field(min_length=1, max_length=5000)]
    priority: Literal["urgent", "high", "normal", "low"] = "normal"


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"message": "Any news?"}]})
    message: Annotated[StrictStr, Field(min_length=1, max_length=5000)]


@router.put("/codeword", status_code=204, summary="Set the codeword support asks for", responses=PROBLEMS)
async def set_codeword(body: CodewordIn, customer: CustomerDep, session: SessionDep) -> Response:
    """Support checks it before acting for the customer by phone; stored hashed (Argon2id)."""
    try:
        await service.set_codeword(session, customer.id, body.codeword)
    except service.SupportError as e:
        raise invalid("invalid-codeword", str(e)) from None
    await session.commit()
    return Response(status_code=204)


async def _own_ticket(session: Any, customer: WalletCustomer, ticket_id: int) -> Ticket:
    t = await session.get(Ticket, ticket_id)
    if t is None or t.customer_id != customer.id:
        raise not_found(f"ticket {ticket_id}")
    return t


async def ticket_detail(session: Any, t: Ticket) -> dict[str, Any]:
    msgs = await service.messages_of(session, t.id)
    files = (
        await session.execute(
            select(TicketAttachment.id, TicketAttachment.filename, TicketAttachment.size).where(
                TicketAttachment.ticket_id == t.id
            )
        )
    ).all()
    return {
        **service.ticket_view(t),
        "messages": [
            {
                "from": "customer" if m.from_customer else "support",
                "message": m.body,
                "at": m.created_at.isoformat(),
            }
            for m in msgs
        ],
        "attachments": [{"id": i, "filename": n, "size": s} for i, n, s in files],
    }


@router.post("/tickets", status_code=201, summary="Open a support ticket", responses=PROBLEMS)
async def open_ticket(body: TicketIn, customer: CustomerDep, session: SessionDep) -> JSONResponse:
    c = await session.get(WalletCustomer, customer.id)
    assert c is not None
    try:
        t = await service.create_ticket(
            session,
            c,
            subject=body.subject,
            message=body.message,
            priority=body.priority,
            source="customer",
            author=f"customer:{c.external_ref}",
        )
    except service.SupportError as e:
        await session.rollback()
        raise invalid("invalid-ticket", str(e)) from None
    await session.commit()
    return JSONResponse(await ticket_detail(session, t), status_code=201)


@router.get("/tickets", summary="The customer's tickets", responses=PROBLEMS)
async def list_tickets(customer: CustomerDep, session: ReadSessionDep) -> dict[str, Any]:
    rows = (
        await session.scalars(
            select(Ticket).where(Ticket.customer_id == customer.id).order_by(Ticket.id.desc()).limit(200)
        )
    ).all()
    return {"items": [service.ticket_view(t) for t in rows]}


@router.get("/tickets/{ticket_id}", summary="A ticket with its messages", responses=PROBLEMS)
async def get_ticket(ticket_id: Id, customer: CustomerDep, session: ReadSessionDep) -> dict[str, Any]:
    return await ticket_detail(session, await _own_ticket(session, customer, ticket_id))


@router.post(
    "/tickets/{ticket_id}/messages", status_code=201, summary="Write to a ticket", responses=PROBLEMS
)
async def write(ticket_id: Id, body: MessageIn, customer: CustomerDep, session: SessionDep) -> JSONResponse:
    t = await _own_ticket(session, customer, ticket_id)
    if t.status == "closed":
        raise invalid("ticket-closed", f"ticket {ticket_id} is closed: open a new one")
    try:
        await service.add_message(
            session, t, body.message, f"customer:{customer.external_ref}", from_customer=True
        )
    except service.SupportError as e:
        await session.rollback()
        raise invalid("invalid-message", str(e)) from None
    await session.commit()
    return JSONResponse(await ticket_detail(session, t), status_code=201)


@router.post(
    "/tickets/{ticket_id}/attachments",
    status_code=201,
    summary="Attach a file to a ticket (JPEG, PNG or PDF)",
    responses=PROBLEMS,
)
async def attach(
    ticket_id: Id,
    customer: CustomerDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="JPEG, PNG or PDF, up to PAYMUX_UPLOADS_MAX_BYTES")],
) -> JSONResponse:
    """The file's type is read from its first bytes; its SHA-256 is kept."""
    t = await _own_ticket(session, customer, ticket_id)
    if t.status == "closed":
        raise invalid("ticket-closed", f"ticket {ticket_id} is closed: open a new one")
    checked = await read_upload(file)
    await service.add_attachment(session, t, checked, f"customer:{customer.external_ref}")
    await session.commit()
    return JSONResponse(await ticket_detail(session, t), status_code=201)
