"""Contracts: the fees and limits of one customer, or of a group of customers, per operation type.

For an operation of type ``T`` in issuer ``I``'s unit initiated by customer ``C`` the terms are taken
from the first of these that has terms for ``T`` at that moment:

1. the version in force of ``C``'s own contract in ``I``;
2. the version in force of the contract of ``C``'s group in ``I``;
3. the issuer's defaults (``Issuer.fee_rules`` and the ``wallet_limits`` rows).

A contract's terms for ``T`` replace both the fee and the limits of the levels below (a contract
with ``"fee": null`` and no limits for ``T`` makes ``T`` free and unlimited for its customers).
Versions are never changed; a new one is made on the approval of a proposal
(``paymux.wallets.contract_proposals``). Functions flush, never commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.db.base import utcnow
from paymux.errors import Problem, invalid
from paymux.tariffs.calc import TariffError, compute, rule_from_json, rule_to_json
from paymux.wallets.contract_models import CONTRACT_TYPES, WalletContract, WalletCustomerGroup
from paymux.wallets.models import (
    IDENTIFICATION_LEVELS,
    LIMIT_ACTIONS,
    Issuer,
    WalletCustomer,
    WalletOperation,
)
from paymux.wallets.units import MAX_MINOR, format_units, parse_units

AMOUNT_BOUNDS = ("min_amount", "max_amount", "daily_amount", "monthly_amount")
COUNT_BOUNDS = ("daily_count", "monthly_count")


@dataclass(frozen=True, slots=True)
class ContractLimit:
    """One limit of a contract (amounts in minor units of the issuer; None: no bound)."""

    name: str
    identification: str | None
    action: str
    min_amount: int | None = None
    max_amount: int | None = None
    daily_count: int | None = None
    daily_amount: int | None = None
    monthly_count: int | None = None
    monthly_amount: int | None = None
    contract_id: int | None = None
    id: int | None = None  # not a ``wallet_limits`` row: operations held by it keep no limit id

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "identification": self.identification,
            "action": self.action,
        }
        for b in (*AMOUNT_BOUNDS, *COUNT_BOUNDS):
            out[b] = getattr(self, b)
        return out


@dataclass(frozen=True, slots=True)
class Terms:
    """The fee rule and limits that apply to one operation type; ``source`` says where they come
    from (``customer``, ``group`` or ``issuer``); ``limits`` None means the issuer's ``wallet_limits``."""

    source: str
    contract: WalletContract | None
    fee_rule: dict[str, Any] | None
    limits: tuple[ContractLimit, ...] | None

    def fee(self, amount: int) -> int:
        return 0 if not self.fee_rule else compute(rule_from_json(self.fee_rule), amount)


# --- parsing ------------------------------------------------------------------------------------------


def parse_fee_rule(rule: object, where: str) -> dict[str, Any] | None:
    """A tariff rule in storage form (money in minor units of the issuer), or None for no fee."""
    if rule is None:
        return None
    try:
        parsed = rule_from_json(rule)  # type: ignore[arg-type]
    except (TariffError, TypeError, ValueError, AttributeError) as e:
        raise invalid("invalid-contract", f"{where}.fee: {e}") from None
    money = [parsed.fixed, parsed.min, parsed.max]
    for t in parsed.tiers:
        money += [t.from_amount, t.fixed, t.min, t.max]
    if any(m is not None and abs(m) > MAX_MINOR for m in money):
        raise invalid("invalid-contract", f"{where}.fee: an amount is too large")
    return rule_to_json(parsed)


def parse_limit(data: dict[str, Any], issuer: Issuer, where: str) -> ContractLimit:
    """A limit from its API form (amounts as decimal strings in major units of the issuer)."""
    identification = data.get("identification")
    if identification is not None and identification not in IDENTIFICATION_LEVELS:
        raise invalid(
            "invalid-contract", f"{where}.identification must be one of {list(IDENTIFICATION_LEVELS)}"
        )
    action = data.get("action") or "refuse"
    if action not in LIMIT_ACTIONS:
        raise invalid("invalid-contract", f"{where}.action must be one of {list(LIMIT_ACTIONS)}")
    values: dict[str, int | None] = {}
    for b in AMOUNT_BOUNDS:
        text = data.get(b)
        values[b] = (
            None if text is None else parse_units(text, issuer.precision, f"{where}.{b}", allow_zero=True)
        )
    for b in COUNT_BOUNDS:
        values[b] = data.get(b)
    lo, hi = values["min_amount"], values["max_amount"]
    if lo is not None and hi is not None and lo > hi:
        raise invalid("invalid-contract", f"{where}: min_amount is above max_amount")
    return ContractLimit(name=str(data["name"]), identification=identification, action=action, **values)


