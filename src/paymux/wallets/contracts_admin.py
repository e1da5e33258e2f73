"""Admin API of e-money contracts and cashback profiles (``/api/v1/admin/wallets/...``).

``contracts.read`` reads versions, proposals and what is in force for a customer or a merchant;
``contracts.propose`` proposes; ``contracts.approve`` approves or rejects (never one's own) and
puts customers in contract groups. Every change is audited.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import Field, StrictStr
from sqlalchemy import select

from paymux.api.deps import ReadSessionDep, SessionDep
from paymux.api.params import Id
from paymux.audit import service as audit
from paymux.auth import permissions as P
from paymux.auth.admin_api import require_api
from paymux.auth.principal import Principal
from paymux.errors import Problem, not_found
from paymux.wallets import contract_proposals as prop
from paymux.wallets import contracts
from paymux.wallets.admin import CODE, PROBLEMS, Strict
from paymux.wallets.cashback import profile_in_force, profile_view
from paymux.wallets.contract_models import (
    CONTRACT_TYPES,
    WalletCashbackProfile,
    WalletContract,
    WalletContractProposal,
)
from paymux.wallets.models import Issuer, WalletCustomer

router = APIRouter(prefix="/api/v1/admin/wallets", tags=["wallets admin"])

Reader = Annotated[Principal, Depends(require_api(P.CONTRACTS_READ))]
Proposer = Annotated[Principal, Depends(require_api(P.CONTRACTS_PROPOSE))]
Approver = Annotated[Principal, Depends(require_api(P.CONTRACTS_APPROVE))]
Code = Annotated[str, Query(pattern=CODE)]
Status = Literal["pending", "approved", "rejected"]


class Decision(Strict):
    note: Annotated[StrictStr, Field(max_length=500)] | None = None


class GroupIn(Strict):
    group: Annotated[StrictStr, Field(pattern=CODE)] | None = Field(description="null: in no group")


async def _issuer(session: Any, code: str) -> Issuer:
    issuer = await session.scalar(select(Issuer).where(Issuer.code == code))
    if issuer is None:
        raise not_found(f"issuer {code}")
    return issuer


async def _customer(session: Any, customer_id: int) -> WalletCustomer:
    c = await session.get(WalletCustomer, customer_id)
    if c is None:
        raise not_found(f"customer {customer_id}")
    return c


# --- contracts ----------------------------------------------------------------------------------------


@router.get("/contracts", summary="Contract versions", responses=PROBLEMS)
async def list_contracts(
    _: Reader,
    session: ReadSessionDep,
    issuer: Code | None = None,
    customer: Id | None = None,
    group: Code | None = None,
) -> dict[str, Any]:
    """Every version, newest first (optionally of one issuer, customer or group)."""
    q = select(WalletContract, Issuer).join(Issuer, Issuer.id == WalletContract.issuer_id)
    if issuer is not None:
        q = q.where(Issuer.code == issuer)
    if customer is not None:
        q = q.where(WalletContract.customer_id == customer)
    if group is not None:
        q = q.where(WalletContract.group_code == group)
    rows = (await session.execute(q.order_by(WalletContract.id.desc()).limit(1000))).all()
    return {"items": [contracts.contract_view(c, i) for c, i in rows]}


@router.get(
    "/customers/{customer_id}/contract-terms", summary="The terms in force for a customer", responses=PROBLEMS
)
async def effective_terms(
    customer_id: Id, _: Reader, session: ReadSessionDep, issuer: Code | None = None
) -> dict[str, Any]:
    """Per issuer (or only ``issuer``) and operation type, the fee rule and limits that apply to the
    customer now, and where they come from: its own contract (``customer``), its group's
    (``group``) or the issuer's defaults (``issuer``: its fee rules and ``/limits``)."""
    c = await _customer(session, customer_id)
    if issuer is not None:
        issuers = [await _issuer(session, issuer)]
    else:
        issuers = list((await session.scalars(select(Issuer).order_by(Issuer.code))).all())
    out: dict[str, Any] = {}
    for i in issuers:
        per_type: dict[str, Any] = {}
        for op_type in CONTRACT_TYPES:
            t = await contracts.terms_for(session, c.id, i, op_type)
            view: dict[str, Any] = {"source": t.source, "fee": t.fee_rule}
            if t.contract is not None:
                view["contract_id"], view["version"] = t.contract.id, t.contract.version
                view["limits"] = contracts.terms_view(t.contract.terms, i)[op_type]["limits"]
            per_type[op_type] = view
        out[i.code] = per_type
    return {
        "customer": c.id,
        "identification": c.identification,
        "group": await contracts.group_of(session, c.id),
        "terms": out,
    }


@router.put(
    "/customers/{customer_id}/contract-group", summary="Set a customer's contract group", responses=PROBLEMS
)
async def set_group(customer_id: Id, body: GroupIn, me: Approver, session: SessionDep) -> dict[str, Any]:
    c = await _customer(session, customer_id)
    before = await contracts.set_group(session, c.id, body.group, me.name)
    await audit.record(
        session,
        me,
        "wallets.contract_group",
        f"wallet_customer:{c.id}",
        {"group": before},
        {"group": body.group},
    )
    await session.commit()
    return {"customer": c.id, "group": body.group}


# --- cashback profiles --------------------------------------------------------------------------------


@router.get("/cashback-profiles", summary="Cashback profile versions", responses=PROBLEMS)
async def list_profiles(_: Reader, session: ReadSessionDep, merchant: Id | None = None) -> dict[str, Any]:
    q = select(WalletCashbackProfile, Issuer).join(Issuer, Issuer.id == WalletCashbackProfile.issuer_id)
    if merchant is not None:
        q = q.where(WalletCashbackProfile.merchant_id == merchant)
    rows = (await session.execute(q.order_by(WalletCashbackProfile.id.desc()).limit(1000))).all()
    return {"items": [profile_view(p, i) for p, i in rows]}


