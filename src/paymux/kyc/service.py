"""Identification of wallet customers: documents uploaded, Compliance's decision, and the limits.

The status lives in ``kyc_cases`` (one per customer, made on first need); the customer's
``identification`` level, which the wallet limits apply by (``wallets.service``), follows it:
``identified`` for an identified customer, ``unidentified`` for every other status. Services never
commit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.api.params import CONTROL
from paymux.db.base import utcnow
from paymux.kyc.files import CheckedFile
from paymux.kyc.models import DOCUMENT_KINDS, KYC_STATUSES, KycCase, KycDocument
from paymux.wallets.models import WalletCustomer


class KycError(ValueError):
    """A readable reason a KYC change is refused (an English msgid)."""


def clean_reason(reason: str) -> str:
    text = (reason or "").strip()
    if not text or len(text) > 500 or CONTROL.search(text):
        raise KycError("Give a reason (up to 500 characters, one line).")
    return text


async def case_of(session: AsyncSession, customer: WalletCustomer) -> KycCase:
    """The customer's case, made from its identification level when it has none yet."""
    case = await session.scalar(select(KycCase).where(KycCase.customer_id == customer.id))
    if case is None:
        status = "identified" if customer.identification == "identified" else "unidentified"
        case = KycCase(customer_id=customer.id, status=status)
        session.add(case)
        await session.flush()
    return case


async def add_document(
    session: AsyncSession, customer: WalletCustomer, kind: str, file: CheckedFile, by: str
) -> KycDocument:
    """Keep a checked file; a customer not identified (or rejected) now waits for review."""
    if kind not in DOCUMENT_KINDS:
        raise KycError("Unknown document kind.")
    doc = KycDocument(
        customer_id=customer.id,
        kind=kind,
        filename=file.filename,
        content_type=file.content_type,
        size=file.size,
        sha256=file.sha256,
        data=file.data,
        uploaded_by=by[:200],
    )
    session.add(doc)
    case = await case_of(session, customer)
    if case.status in ("unidentified", "rejected"):
        case.status, case.updated_at = "pending", utcnow()
    await session.flush()
    return doc


def case_view(case: KycCase) -> dict[str, Any]:
    return {
        "status": case.status,
        "reason": case.reason,
        "reviewed_by": case.reviewed_by,
        "reviewed_at": case.reviewed_at.isoformat() if case.reviewed_at else None,
    }


def document_view(d: KycDocument) -> dict[str, Any]:
    return {
        "id": d.id,
        "kind": d.kind,
        "filename": d.filename,
        "content_type": d.content_type,
        "size": d.size,
        "sha256": d.sha256,
        "created_at": d.created_at.isoformat(),
    }


async def documents_of(session: AsyncSession, customer_id: int) -> list[KycDocument]:
    q = select(KycDocument).where(KycDocument.customer_id == customer_id).order_by(KycDocument.id.desc())
    return list((await session.scalars(q)).all())


async def set_status(
    session: AsyncSession, actor: Any, customer: WalletCustomer, status: str, reason: str
) -> KycCase:
    """Compliance's decision (with a reason, audited); the customer's identification level and so
    its limits follow at once."""
    if status not in KYC_STATUSES:
        raise KycError("Unknown identification status.")
    why = clean_reason(reason)
    case = await case_of(session, customer)
    before = {**case_view(case), "identification": customer.identification}
    now = utcnow()
    case.status, case.reason, case.updated_at = status, why, now
    case.reviewed_by, case.reviewed_at = str(getattr(actor, "audit_name", actor))[:200], now
    level = "identified" if status == "identified" else "unidentified"
    if customer.identification != level:
        customer.identification, customer.updated_at = level, now
    await session.flush()
    await audit.record(
        session,
        actor,
        "kyc.status",
        f"wallet_customer:{customer.id}",
        before,
        {**case_view(case), "identification": customer.identification},
    )
    return case