def parse_terms(data: dict[str, Any], issuer: Issuer) -> dict[str, Any]:
    """Contract terms from the API form to the storage form (see ``WalletContract.terms``)."""
    out: dict[str, Any] = {}
    for op_type, term in data.items():
        if op_type not in CONTRACT_TYPES:
            raise invalid("invalid-contract", f"terms: unknown operation type {str(op_type)[:40]!r}")
        where = f"terms.{op_type}"
        limits = [
            parse_limit(lim, issuer, f"{where}.limits[{n}]") for n, lim in enumerate(term.get("limits") or [])
        ]
        names = [lim.name for lim in limits]
        if len(set(names)) != len(names):
            raise invalid("invalid-contract", f"{where}.limits: names must differ")
        out[op_type] = {
            "fee": parse_fee_rule(term.get("fee"), where),
            "limits": [lim.to_json() for lim in limits],
        }
    return out


def terms_view(terms: dict[str, Any], issuer: Issuer) -> dict[str, Any]:
    """Stored terms as the API shows them (limit amounts in major units)."""

    def limit(lim: dict[str, Any]) -> dict[str, Any]:
        out = dict(lim)
        for b in AMOUNT_BOUNDS:
            if out.get(b) is not None:
                out[b] = format_units(int(out[b]), issuer.precision)
        return out

    return {
        t: {"fee": v.get("fee"), "limits": [limit(x) for x in v.get("limits", [])]} for t, v in terms.items()
    }


# --- scopes and versions ------------------------------------------------------------------------------


def scope_key(issuer_id: int, customer_id: int | None, group: str | None) -> str:
    return f"{issuer_id}:customer:{customer_id}" if customer_id is not None else f"{issuer_id}:group:{group}"


async def group_of(session: AsyncSession, customer_id: int) -> str | None:
    return await session.scalar(
        select(WalletCustomerGroup.group_code).where(WalletCustomerGroup.customer_id == customer_id)
    )


async def set_group(session: AsyncSession, customer_id: int, group: str | None, actor: str) -> str | None:
    """Put the customer in ``group`` (None: in none); returns the group it was in."""
    row = await session.get(WalletCustomerGroup, customer_id)
    before = None if row is None else row.group_code
    if group is None:
        if row is not None:
            await session.delete(row)
    elif row is None:
        session.add(WalletCustomerGroup(customer_id=customer_id, group_code=group, updated_by=actor[:100]))
    else:
        row.group_code, row.updated_by, row.updated_at = group, actor[:100], utcnow()
    await session.flush()
    return before


async def in_force(session: AsyncSession, key: str, at: dt.datetime) -> WalletContract | None:
    """The version of the scope ``key`` in force at ``at``."""
    return await session.scalar(
        select(WalletContract)
        .where(WalletContract.scope_key == key, WalletContract.effective_from <= at)
        .order_by(WalletContract.effective_from.desc(), WalletContract.version.desc())
        .limit(1)
    )


async def add_version(
    session: AsyncSession,
    *,
    issuer: Issuer,
    customer_id: int | None,
    group: str | None,
    terms: dict[str, Any],
    effective_from: dt.datetime,
    created_by: str,
    note: str | None = None,
    proposal_id: int | None = None,
) -> WalletContract:
    """A new version of the scope's contract (terms in storage form)."""
    key = scope_key(issuer.id, customer_id, group)
    last = await session.scalar(
        select(func.max(WalletContract.version)).where(WalletContract.scope_key == key)
    )
    clash = await session.scalar(
        select(WalletContract.id).where(
            WalletContract.scope_key == key, WalletContract.effective_from == effective_from
        )
    )
    if clash is not None:
        raise invalid("invalid-contract", "a version of this contract takes effect at that moment already")
    row = WalletContract(
        issuer_id=issuer.id,
        customer_id=customer_id,
        group_code=group,
        scope_key=key,
        version=int(last or 0) + 1,
        effective_from=effective_from,
        terms=terms,
        note=note,
        created_by=created_by[:100],
        proposal_id=proposal_id,
    )
    session.add(row)
    await session.flush()
    return row


# --- the terms of an operation ------------------------------------------------------------------------


def _limits(raw: list[dict[str, Any]], contract_id: int) -> tuple[ContractLimit, ...]:
    out = []
    for lim in raw:
        values = {b: lim.get(b) for b in (*AMOUNT_BOUNDS, *COUNT_BOUNDS)}
        out.append(
            ContractLimit(
                name=lim["name"],
                identification=lim.get("identification"),
                action=lim.get("action", "refuse"),
                contract_id=contract_id,
                **values,
            )
        )
    return tuple(out)


