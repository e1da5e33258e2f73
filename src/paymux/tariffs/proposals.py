"""Maker-checker for tariffs: a proposed change takes effect only once someone else approves it.

A Financial specialist (``tariffs.propose``) proposes a tariff version; a CFO (``tariffs.approve``)
approves or rejects it. Nobody decides on their own proposal. Approval creates the effective-dated
:class:`~paymux.tariffs.models.TariffVersion` through :func:`paymux.tariffs.service.add_version`; a
change cannot take effect before it is approved, so a proposal whose ``effective_from`` has passed by
then takes effect at the moment of approval. Rejection changes nothing but the proposal.
Functions flush, never commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from paymux.auth.principal import Principal
from paymux.catalog.schemas import TariffIn
from paymux.catalog.service import CatalogError, get_channel, get_channel_group, get_provider, get_service
from paymux.db.base import Base, BigId, Json, UTCDateTime, utcnow
from paymux.db.concurrent import locked
from paymux.tariffs import service as tariffs
from paymux.tariffs.calc import TariffError, parse_rule

__all__ = [
    "PROPOSAL_STATUSES",
    "AlreadyDecided",
    "OwnProposal",
    "ProposalError",
    "TariffProposal",
    "actor_key",
    "approve",
    "get_proposal",
    "pending_count",
    "proposal_state",
    "propose",
    "reject",
]

PROPOSAL_STATUSES = ("pending", "approved", "rejected")


class ProposalError(ValueError):
    """A proposal that cannot be made or decided as asked; the message says why."""


class OwnProposal(ProposalError):
    """The decider made the proposal (maker-checker: another person decides)."""


class AlreadyDecided(ProposalError):
    """The proposal was approved or rejected before."""


class TariffProposal(Base):
    """A proposed tariff version waiting for (or given) a decision."""

    __tablename__ = "tariff_proposals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(300))  # human label: "fee service=mts channel=term"
    currency: Mapped[str] = mapped_column(String(3))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)  # the TariffIn, JSON form
    effective_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # as proposed
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    proposed_by: Mapped[str] = mapped_column(String(100))
    proposed_by_key: Mapped[str] = mapped_column(String(100))  # user:<id> or admin:<name>
    proposed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision_note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("tariff_versions.id"), nullable=True)
    effective_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)  # once approved


def actor_key(who: Principal) -> str:
    """Who acted, stable across renames: ``user:<id>`` for users, ``admin:<name>`` for admin tokens."""
    return f"user:{who.user_id}" if who.user_id is not None else f"{who.kind}:{who.name}"


def _scope(data: TariffIn) -> str:
    parts: list[str] = [data.kind]
    for name in ("service", "provider", "channel_group", "channel"):
        value = getattr(data, name)
        if value is not None:
            parts.append(f"{name}={value}")
    return " ".join(parts)


async def _check_scope(session: AsyncSession, data: TariffIn) -> None:
    """The scope must name known catalog items, and a service's currency must match (refused now,
    not at approval)."""
    service = None if data.service is None else await get_service(session, data.service)
    if data.provider is not None:
        await get_provider(session, data.provider)
    if data.channel_group is not None:
        await get_channel_group(session, data.channel_group)
    if data.channel is not None:
        await get_channel(session, data.channel)
    if service is not None and service.currency != data.currency:
        raise ProposalError(
            f"currency {data.currency} differs from the currency {service.currency} "
            f"of service {service.code!r}"
        )
    parse_rule(data.rule, data.currency)


async def propose(session: AsyncSession, data: TariffIn, who: Principal) -> TariffProposal:
    """Record a pending proposal. Raises ProposalError, CatalogError or TariffError with a reason."""
    try:
        await _check_scope(session, data)
    except (CatalogError, TariffError) as e:
        raise ProposalError(str(e)) from None
    row = TariffProposal(
        kind=data.kind,
        scope=_scope(data),
        currency=data.currency,
        payload=data.model_dump(mode="json"),
        effective_from=data.effective_from,
        note=data.note,
        status="pending",
        proposed_by=who.name,
        proposed_by_key=actor_key(who),
        proposed_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return row


async def get_proposal(session: AsyncSession, proposal_id: int) -> TariffProposal | None:
    return await session.get(TariffProposal, proposal_id)


async def locked_proposal(session: AsyncSession, proposal_id: int) -> TariffProposal | None:
    """The proposal as committed now, locked until the transaction ends: read it so to decide on it.
    Two decisions at once are taken one after the other; the second finds it decided (one tariff
    version, never two, and never approved and rejected)."""
    return await locked(session, TariffProposal, proposal_id)


def _pending(row: TariffProposal, who: Principal) -> None:
    if row.status != "pending":
        raise AlreadyDecided(f"proposal #{row.id} is already {row.status}")
    if row.proposed_by_key == actor_key(who):
        raise OwnProposal("nobody may approve or reject their own proposal; another person must decide")


async def approve(
    session: AsyncSession, row: TariffProposal, who: Principal, note: str | None = None
) -> TariffProposal:
    """Approve: create the tariff version (effective from the proposed time, or now if that passed)."""
    await locked_proposal(session, row.id)  # ``row`` as committed (the caller should have read it so)
    _pending(row, who)
    now = utcnow()
    data = TariffIn.model_validate(row.payload)
    if data.effective_from < now:
        data = data.model_copy(update={"effective_from": now})
    created_by = f"{row.proposed_by} (approved by {who.name})"[:100]
    try:
        _, version = await tariffs.add_version(session, data, created_by)
    except (CatalogError, TariffError) as e:
        raise ProposalError(str(e)) from None
    row.status = "approved"
    row.decided_by, row.decided_at, row.decision_note = who.name, now, (note or None)
    row.version_id, row.effective_at = version.id, data.effective_from
    await session.flush()
    return row


async def reject(
    session: AsyncSession, row: TariffProposal, who: Principal, note: str | None = None
) -> TariffProposal:
    """Reject: nothing changes but the proposal."""
    await locked_proposal(session, row.id)
    _pending(row, who)
    row.status = "rejected"
    row.decided_by, row.decided_at, row.decision_note = who.name, utcnow(), (note or None)
    await session.flush()
    return row


def proposal_state(row: TariffProposal) -> dict[str, Any]:
    """The proposal as the audit log and the API show it."""
    return {
        "id": row.id,
        "status": row.status,
        "scope": row.scope,
        "tariff": row.payload,
        "proposed_by": row.proposed_by,
        "proposed_at": row.proposed_at,
        "decided_by": row.decided_by,
        "decided_at": row.decided_at,
        "decision_note": row.decision_note,
        "version_id": row.version_id,
        "effective_at": row.effective_at,
    }


async def pending_count(session: AsyncSession) -> int:
    query = select(func.count()).select_from(TariffProposal).where(TariffProposal.status == "pending")
    return int(await session.scalar(query) or 0)
