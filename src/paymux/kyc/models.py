"""KYC tables: one identification case per wallet customer and the documents it uploaded.

Documents are kept in the database (``data``), beside their SHA-256 and size: every node serves
them, backups hold them, and nothing on disk needs its own permissions.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, UTCDateTime, utcnow

KYC_STATUSES = ("unidentified", "pending", "identified", "rejected")
DOCUMENT_KINDS = ("passport", "id_card", "driving_licence", "address_proof", "selfie", "other")


class KycCase(Base):
    """A customer's identification: its status, and the reason and reviewer of the last decision."""

    __tablename__ = "kyc_cases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("wallet_customers.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="unidentified", index=True)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class KycDocument(Base):
    """One uploaded file (JPEG, PNG or PDF, checked by its first bytes) with its SHA-256."""

    __tablename__ = "kyc_documents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("wallet_customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
