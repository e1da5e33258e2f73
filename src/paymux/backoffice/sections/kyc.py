"""Identification (KYC): wallet customers with their identification status, a customer's documents
and Compliance's decision; documents served only with ``kyc.documents``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.api.params import Id
from paymux.auth import permissions as P
from paymux.auth.principal import Principal
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
from paymux.downloads import attachment
from paymux.kyc import service
from paymux.kyc.models import KYC_STATUSES, KycCase, KycDocument
from paymux.wallets.models import WalletCustomer

router = section_router()
register(
    Section(
        "kyc",
        router,
        menu=(MenuEntry("Identification", "/backoffice/kyc", P.KYC_READ, 20, area=CUSTOMERS),),
        permissions=(P.KYC_READ, P.KYC_DOCUMENTS, P.KYC_REVIEW),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.KYC_READ))]
DocReader = Annotated[Principal, Depends(require_before_reading(P.KYC_DOCUMENTS))]
Reviewer = Annotated[Principal, Depends(require(P.KYC_REVIEW))]

# a customer without a case yet has the status of its identification level
STATUS = func.coalesce(KycCase.status, WalletCustomer.identification)
STATUS_CHOICES = [(s, s) for s in KYC_STATUSES]


@router.get("/kyc")
async def kyc_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    spec = ListSpec(
        query=select(
            WalletCustomer, STATUS.label("kyc_status"), KycCase.updated_at.label("kyc_at")
        ).outerjoin(KycCase, KycCase.customer_id == WalletCustomer.id),
        columns=[
            Column("id", "Customer", WalletCustomer.id, lambda r: r[0].id),
            Column("external_ref", "Reference", WalletCustomer.external_ref, lambda r: r[0].external_ref),
            Column("name", "Name", WalletCustomer.name, lambda r: r[0].name),
            Column("email", "E-mail", None, lambda r: r[0].email),
            Column("phone", "Phone", None, lambda r: r[0].phone),
            Column("kyc_status", "Identification", STATUS, lambda r: r[1]),
            Column("kyc_at", "Changed", KycCase.updated_at, lambda r: r[2]),
        ],
        search=[WalletCustomer.external_ref, WalletCustomer.name, WalletCustomer.email, WalletCustomer.phone],
        filters=[Filter("status", "Identification", lambda q, v: q.where(STATUS == v), STATUS_CHOICES)],
        default_sort="id",
        sheet="identification",
    )
    return respond(request, await spec.run(session, request), "kyc/list.html")


async def _customer(session: AsyncSession, customer_id: int) -> WalletCustomer:
    c = await session.get(WalletCustomer, customer_id)
    if c is None:
        raise PageNotFound()
    return c


@router.get("/kyc/{customer_id}")
async def kyc_customer(request: Request, customer_id: Id, session: ReadDbDep, me: Reader) -> Response:
    c = await _customer(session, customer_id)
    case = await session.scalar(select(KycCase).where(KycCase.customer_id == c.id))
    docs = await service.documents_of(session, c.id)
    status = case.status if case is not None else c.identification
    return render(
        request,
        "kyc/customer.html",
        customer=c,
        case=case,
        status=status,
        documents=docs,
        statuses=KYC_STATUSES,
    )


@router.post("/kyc/{customer_id}/status")
async def kyc_set_status(request: Request, customer_id: Id, session: DbDep, me: Reviewer) -> Response:
    c = await _customer(session, customer_id)
    form = await request.form()
    back = f"/backoffice/kyc/{c.id}"
    try:
        await service.set_status(session, me, c, str(form.get("status", "")), str(form.get("reason", "")))
    except service.KycError as e:
        await session.rollback()
        return redirect(back, error=str(e))
    await session.commit()
    return redirect(back, "The identification status was changed.")


@router.get("/kyc/documents/{document_id}")
async def kyc_document(document_id: Id, session: ReadDbDep, me: DocReader) -> Response:
    doc = await session.get(KycDocument, document_id)
    if doc is None:
        raise PageNotFound()
    return attachment(doc.data, download_name("kyc", doc.id, doc.content_type), doc.content_type)


def download_name(prefix: str, ident: int, content_type: str) -> str:
    """An ASCII file name for a download (the client's own name is shown on the page, not sent)."""
    ext = {"image/jpeg": ".jpg", "image/png": ".png", "application/pdf": ".pdf"}.get(content_type, ".bin")
    return f"{prefix}-{ident}{ext}"