@router.get(
    "/customers/{customer_id}/cashback-profile", summary="A merchant's profile in force", responses=PROBLEMS
)
async def effective_profile(customer_id: Id, _: Reader, session: ReadSessionDep) -> dict[str, Any]:
    await _customer(session, customer_id)
    p = await profile_in_force(session, customer_id)
    if p is None:
        return {"merchant": customer_id, "profile": None}
    i = await session.get(Issuer, p.issuer_id)
    assert i is not None
    return {"merchant": customer_id, "profile": profile_view(p, i)}


# --- proposals ----------------------------------------------------------------------------------------


async def _list(session: Any, kind: str, status: str | None) -> dict[str, Any]:
    q = select(WalletContractProposal).where(WalletContractProposal.kind == kind)
    if status is not None:
        q = q.where(WalletContractProposal.status == status)
    rows = (await session.scalars(q.order_by(WalletContractProposal.id.desc()).limit(1000))).all()
    return {"items": [prop.proposal_state(r) for r in rows]}


async def _get(session: Any, kind: str, proposal_id: int) -> dict[str, Any]:
    row = await session.get(WalletContractProposal, proposal_id)
    if row is None or row.kind != kind:
        raise not_found(f"{kind} proposal {proposal_id}")
    return prop.proposal_state(row)


async def _decide(
    session: Any, kind: str, proposal_id: int, body: Decision | None, me: Principal, approve: bool
) -> dict[str, Any]:
    row = await prop.locked_proposal(session, proposal_id, kind)
    before = prop.proposal_state(row)
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
    except Problem:
        await session.rollback()
        raise
    action = f"wallets.{kind}.{'approve' if approve else 'reject'}"
    await audit.record(
        session, me, action, f"wallet_contract_proposal:{row.id}", before, prop.proposal_state(row)
    )
    await session.commit()
    return prop.proposal_state(row)


async def _proposed(session: Any, me: Principal, row: WalletContractProposal) -> dict[str, Any]:
    after = prop.proposal_state(row)
    await audit.record(
        session, me, f"wallets.{row.kind}.propose", f"wallet_contract_proposal:{row.id}", None, after
    )
    await session.commit()
    return after


@router.get("/contract-proposals", summary="Contract proposals", responses=PROBLEMS)
async def list_contract_proposals(
    _: Reader, session: ReadSessionDep, status: Status | None = None
) -> dict[str, Any]:
    return await _list(session, "contract", status)


@router.post("/contract-proposals", status_code=201, summary="Propose a contract version", responses=PROBLEMS)
async def propose_contract(body: prop.ContractIn, me: Proposer, session: SessionDep) -> dict[str, Any]:
    """It takes effect only once someone else (``contracts.approve``) approves it."""
    return await _proposed(session, me, await prop.propose_contract(session, body, me))


@router.get("/contract-proposals/{proposal_id}", summary="A contract proposal", responses=PROBLEMS)
async def get_contract_proposal(proposal_id: Id, _: Reader, session: ReadSessionDep) -> dict[str, Any]:
    return await _get(session, "contract", proposal_id)


@router.post(
    "/contract-proposals/{proposal_id}/approve", summary="Approve a contract proposal", responses=PROBLEMS
)
async def approve_contract(
    proposal_id: Id, me: Approver, session: SessionDep, body: Decision | None = None
) -> dict[str, Any]:
    return await _decide(session, "contract", proposal_id, body, me, True)


@router.post(
    "/contract-proposals/{proposal_id}/reject", summary="Reject a contract proposal", responses=PROBLEMS
)
async def reject_contract(
    proposal_id: Id, me: Approver, session: SessionDep, body: Decision | None = None
) -> dict[str, Any]:
    return await _decide(session, "contract", proposal_id, body, me, False)


@router.get("/cashback-proposals", summary="Cashback profile proposals", responses=PROBLEMS)
async def list_cashback_proposals(
    _: Reader, session: ReadSessionDep, status: Status | None = None
) -> dict[str, Any]:
    return await _list(session, "cashback", status)


@router.post(
    "/cashback-proposals", status_code=201, summary="Propose a cashback profile version", responses=PROBLEMS
)
async def propose_cashback(body: prop.CashbackIn, me: Proposer, session: SessionDep) -> dict[str, Any]:
    return await _proposed(session, me, await prop.propose_cashback(session, body, me))


@router.get("/cashback-proposals/{proposal_id}", summary="A cashback proposal", responses=PROBLEMS)
async def get_cashback_proposal(proposal_id: Id, _: Reader, session: ReadSessionDep) -> dict[str, Any]:
    return await _get(session, "cashback", proposal_id)


@router.post(
    "/cashback-proposals/{proposal_id}/approve", summary="Approve a cashback proposal", responses=PROBLEMS
)
async def approve_cashback(
    proposal_id: Id, me: Approver, session: SessionDep, body: Decision | None = None
) -> dict[str, Any]:
    return await _decide(session, "cashback", proposal_id, body, me, True)


@router.post(
    "/cashback-proposals/{proposal_id}/reject", summary="Reject a cashback proposal", responses=PROBLEMS
)
async def reject_cashback(
    proposal_id: Id, me: Approver, session: SessionDep, body: Decision | None = None
) -> dict[str, Any]:
    return await _decide(session, "cashback", proposal_id, body, me, False)
