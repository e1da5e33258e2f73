"""Admin API of wallet anti-fraud (``/api/v1/admin/wallets/...``): the rules that hold operations for
review, the applications (operations that wait) searched by id, e-mail or exact amount, and blocks
of single operations.

``wallets.read`` reads; ``wallets.block`` (the Anti-fraud specialist) manages rules and blocks
operations. Approving and rejecting are in ``paymux.wallets.admin``. Every change is audited.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.api.deps import ReadSessionDep, SessionDep
from paymux.api.params import Id, Ident
from paymux.audit import service as audit
from paymux.auth import permissions as P
from paymux.auth.admin_api import require_api
from paymux.auth.principal import Principal
from paymux.db.base import utcnow
from paymux.wallets import fraud, service
from paymux.wallets.admin import CODE, PROBLEMS, Reason
from paymux.wallets.models import Issuer, WalletCustomer, WalletFraudRule, WalletOperation

router = APIRouter(prefix="/api/v1/admin/wallets", tags=["wallets admin"])

Reader = Annotated[Principal, Depends(require_api(P.WALLETS_READ))]
Blocker = Annotated[Principal, Depends(require_api(P.WALLETS_BLOCK))]
Amount = Annotated[StrictStr, Field(max_length=24)]
Window = Annotated[StrictInt, Field(ge=1, le=fraud.MAX_WINDOW_MINUTES)]
Count = Annotated[StrictInt, Field(ge=0, le=1_000_000)]


class RuleIn(BaseModel):
    name: Annotated[StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
    kind: Literal["velocity", "amount", "new_payee"]
    type: Literal["topup", "withdrawal", "p2p", "merchant_payment", "exchange"]
    issuer: Annotated[StrictStr, Field(pattern=CODE)] | None = None
    max_count: Count | None = None
    max_amount: Amount | None = Field(default=None, description="major units of the issuer")
    window_minutes: Window | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "p2p-burst",
                    "kind": "velocity",
                    "type": "p2p",
                    "max_count": 5,
                    "window_minutes": 10,
                },
                {
                    "name": "big-p2p",
                    "kind": "amount",
                    "type": "p2p",
                    "issuer": "rub",
                    "max_amount": "50000.00",
                },
                {"name": "p2p-new-payee", "kind": "new_payee", "type": "p2p"},
            ]
        },
    )


class RulePatch(BaseModel):
    enabled: bool | None = None
    max_count: Count | None = None
    max_amount: Amount | None = None
    window_minutes: Window | None = None
    reason: Annotated[Ident, Field(max_length=500)] = ""

    model_config = ConfigDict(extra="forbid")


async def _issuer_of(session: AsyncSession, rule: WalletFraudRule) -> Issuer | None:
    return None if rule.issuer_id is None else await session.get(Issuer, rule.issuer_id)


@router.get("/fraud-rules", summary="Anti-fraud rules", responses=PROBLEMS)
async def list_rules(me: Reader, session: ReadSessionDep) -> dict[str, Any]:
    rows = (
        await session.execute(select(WalletFraudRule, Issuer).outerjoin(Issuer).order_by(WalletFraudRule.id))
    ).all()
    return {"items": [fraud.rule_view(r, i) for r, i in rows]}


@router.post("/fraud-rules", status_code=201, summary="Add an anti-fraud rule", responses=PROBLEMS)
async def add_rule(body: RuleIn, me: Blocker, session: SessionDep) -> dict[str, Any]:
    """A rule on one operation type: ``velocity`` (``max_count`` and/or ``max_amount`` within
    ``window_minutes``), ``amount`` (one operation over ``max_amount``), ``new_payee`` (a payment to a
    customer never paid before). A matching operation waits for review, the rule named."""
    issuer = await service.issuer_by_code(session, body.issuer) if body.issuer else None
    fields = fraud.RuleFields(
        name=body.name,
        kind=body.kind,
        type=body.type,
        issuer=issuer,
        max_count=body.max_count,
        max_amount=fraud.parse_rule_amount(body.max_amount, issuer),
        window_minutes=body.window_minutes,
    )
    rule = await fraud.add_rule(session, fields, str(me.audit_name))
    view = fraud.rule_view(rule, issuer)
    await audit.record(session, me, "wallet_fraud_rule.create", f"wallet_fraud_rule:{rule.id}", None, view)
    await session.commit()
    return view


@router.patch("/fraud-rules/{rule_id}", summary="Change an anti-fraud rule", responses=PROBLEMS)
async def patch_rule(rule_id: Id, body: RulePatch, me: Blocker, session: SessionDep) -> dict[str, Any]:
    """Enable or disable it, or change its thresholds (its kind, type and issuer never change)."""
    rule = await fraud.rule_or_404(session, rule_id)
    issuer = await _issuer_of(session, rule)
    before = fraud.rule_view(rule, issuer)
    if body.enabled is not None:
        rule.enabled = body.enabled
    if body.max_count is not None:
        rule.max_count = body.max_count
    if body.max_amount is not None:
        rule.max_amount = fraud.parse_rule_amount(body.max_amount, issuer)
    if body.window_minutes is not None:
        rule.window_minutes = body.window_minutes
    fraud.check_rule(
        fraud.RuleFields(
            rule.name, rule.kind, rule.type, issuer, rule.max_count, rule.max_amount, rule.window_minutes
        )
    )
    rule.updated_at = utcnow()
    await session.flush()
    after = fraud.rule_view(rule, issuer)
    await audit.record(
        session,
        me,
        "wallet_fraud_rule.update",
        f"wallet_fraud_rule:{rule.id}",
        before,
        {**after, "reason": body.reason},
    )
    await session.commit()
    return after


@router.delete("/fraud-rules/{rule_id}", summary="Remove an anti-fraud rule", responses=PROBLEMS)
async def delete_rule(rule_id: Id, me: Blocker, session: SessionDep) -> dict[str, Any]:
    """Operations it held keep waiting (and keep its name in ``hold_reason``)."""
    rule = await fraud.rule_or_404(session, rule_id)
    view = fraud.rule_view(rule, await _issuer_of(session, rule))
    await session.delete(rule)
    await audit.record(session, me, "wallet_fraud_rule.delete", f"wallet_fraud_rule:{rule_id}", view, None)
    await session.commit()
    return view


@router.get("/applications", summary="Operations waiting for review", responses=PROBLEMS)
async def applications(
    me: Reader,
    session: ReadSessionDep,
    operation_id: Id | None = None,
    email: Annotated[str, Query(max_length=254, description="the initiating customer's e-mail")] = "",
    amount: Annotated[str, Query(max_length=24, description="the exact amount, major units")] = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Held operations (by a limit or an anti-fraud rule), oldest first, with why each waits."""
    query = (
        select(WalletOperation, WalletCustomer.email)
        .join(WalletCustomer, WalletCustomer.id == WalletOperation.customer_id)
        .where(WalletOperation.state == "pending_review")
        .order_by(WalletOperation.id)
        .limit(limit)
    )
    found = await fraud.search(query, session, operation_id=operation_id, email=email, amount=amount)
    out = []
    for op, mail in (await session.execute(found)).all():
        view = service.operation_view(op, await service.precisions_of(session, op))
        out.append({**view, "customer_id": op.customer_id, "customer_email": mail})
    return {"items": out}


async def _block(
    session: AsyncSession, me: Principal, operation_id: int, blocked: bool, reason: str
) -> dict[str, Any]:
    op = await fraud.set_operation_blocked(session, operation_id, blocked)
    view = service.operation_view(op, await service.precisions_of(session, op))
    await audit.record(
        session,
        me,
        "wallet_operation.block" if blocked else "wallet_operation.unblock",
        f"wallet_operation:{op.id}",
        {"blocked": not blocked},
        {"blocked": blocked, "reason": reason},
    )
    await session.commit()
    return view


@router.post("/operations/{operation_id}/block", summary="Block a held operation", responses=PROBLEMS)
async def block_operation(operation_id: Id, body: Reason, me: Blocker, session: SessionDep) -> dict[str, Any]:
    """A blocked operation waits and cannot be approved until it is unblocked (it can be rejected)."""
    return await _block(session, me, operation_id, True, body.reason)


@router.post("/operations/{operation_id}/unblock", summary="Unblock an operation", responses=PROBLEMS)
async def unblock_operation(
    operation_id: Id, body: Reason, me: Blocker, session: SessionDep
) -> dict[str, Any]:
    return await _block(session, me, operation_id, False, body.reason)
