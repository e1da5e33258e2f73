"""Anti-fraud of wallet operations: configurable rules that hold a matching operation for review,
the search of the operations that wait (applications), and blocks of single operations.

A rule applies to one operation type, of one issuer or of all (a rule with an amount names its
issuer, amounts being in its unit):

* ``velocity``: the customer's operations of the type (done or waiting) within the last
  ``window_minutes``, this one included, are more than ``max_count`` or sum to more than
  ``max_amount``;
* ``amount``: this one operation is over ``max_amount``;
* ``new_payee``: the customer never paid the recipient's customer before (a P2P transfer or a
  merchant payment to someone else's wallet with no earlier one ``done``).

An operation that matches an enabled rule waits as ``pending_review`` exactly like one held by a
``review`` limit (the same approve/reject path), with ``fraud_rule_id`` and ``hold_reason`` naming
the rule. This module never commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.errors import Problem, invalid, not_found
from paymux.wallets.models import (
    FRAUD_RULE_KINDS,
    OPERATION_TYPES,
    Issuer,
    Wallet,
    WalletCustomer,
    WalletFraudRule,
    WalletOperation,
)
from paymux.wallets.units import MAX_MINOR, conflict, format_units, parse_units

PAYMENT_TYPES = ("p2p", "merchant_payment")  # what can go to a payee
COUNTED_STATES = ("done", "pending_review")
MAX_WINDOW_MINUTES = 60 * 24 * 31


@dataclass(frozen=True, slots=True)
class RuleFields:
    """A rule as asked for (amounts already in minor units of ``issuer``)."""

    name: str
    kind: str
    type: str
    issuer: Issuer | None
    max_count: int | None
    max_amount: int | None
    window_minutes: int | None


def check_rule(f: RuleFields) -> None:
    """422 unless the fields make a rule of its kind."""
    if f.kind not in FRAUD_RULE_KINDS:
        raise invalid("invalid-rule", f"kind must be one of {list(FRAUD_RULE_KINDS)}")
    if f.type not in OPERATION_TYPES:
        raise invalid("invalid-rule", f"type must be one of {list(OPERATION_TYPES)}")
    if f.max_amount is not None and f.issuer is None:
        raise invalid("invalid-rule", "a rule with an amount names its issuer (amounts are in its unit)")
    if f.max_amount is not None and not 0 < f.max_amount <= MAX_MINOR:
        raise invalid("invalid-rule", "max_amount must be greater than zero")
    if f.max_count is not None and not 0 <= f.max_count <= 1_000_000:
        raise invalid("invalid-rule", "max_count must be from 0 to 1000000")
    if f.kind == "velocity":
        if f.window_minutes is None or not 1 <= f.window_minutes <= MAX_WINDOW_MINUTES:
            raise invalid(
                "invalid-rule", f"a velocity rule needs window_minutes from 1 to {MAX_WINDOW_MINUTES}"
            )
        if f.max_count is None and f.max_amount is None:
            raise invalid("invalid-rule", "a velocity rule needs max_count or max_amount")
    elif f.kind == "amount":
        if f.max_amount is None:
            raise invalid("invalid-rule", "an amount rule needs max_amount and its issuer")
        if f.max_count is not None or f.window_minutes is not None:
            raise invalid("invalid-rule", "an amount rule takes no max_count or window_minutes")
    else:
        if f.type not in PAYMENT_TYPES:
            raise invalid("invalid-rule", f"a new-payee rule applies to {list(PAYMENT_TYPES)}")
        if f.max_count is not None or f.max_amount is not None or f.window_minutes is not None:
            raise invalid("invalid-rule", "a new-payee rule takes no amount, count or window")


async def add_rule(session: AsyncSession, f: RuleFields, actor: str) -> WalletFraudRule:
    check_rule(f)
    if await session.scalar(select(WalletFraudRule.id).where(WalletFraudRule.name == f.name)) is not None:
        raise conflict("rule-exists", "Rule exists", f"an anti-fraud rule named {f.name} exists already")
    rule = WalletFraudRule(
        name=f.name,
        kind=f.kind,
        type=f.type,
        issuer_id=f.issuer.id if f.issuer else None,
        max_count=f.max_count,
        max_amount=f.max_amount,
        window_minutes=f.window_minutes,
        enabled=True,
        created_by=actor[:100],
    )
    session.add(rule)
    await session.flush()
    return rule


async def rule_or_404(session: AsyncSession, rule_id: int) -> WalletFraudRule:
    rule = await locked(session, WalletFraudRule, rule_id)
    if rule is None:
        raise not_found(f"anti-fraud rule {rule_id}")
    return rule


def parse_rule_amount(text: str | None, issuer: Issuer | None, field: str = "max_amount") -> int | None:
    if text is None or text == "":
        return None
    if issuer is None:
        raise invalid("invalid-rule", "a rule with an amount names its issuer (amounts are in its unit)")
    return parse_units(text, issuer.precision, field)


def rule_view(rule: WalletFraudRule, issuer: Issuer | None) -> dict[str, Any]:
    amount = rule.max_amount
    return {
        "id": rule.id,
        "name": rule.name,
        "kind": rule.kind,
        "type": rule.type,
        "issuer": issuer.code if issuer else None,
        "max_count": rule.max_count,
        "max_amount": None if amount is None or issuer is None else format_units(amount, issuer.precision),
        "window_minutes": rule.window_minutes,
        "enabled": rule.enabled,
        "created_by": rule.created_by,
        "created_at": rule.created_at.isoformat(),
    }


def describe(rule: WalletFraudRule, issuer: Issuer | None) -> str:
    """What the rule holds, in words (the ``hold_reason`` of the operations it holds)."""
    amount = (
        f"{format_units(rule.max_amount, issuer.precision)} {issuer.currency}"
        if rule.max_amount is not None and issuer is not None
        else None
    )
    if rule.kind == "amount":
        what = f"one operation over {amount}"
    elif rule.kind == "new_payee":
        what = "a payment to a new payee"
    else:
        parts = [f"more than {rule.max_count} operations"] if rule.max_count is not None else []
        parts += [f"more than {amount} in total"] if amount is not None else []
        what = " or ".join(parts) + f" within {rule.window_minutes} minutes"
    return f"anti-fraud rule {rule.name!r}: {what}"[:300]


async def matching_rule(
    session: AsyncSession,
    customer: WalletCustomer,
    op_type: str,
    issuer: Issuer,
    amount: int,
    to_wallet: Wallet | None,
    *,
    exclude: int | None,
) -> WalletFraudRule | None:
    """The first enabled rule (by id) that the operation matches, or None."""
    rules = (
        await session.scalars(
            select(WalletFraudRule)
            .where(
                WalletFraudRule.enabled.is_(True),
                WalletFraudRule.type == op_type,
                or_(WalletFraudRule.issuer_id.is_(None), WalletFraudRule.issuer_id == issuer.id),
            )
            .order_by(WalletFraudRule.id)
        )
    ).all()
    for rule in rules:
        if rule.kind == "amount" and rule.max_amount is not None and amount > rule.max_amount:
            return rule
        if rule.kind == "velocity" and await _too_fast(session, rule, customer, op_type, amount, exclude):
            return rule
        if rule.kind == "new_payee" and await _new_payee(session, customer, to_wallet, exclude):
            return rule
    return None


async def _too_fast(
    session: AsyncSession,
    rule: WalletFraudRule,
    customer: WalletCustomer,
    op_type: str,
    amount: int,
    exclude: int | None,
) -> bool:
    since = utcnow() - dt.timedelta(minutes=rule.window_minutes or 0)
    conds = [
        WalletOperation.customer_id == customer.id,
        WalletOperation.type == op_type,
        WalletOperation.state.in_(COUNTED_STATES),
        WalletOperation.created_at >= since,
    ]
    if rule.issuer_id is not None:
        conds.append(WalletOperation.issuer_id == rule.issuer_id)
    if exclude is not None:
        conds.append(WalletOperation.id != exclude)
    row = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(WalletOperation.amount), 0)).where(*conds)
        )
    ).one()
    count, total = int(row[0]), int(row[1])
    if rule.max_count is not None and count + 1 > rule.max_count:
        return True
    return rule.max_amount is not None and total + amount > rule.max_amount


async def _new_payee(
    session: AsyncSession, customer: WalletCustomer, to_wallet: Wallet | None, exclude: int | None
) -> bool:
    if to_wallet is None or to_wallet.customer_id == customer.id:
        return False
    payee_wallets = select(Wallet.id).where(Wallet.customer_id == to_wallet.customer_id)
    conds = [
        WalletOperation.customer_id == customer.id,
        WalletOperation.state == "done",
        WalletOperation.to_wallet_id.in_(payee_wallets),
    ]
    if exclude is not None:
        conds.append(WalletOperation.id != exclude)
    paid_before = await session.scalar(select(exists().where(*conds)))
    return not paid_before


# --- applications (the operations that wait) and blocks of single operations --------------------------


async def amount_condition(session: AsyncSession, text: str) -> Any:
    """Operations of exactly this amount (major units) in whichever issuer's unit it is exact."""
    conds = []
    for issuer_id, precision in (await session.execute(select(Issuer.id, Issuer.precision))).all():
        try:
            minor = parse_units(text.strip(), int(precision))
        except Problem:  # not an amount in this unit: no match in it
            continue
        conds.append((WalletOperation.issuer_id == issuer_id) & (WalletOperation.amount == minor))
    return or_(*conds) if conds else false()


async def search(
    query: Any,
    session: AsyncSession,
    *,
    operation_id: int | None = None,
    email: str = "",
    amount: str = "",
) -> Any:
    """``query`` (of operations) narrowed to an operation id, a customer's e-mail, an exact amount."""
    if operation_id is not None:
        query = query.where(WalletOperation.id == operation_id)
    if email.strip():
        owners = select(WalletCustomer.id).where(func.lower(WalletCustomer.email) == email.strip().lower())
        query = query.where(WalletOperation.customer_id.in_(owners))
    if amount.strip():
        query = query.where(await amount_condition(session, amount))
    return query


async def set_operation_blocked(session: AsyncSession, operation_id: int, blocked: bool) -> WalletOperation:
    """Block or unblock one operation waiting for review: a blocked one cannot be approved (it may
    still be rejected). Only an operation that waits can be blocked."""
    op = await locked(session, WalletOperation, operation_id)
    if op is None:
        raise not_found(f"operation {operation_id}")
    if blocked and op.state != "pending_review":
        raise conflict(
            "not-pending",
            "Not waiting for review",
            f"operation {op.id} is {op.state}: only an operation that waits can be blocked",
        )
    op.blocked, op.updated_at = blocked, utcnow()
    await session.flush()
    return op
