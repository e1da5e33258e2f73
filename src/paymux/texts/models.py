"""Text overrides: an edited translation of one back-office or notification text in one language."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, UTCDateTime, utcnow


class TextOverride(Base):
    """``key`` is the English msgid (a back-office text); ``key_hash`` its SHA-256, unique per language."""

    __tablename__ = "text_overrides"
    __table_args__ = (UniqueConstraint("language", "key_hash"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    language: Mapped[str] = mapped_column(String(8))
    key_hash: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
