"""Tariff versions: never overwritten, each effective from a point in time."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow

# remuneration: paid to us by the provider; fee: charged to the payer; commission: paid to the dealer.
TARIFF_KINDS = ("remuneration", "fee", "commission")


class TariffVersion(Base):
    __tablename__ = "tariff_versions"
    __table_args__ = (UniqueConstraint("scope_key", "effective_from"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # scope: None means "any"; remuneration is always per provider
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"), nullable=True)
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"), nullable=True)
    channel_group_id: Mapped[int | None] = mapped_column(ForeignKey("channel_groups.id"), nullable=True)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"), nullable=True)
    scope_key: Mapped[str] = mapped_column(String(120), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    rule: Mapped[dict[str, Any]] = mapped_column(Json)  # paymux.tariffs.calc storage form
    effective_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="system")
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)


def scope_key(
    kind: str,
    service_id: int | None,
    provider_id: int | None,
    channel_group_id: int | None,
    channel_id: int | None,
    currency: str,
) -> str:
    """The identity of a tariff's scope: versions of one scope replace each other over time."""

    def part(v: int | None) -> str:
        return "*" if v is None else str(v)

    parts = (service_id, provider_id, channel_group_id, channel_id)
    return ":".join([kind, *(part(v) for v in parts), currency])