async def terms_for(
    session: AsyncSession, customer_id: int, issuer: Issuer, op_type: str, at: dt.datetime | None = None
) -> Terms:
    """The terms of ``op_type`` for the customer in the issuer's unit at ``at`` (now by default)."""
    at = at or utcnow()
    keys = [("customer", scope_key(issuer.id, customer_id, None))]
    group = await group_of(session, customer_id)
    if group is not None:
        keys.append(("group", scope_key(issuer.id, None, group)))
    for source, key in keys:
        contract = await in_force(session, key, at)
        if contract is not None and op_type in (contract.terms or {}):
            term = contract.terms[op_type]
            return Terms(source, contract, term.get("fee"), _limits(term.get("limits") or [], contract.id))
    return Terms("issuer", None, (issuer.fee_rules or {}).get(op_type) or None, None)


def month_start(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _problem(limit: ContractLimit, issuer: Issuer, bound: str, value: int, detail: str) -> Problem:
    fmt = str(value) if bound.endswith("_count") else format_units(value, issuer.precision)
    return Problem(
        422,
        "limit-exceeded",
        "Limit exceeded",
        f"limit {limit.name!r} ({bound} {fmt}): {detail}",
        limit={
            "id": None,
            "contract_id": limit.contract_id,
            "name": limit.name,
            "bound": bound,
            "value": fmt,
            "action": limit.action,
        },
    )


def over_contract_limit(
    limit: ContractLimit, issuer: Issuer, amount: int, day: tuple[int, int], month: tuple[int, int]
) -> Problem | None:
    """The problem naming which bound of a contract limit the operation breaks, or None. ``day`` and
    ``month`` are the customer's (count, total) of the type so far."""
    checks: list[tuple[str, int | None, bool, str]] = [
        ("min_amount", limit.min_amount, amount < (limit.min_amount or 0), "the amount is below the minimum"),
        ("max_amount", limit.max_amount, amount > (limit.max_amount or 0), "the amount is above the maximum"),
        (
            "daily_count",
            limit.daily_count,
            day[0] + 1 > (limit.daily_count or 0),
            "too many operations of this type today",
        ),
        (
            "daily_amount",
            limit.daily_amount,
            day[1] + amount > (limit.daily_amount or 0),
            "the day's total would exceed the limit",
        ),
        (
            "monthly_count",
            limit.monthly_count,
            month[0] + 1 > (limit.monthly_count or 0),
            "too many operations of this type this month",
        ),
        (
            "monthly_amount",
            limit.monthly_amount,
            month[1] + amount > (limit.monthly_amount or 0),
            "the month's total would exceed the limit",
        ),
    ]
    for bound, value, broken, detail in checks:
        if value is not None and broken:
            return _problem(limit, issuer, bound, value, detail)
    return None


async def _counted(
    session: AsyncSession,
    customer: WalletCustomer,
    op_type: str,
    issuer: Issuer,
    now: dt.datetime,
    exclude: int | None,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(count, total) of what the customer initiated of the type today and this month (UTC), done or
    waiting for review, in one query."""
    day = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    conds = [
        WalletOperation.customer_id == customer.id,
        WalletOperation.type == op_type,
        WalletOperation.issuer_id == issuer.id,
        WalletOperation.created_at >= min(day, month_start(now)),
        WalletOperation.state.in_(("done", "pending_review")),
    ]
    if exclude is not None:
        conds.append(WalletOperation.id != exclude)
    today = WalletOperation.created_at >= day
    row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(WalletOperation.amount), 0),
                func.coalesce(func.sum(case((today, 1), else_=0)), 0),
                func.coalesce(func.sum(case((today, WalletOperation.amount), else_=0)), 0),
            ).where(*conds)
        )
    ).one()
    return (int(row[2]), int(row[3])), (int(row[0]), int(row[1]))


async def check_contract_limits(
    session: AsyncSession,
    customer: WalletCustomer,
    op_type: str,
    issuer: Issuer,
    amount: int,
    limits: tuple[ContractLimit, ...],
    *,
    exclude: int | None,
) -> ContractLimit | None:
    """Raise the problem of a ``refuse`` limit broken; return a broken ``review`` limit; else None.
    Only the limits of the customer's identification level (or of every level) count."""
    mine = [lim for lim in limits if lim.identification in (None, customer.identification)]
    if not mine:
        return None
    now = utcnow()
    day, month = await _counted(session, customer, op_type, issuer, now, exclude)
    review: ContractLimit | None = None
    for limit in mine:
        problem = over_contract_limit(limit, issuer, amount, day, month)
        if problem is None:
            continue
        if limit.action == "refuse":
            raise problem
        review = review or limit
    return review


def contract_view(row: WalletContract, issuer: Issuer) -> dict[str, Any]:
    return {
        "id": row.id,
        "issuer": issuer.code,
        "customer": row.customer_id,
        "group": row.group_code,
        "version": row.version,
        "effective_from": row.effective_from.isoformat(),
        "terms": terms_view(row.terms or {}, issuer),
        "note": row.note,
        "created_by": row.created_by,
        "proposal_id": row.proposal_id,
        "created_at": row.created_at.isoformat(),
    }
