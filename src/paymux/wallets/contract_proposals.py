"""Maker-checker of contracts and cashback profiles, as for tariffs (``paymux.tariffs.proposals``).

A Financial specialist (``contracts.propose``) proposes a contract version or a cashback profile
version; a CFO (``contracts.approve``) approves or rejects it; nobody decides on their own
proposal. Approval makes the version, effective from the proposed time or, if that has passed, from
the approval. Rejection changes nothing but the proposal. Functions flush, never commit; the
callers audit.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.api.params import MAX_ID, Ident
from paymux.auth.principal import Principal
from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.errors import invalid, not_found
from paymux.tariffs.proposals import AlreadyDecided, OwnProposal, ProposalError, actor_key
from paymux.wallets import contracts
from paymux.wallets.contract_models import (
    WalletCashbackProfile,
    WalletContractProposal,
)
from paymux.wallets.models import Issuer, WalletCustomer
from paymux.wallets.units import parse_units

__all__ = [
    "AlreadyDecided",
    "CashbackIn",
    "ContractIn",
    "OwnProposal",
    "ProposalError",
    "approve",
    "pending_count",
    "proposal_state",
    "propose_cashback",
    "propose_contract",
    "reject",
]

CODE = r"^[a-z0-9][a-z0-9_-]{0,31}$"
Amount = Annotated[StrictStr, Field(max_length=24)]
CustomerId = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
OpType = Literal["topup", "withdrawal", "p2p", "merchant_payment", "exchange"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitTermIn(Strict):
    """A limit of a contract; amounts in major units of the issuer; null: no bound."""

    name: Annotated[StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    identification: Literal["unidentified", "identified"] | None = Field(
        default=None, description="the level it applies to; null: every level"
    )
    min_amount: Amount | None = None
    max_amount: Amount | None = None
    daily_count: Annotated[StrictInt, Field(ge=0, le=1_000_000)] | None = None
    daily_amount: Amount | None = None
    monthly_count: Annotated[StrictInt, Field(ge=0, le=1_000_000)] | None = None
    monthly_amount: Amount | None = None
    action: Literal["refuse", "review"] = "refuse"


class OperationTermsIn(Strict):
    fee: dict[str, Any] | None = Field(
        default=None, description="a tariff rule, money in minor units of the issuer; null: no fee"
    )
    limits: list[LimitTermIn] = Field(default_factory=list, max_length=20)


class ContractIn(Strict):
    """A contract version for one customer (``customer``) or one group (``group``) in one issuer."""

    issuer: Annotated[StrictStr, Field(pattern=CODE)]
    customer: CustomerId | None = None
    group: Annotated[StrictStr, Field(pattern=CODE)] | None = None
    effective_from: dt.datetime | None = Field(default=None, description="default: on approval")
    terms: dict[OpType, OperationTermsIn] = Field(default_factory=dict)
    note: Annotated[Ident, Field(max_length=500)] | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "issuer": "rub",
                    "group": "vip",
                    "terms": {
                        "p2p": {
                            "fee": {"percent": "0.5", "min": 100},
                            "limits": [
                                {
                                    "name": "p2p-month",
                                    "identification": "identified",
                                    "max_amount": "50000.00",
                                    "monthly_amount": "300000.00",
                                    "monthly_count": 100,
                                }
                            ],
                        }
                    },
                    "note": "VIP pricing",
                }
            ]
        },
    )


def _default_types() -> list[OpType]:
    return ["merchant_payment", "p2p"]


class CashbackIn(Strict):
    """A cashback profile version for a merchant customer."""

    merchant: CustomerId
    issuer: Annotated[StrictStr, Field(pattern=CODE)] = Field(description="the issuer cashback is paid in")
    mode: Literal["percent", "fixed"]
    percent: Annotated[StrictStr, Field(max_length=12)] | None = None
    fixed: Amount | None = Field(default=None, description="per operation, in major units of the issuer")
    per_operation_cap: Amount | None = None
    monthly_cap: Amount | None = Field(default=None, description="per payer and calendar month (UTC)")
    funding: Literal["merchant", "issuer"] = "merchant"
    operation_types: list[OpType] = Field(default_factory=_default_types, min_length=1, max_length=5)
    enabled: bool = True
    effective_from: dt.datetime | None = None
    note: Annotated[Ident, Field(max_length=500)] | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "merchant": 42,
                    "issuer": "bonus",
                    "mode": "percent",
                    "percent": "2",
                    "per_operation_cap": "500",
                    "monthly_cap": "3000",
                    "funding": "issuer",
                }
            ]
        },
    )


# --- checks shared by proposal and approval -----------------------------------------------------------


async def _issuer(session: AsyncSession, code: str) -> Issuer:
    issuer = await session.scalar(select(Issuer).where(Issuer.code == code))
    if issuer is None:
        raise invalid("unknown-issuer", f"no issuer {code!r}")
    return issuer


async def _customer(session: AsyncSession, customer_id: int, what: str) -> WalletCustomer:
    c = await session.get(WalletCustomer, customer_id)
    if c is None:
        raise invalid("unknown-customer", f"no {what} {customer_id}")
    return c


async def checked_contract(session: AsyncSession, data: ContractIn) -> tuple[Issuer, dict[str, Any], str]:
    """The issuer, the terms in storage form and a label of the scope (raises 422 problems)."""
    if (data.customer is None) == (data.group is None):
        raise invalid("invalid-contract", "a contract is for one customer or one group: give exactly one")
    issuer = await _issuer(session, data.issuer)
    if data.customer is not None:
        await _customer(session, data.customer, "customer")
    terms = contracts.parse_terms({k: v.model_dump() for k, v in data.terms.items()}, issuer)
    who = f"customer {data.customer}" if data.customer is not None else f"group {data.group}"
    return issuer, terms, f"contract {who} issuer {issuer.code}"


def _percent(text: str | None) -> str:
    try:
        value = Decimal(text or "")
    except InvalidOperation:
        raise invalid("invalid-cashback", f"percent {str(text)[:20]!r} is not a decimal number") from None
    if not value.is_finite() or not 0 < value <= 100 or -value.as_tuple().exponent > 6:  # type: ignore[operator]
        raise invalid("invalid-cashback", "percent must be above 0 and at most 100, with at most 6 decimals")
    return format(value, "f")


async def checked_cashback(session: AsyncSession, data: CashbackIn) -> tuple[Issuer, dict[str, Any], str]:
    """The paying issuer, the profile's columns and a label (raises 422 problems)."""
    merchant = await _customer(session, data.merchant, "merchant")
    if merchant.kind != "merchant":
        raise invalid("invalid-cashback", f"customer {merchant.id} is not a merchant")
    issuer = await _issuer(session, data.issuer)

    def units(text: str | None, field: str) -> int | None:
        return None if text is None else parse_units(text, issuer.precision, field, allow_zero=True)

    cols: dict[str, Any] = {
        "mode": data.mode,
        "percent": None,
        "fixed": None,
        "per_operation_cap": units(data.per_operation_cap, "per_operation_cap"),
        "monthly_cap": units(data.monthly_cap, "monthly_cap"),
        "funding": data.funding,
        "operation_types": sorted(set(data.operation_types)),
        "enabled": data.enabled,
    }
    if data.mode == "percent":
        if data.fixed is not None:
            raise invalid("invalid-cashback", "a percent profile has no fixed amount")
        cols["percent"] = _percent(data.percent)
    else:
        if data.percent is not None:
            raise invalid("invalid-cashback", "a fixed profile has no percent")
        if data.fixed is None:
            raise invalid("invalid-cashback", "a fixed profile needs its amount (fixed)")
        cols["fixed"] = parse_units(data.fixed, issuer.precision, "fixed")
    return issuer, cols, f"cashback merchant {merchant.id} in {issuer.code}"


