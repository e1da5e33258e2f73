"""Routes: each service's ordered provider candidates, and the record of one-click switches."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from paymux.db.base import Base, BigId, UTCDateTime, utcnow


class RouteCandidate(Base):
    __tablename__ = "route_candidates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id"), index=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), index=True)
    provider_service_code: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer, default=1)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    # criteria; None means "any"
    min_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    channel_group_id: Mapped[int | None] = mapped_column(ForeignKey("channel_groups.id"), nullable=True)
    hours_from: Mapped[str | None] = mapped_column(String(5), nullable=True)  # "HH:MM", provider's tz
    hours_to: Mapped[str | None] = mapped_column(String(5), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    switched_by_id: Mapped[int | None] = mapped_column(ForeignKey("route_switches.id"), nullable=True)


class RouteSwitch(Base):
    """A one-click switch of one service (or all) off a provider, optionally onto another."""

    __tablename__ = "route_switches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    off_provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    onto_provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"), nullable=True)
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id"), nullable=True)
    candidates_changed: Mapped[int] = mapped_column(Integer, default=0)
    actor: Mapped[str] = mapped_column(String(100), default="system")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RouteSwitchChange(Base):
    """What a switch did to one route candidate (as it was before), so that switching back restores
    exactly that: re-enables what it disabled, disables again what it enabled, puts priorities back
    and removes the candidates it added. Dropped once switched back."""

    __tablename__ = "route_switch_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    switch_id: Mapped[int] = mapped_column(ForeignKey("route_switches.id"), index=True)
    # no foreign key: the candidate may be removed since (by the catalog file), the record stays
    candidate_id: Mapped[int] = mapped_column(BigInteger)
    added: Mapped[bool] = mapped_column(Boolean, default=False)  # the switch added the candidate
    was_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    was_priority: Mapped[int] = mapped_column(Integer, default=1)
    was_switched_by_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
