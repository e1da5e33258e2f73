"""The customer's side of identification (``/api/v1/wallet/identification``): its status and
documents, and uploading a document (multipart: ``kind`` and ``file``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy import select

from paymux.api.deps import ReadSessionDep, SessionDep
from paymux.errors import invalid
from paymux.kyc import files, service
from paymux.kyc.models import KycCase
from paymux.wallets.api import PROBLEMS, CustomerDep
from paymux.wallets.models import WalletCustomer

router = APIRouter(prefix="/api/v1/wallet", tags=["wallet"])

Kind = Literal["passport", "id_card", "driving_licence", "address_proof", "selfie", "other"]


async def read_upload(upload: UploadFile) -> files.CheckedFile:
    """The upload read up to the size limit and checked (422 problem if refused)."""
    limit = files.UploadSettings().max_bytes
    data = await upload.read(limit + 1)
    try:
        return files.check(data, upload.filename, limit)
    except files.UploadRefused as e:
        raise invalid("invalid-file", str(e), max_bytes=limit) from None


@router.get("/identification", summary="The customer's identification and documents", responses=PROBLEMS)
async def identification(customer: CustomerDep, session: ReadSessionDep) -> dict[str, Any]:
    case = await session.scalar(select(KycCase).where(KycCase.customer_id == customer.id))
    view = (
        service.case_view(case)
        if case is not None
        else {"status": customer.identification, "reason": None, "reviewed_by": None, "reviewed_at": None}
    )
    view.pop("reviewed_by")
    docs = await service.documents_of(session, customer.id)
    return {**view, "documents": [service.document_view(d) for d in docs]}


@router.post(
    "/identification/documents",
    status_code=201,
    summary="Upload an identification document (JPEG, PNG or PDF)",
    responses=PROBLEMS,
)
async def upload_document(
    customer: CustomerDep,
    session: SessionDep,
    kind: Annotated[Kind, Form(description="what the document is")],
    file: Annotated[UploadFile, File(description="JPEG, PNG or PDF, up to PAYMUX_UPLOADS_MAX_BYTES")],
) -> JSONResponse:
    """Keep the document (its type checked by its first bytes, its SHA-256 stored); a customer not
    identified yet now waits for Compliance's review (``pending``)."""
    checked = await read_upload(file)
    c = await session.get(WalletCustomer, customer.id)
    assert c is not None
    try:
        doc = await service.add_document(session, c, kind, checked, f"customer:{c.external_ref}")
    except service.KycError as e:
        await session.rollback()
        raise invalid("invalid-document", str(e)) from None
    await session.commit()
    return JSONResponse(service.document_view(doc), status_code=201)