# --- proposals ----------------------------------------------------------------------------------------


def _row(
    kind: str, scope: str, payload: BaseModel, effective: dt.datetime | None, note: str | None, who: Principal
) -> WalletContractProposal:
    now = utcnow()
    return WalletContractProposal(
        kind=kind,
        scope=scope[:300],
        payload=payload.model_dump(mode="json"),
        effective_from=effective or now,
        note=note,
        status="pending",
        proposed_by=who.name[:100],
        proposed_by_key=actor_key(who),
        proposed_at=now,
    )


async def propose_contract(session: AsyncSession, data: ContractIn, who: Principal) -> WalletContractProposal:
    _, _, scope = await checked_contract(session, data)
    row = _row("contract", scope, data, data.effective_from, data.note, who)
    session.add(row)
    await session.flush()
    return row


async def propose_cashback(session: AsyncSession, data: CashbackIn, who: Principal) -> WalletContractProposal:
    _, _, scope = await checked_cashback(session, data)
    row = _row("cashback", scope, data, data.effective_from, data.note, who)
    session.add(row)
    await session.flush()
    return row


async def locked_proposal(session: AsyncSession, proposal_id: int, kind: str) -> WalletContractProposal:
    """The proposal as committed now, locked until the transaction ends (404 if none of ``kind``)."""
    row = await locked(session, WalletContractProposal, proposal_id)
    if row is None or row.kind != kind:
        raise not_found(f"{kind} proposal {proposal_id}")
    return row


