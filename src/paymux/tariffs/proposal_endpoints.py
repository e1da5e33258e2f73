"""Admin API of the tariff maker-checker (``/api/v1/admin/tariff-proposals``): propose, approve, reject."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import select

from paymux import audit
from paymux.api.deps import HubDep, ReadSessionDep, SessionDep
from paymux.api.params import Id
from paymux.auth import permissions as P
from paymux.auth.admin_api import require_api
from paymux.auth.principal import Principal
from paymux.catalog.schemas import TariffIn
from paymux.errors import Problem, invalid, not_found
from paymux.tariffs import proposals as prop

router = APIRouter(prefix="/api/v1/admin/tariff-proposals", tags=["admin"])

Reader = Annotated[Principal, Depends(require_api(P.TARIFFS_READ))]
Proposer = Annotated[Principal, Depends(require_api(P.TARIFFS_PROPOSE))]
Approver = Annotated[Principal, Depends(require_api(P.TARIFFS_APPROVE))]


class Decision(BaseModel):
    note: str | None = Field(None, max_length=500)


def _out(row: prop.TariffProposal) -> dict[str, Any]:
    return prop.proposal_state(row)


@router.get("")
async def list_proposals(
    _: Reader, session: ReadSessionDep, status: str | None = None
) -> list[dict[str, Any]]:
    """Proposals, newest first (optionally only ``pending``, ``approved`` or ``rejected`` ones)."""
    q = select(prop.TariffProposal).order_by(prop.TariffProposal.id.desc())
    if status:
        q = q.where(prop.TariffProposal.status == status)
    return [_out(r) for r in (await session.scalars(q.limit(1000))).all()]


@router.post("", status_code=201)
async def create_proposal(body: TariffIn, me: Proposer, session: SessionDep) -> dict[str, Any]:
    """Propose a tariff version; it takes effect only once someone else approves it."""
    try:
        row = await prop.propose(session, body, me)
    except prop.ProposalError as e:
        await session.rollback()
        raise invalid("invalid-tariff", str(e)) from None
    await audit.record(session, me, "tariff.propose", f"tariff_proposal:{row.id}", None, _out(row))
    await session.commit()
    return _out(row)


@router.get("/{proposal_id}")
async def get_proposal(proposal_id: Id, _: Reader, session: ReadSessionDep) -> dict[str, Any]:
    row = await prop.get_proposal(session, proposal_id)
    if row is None:
        raise not_found(f"tariff proposal {proposal_id}")
    return _out(row)


async def _decide(
    proposal_id: int, body: Decision | None, me: Principal, hub: Any, session: Any, approve: bool
) -> dict[str, Any]:
    row = await prop.locked_proposal(session, proposal_id)
    if row is None:
        raise not_found(f"tariff proposal {proposal_id}")
    before = _out(row)
    note = body.note if body else None
    try:
        if approve:
            await prop.approve(session, row, me, note)
        else:
            await prop.reject(session, row, me, note)
    except prop.OwnProposal as e:
        await session.rollback()
        raise Problem(403, "own-proposal", "Maker-checker", str(e)) from None
    except prop.AlreadyDecided as e:
        await session.rollback()
        raise Problem(409, "already-decided", "Already decided", str(e)) from None
    except prop.ProposalError as e:
        await session.rollback()
        raise invalid("invalid-tariff", str(e)) from None
    action = "tariff.approve" if approve else "tariff.reject"
    await audit.record(session, me, action, f"tariff_proposal:{row.id}", before, _out(row))
    await session.commit()
    if approve:
        hub.catalog_changed()
    return _out(row)


@router.post("/{proposal_id}/approve")
async def approve_proposal(
    proposal_id: Id, me: Approver, hub: HubDep, session: SessionDep, body: Decision | None = None
) -> dict[str, Any]:
    """Approve: the tariff version is created (from the proposed time, or now if that has passed)."""
    return await _decide(proposal_id, body, me, hub, session, True)


@router.post("/{proposal_id}/reject")
async def reject_proposal(
    proposal_id: Id, me: Approver, hub: HubDep, session: SessionDep, body: Decision | None = None
) -> dict[str, Any]:
    """Reject: nothing changes but the proposal."""
    return await _decide(proposal_id, body, me, hub, session, False)