def _pending(row: WalletContractProposal, who: Principal) -> None:
    if row.status != "pending":
        raise AlreadyDecided(f"proposal #{row.id} is already {row.status}")
    if row.proposed_by_key == actor_key(who):
        raise OwnProposal("nobody may approve or reject their own proposal; another person must decide")


async def approve(
    session: AsyncSession, row: WalletContractProposal, who: Principal, note: str | None = None
) -> WalletContractProposal:
    """Approve: make the version (from the proposed time, or now if that has passed). Raises
    OwnProposal, AlreadyDecided, or a 422 problem if it can no longer be made."""
    _pending(row, who)
    now = utcnow()
    effective = max(row.effective_from, now)
    created_by = f"{row.proposed_by} (approved by {who.name})"[:100]
    if row.kind == "contract":
        data = ContractIn.model_validate(row.payload)
        issuer, terms, _ = await checked_contract(session, data)
        version = await contracts.add_version(
            session,
            issuer=issuer,
            customer_id=data.customer,
            group=data.group,
            terms=terms,
            effective_from=effective,
            created_by=created_by,
            note=data.note,
            proposal_id=row.id,
        )
        result_id = version.id
    else:
        cb = CashbackIn.model_validate(row.payload)
        issuer, cols, _ = await checked_cashback(session, cb)
        result_id = (
            await add_profile_version(
                session, cb.merchant, issuer, cols, effective, created_by, cb.note, row.id
            )
        ).id
    row.status = "approved"
    row.decided_by, row.decided_at, row.decision_note = who.name[:100], now, (note or None)
    row.result_id, row.effective_at = result_id, effective
    await session.flush()
    return row


async def add_profile_version(
    session: AsyncSession,
    merchant_id: int,
    issuer: Issuer,
    cols: dict[str, Any],
    effective: dt.datetime,
    created_by: str,
    note: str | None = None,
    proposal_id: int | None = None,
) -> WalletCashbackProfile:
    last = await session.scalar(
        select(func.max(WalletCashbackProfile.version)).where(
            WalletCashbackProfile.merchant_id == merchant_id
        )
    )
    clash = await session.scalar(
        select(WalletCashbackProfile.id).where(
            WalletCashbackProfile.merchant_id == merchant_id,
            WalletCashbackProfile.effective_from == effective,
        )
    )
    if clash is not None:
        raise invalid("invalid-cashback", "a version of this profile takes effect at that moment already")
    row = WalletCashbackProfile(
        merchant_id=merchant_id,
        version=int(last or 0) + 1,
        effective_from=effective,
        issuer_id=issuer.id,
        note=note,
        created_by=created_by[:100],
        proposal_id=proposal_id,
        **cols,
    )
    session.add(row)
    await session.flush()
    return row


async def reject(
    session: AsyncSession, row: WalletContractProposal, who: Principal, note: str | None = None
) -> WalletContractProposal:
    """Reject: nothing changes but the proposal."""
    _pending(row, who)
    row.status = "rejected"
    row.decided_by, row.decided_at, row.decision_note = who.name[:100], utcnow(), (note or None)
    await session.flush()
    return row


def proposal_state(row: WalletContractProposal) -> dict[str, Any]:
    """The proposal as the audit log and the API show it."""

    def iso(v: dt.datetime | None) -> str | None:
        return None if v is None else v.isoformat()

    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "scope": row.scope,
        "proposal": row.payload,
        "effective_from": iso(row.effective_from),
        "note": row.note,
        "proposed_by": row.proposed_by,
        "proposed_at": iso(row.proposed_at),
        "decided_by": row.decided_by,
        "decided_at": iso(row.decided_at),
        "decision_note": row.decision_note,
        "result_id": row.result_id,
        "effective_at": iso(row.effective_at),
    }


async def pending_count(session: AsyncSession, kind: str | None = None) -> int:
    q = (
        select(func.count())
        .select_from(WalletContractProposal)
        .where(WalletContractProposal.status == "pending")
    )
    if kind is not None:
        q = q.where(WalletContractProposal.kind == kind)
    return int(await session.scalar(q) or 0)
