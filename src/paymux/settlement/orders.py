"""Payment orders to postpaid providers: created from debts, approved by a second person, paid.

* Creating covers, per provider and currency, the local days after the last live order (or from the
  first payment) through a given day (by default the provider's yesterday). One click may do it for
  one provider or for all; a day is never in two live orders (a unique index on the first day).
* Approval needs someone other than the creator (maker-checker).
* Paying (a bank statement line matched, or by hand) posts one journal entry:
  provider payable +gross, provider remuneration -withheld, bank -amount; once (a compare-and-set
  on the order's status).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.principal import Principal
from paymux.catalog.snapshot import ProviderView, Snapshot
from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.errors import Problem, invalid, not_found
from paymux.ledger.service import SYSTEM, AccountCache, AccountKey, Line, post_entry
from paymux.settlement.debts import (
    currencies,
    debts_by_day,
    first_payment_day,
    local_today,
    settled_through,
    totals,
)
from paymux.settlement.models import PaymentOrder, SettlementDetails

ENTRY_KIND = "provider_payment"
DEFAULT_PURPOSE = "Payments accepted for"


def actor_id(principal: Principal) -> str:
    """Who acts, stable across sessions and tokens of one user (maker-checker compares these)."""
    return f"user:{principal.name}" if principal.kind == "user" else f"admin:{principal.name}"


def payee_of(provider: ProviderView, details: SettlementDetails | None) -> dict[str, Any]:
    d: dict[str, Any] = {"provider": provider.code, "name": provider.name}
    if details is not None:
        for k in ("beneficiary", "iban", "bic", "bank_name", "account", "bik", "corr_account", "inn", "kpp"):
            d[k] = getattr(details, k) or ""
        if details.beneficiary:
            d["name"] = details.beneficiary
    return d


async def create_orders(
    session: AsyncSession,
    snap: Snapshot,
    *,
    actor: str,
    provider_code: str | None = None,
    through: dt.date | None = None,
    now: dt.datetime | None = None,
) -> list[PaymentOrder]:
    """Orders for the uncovered debts of one provider (by code) or of every postpaid provider."""
    now = now or utcnow()
    if provider_code is not None:
        p = snap.providers_by_code.get(provider_code)
        if p is None:
            raise not_found(f"provider {provider_code!r}")
        if p.settlement != "postpaid":
            raise invalid("not-postpaid", f"provider {provider_code} is prepaid: it is paid by top-ups")
        providers = [p]
    else:
        providers = sorted(
            (p for p in snap.providers.values() if p.settlement == "postpaid"), key=lambda p: p.code
        )
    created: list[PaymentOrder] = []
    for p in providers:
        last = through or local_today(p.tz, now) - dt.timedelta(days=1)
        if last >= local_today(p.tz, now):
            raise invalid("period-not-over", f"{p.code}: day {last} is not over yet in {p.tz.key}")
        details = await session.get(SettlementDetails, p.id)
        withhold = True if details is None else details.withhold_remuneration
        for currency in await currencies(session, p.id):
            covered = await settled_through(session, p.id, currency)
            start = (
                covered + dt.timedelta(days=1)
                if covered
                else await first_payment_day(session, p.id, currency, p.tz)
            )
            if start is None or start > last:
                continue
            days = (await debts_by_day(session, p.id, p.tz, start, last, withhold=withhold)).get(currency, [])
            t = totals(days)
            if t.payments == 0 or t.debt <= 0:
                continue
            order = PaymentOrder(
                number=f"tmp-{secrets.token_hex(12)}",  # replaced by PO-<id> below
                provider_id=p.id,
                currency=currency,
                period_start=start,
                period_end=last,
                payments=t.payments,
                gross=t.gross,
                remuneration=t.withheld,
                amount=t.debt,
                purpose="",
                payee=payee_of(p, details),
                status="created",
                created_by=actor,
                created_at=now,
                updated_at=now,
            )
            try:
                async with session.begin_nested():
                    session.add(order)
                    await session.flush()
                    order.number = f"PO-{order.id:06d}"
                    prefix = (details.purpose if details and details.purpose else DEFAULT_PURPOSE).strip()
                    span = start.isoformat() if start == last else f"{start.isoformat()}..{last.isoformat()}"
                    order.purpose = f"{prefix} {span}, order {order.number}"[:210]
                    await session.flush()
            except IntegrityError:  # created at the same moment by someone else
                continue
            created.append(order)
    return created


async def get_order(session: AsyncSession, order_id: int) -> PaymentOrder:
    order = await session.get(PaymentOrder, order_id)
    if order is None:
        raise not_found(f"payment order {order_id}")
    return order


async def locked_order(session: AsyncSession, order_id: int) -> PaymentOrder:
    """The order as committed now, locked for a change of its status (:mod:`paymux.db.concurrent`):
    two decisions at once are taken one after the other, the second from the first one's result."""
    order = await locked(session, PaymentOrder, order_id)
    if order is None:
        raise not_found(f"payment order {order_id}")
    return order


def state(order: PaymentOrder) -> dict[str, Any]:
    """The order as recorded in the audit log."""
    return {
        "number": order.number,
        "status": order.status,
        "amount": order.amount,
        "currency": order.currency,
        "period": [order.period_start.isoformat(), order.period_end.isoformat()],
    }


async def approve(
    session: AsyncSession, order_id: int, actor: str, now: dt.datetime | None = None
) -> PaymentOrder:
    order = await locked_order(session, order_id)
    if order.status != "created":
        raise Problem(409, "wrong-status", "Cannot approve", f"order {order.number} is {order.status}")
    if order.created_by == actor:
        raise Problem(
            409,
            "same-person",
            "A second person must approve",
            f"order {order.number} was created by {actor}; someone else must approve it",
        )
    now = now or utcnow()
    order.status, order.approved_by, order.approved_at, order.updated_at = "approved", actor, now, now
    await session.flush()
    return order


async def cancel(session: AsyncSession, order_id: int, actor: str) -> PaymentOrder:
    order = await locked_order(session, order_id)
    if order.status not in ("created", "approved"):
        raise Problem(409, "wrong-status", "Cannot cancel", f"order {order.number} is {order.status}")
    order.status, order.cancelled_by, order.updated_at = "cancelled", actor, utcnow()
    await session.flush()
    return order


def payment_lines(order: PaymentOrder) -> list[Line]:
    c = order.currency
    return [
        Line(AccountKey("provider_payable", order.provider_id, c), order.gross),
        Line(AccountKey("provider_remuneration", order.provider_id, c), -order.remuneration),
        Line(AccountKey("bank", SYSTEM, c), -order.amount),
    ]


async def mark_paid(
    session: AsyncSession,
    accounts: AccountCache,
    order_id: int,
    actor: str,
    *,
    statement_line_id: int | None = None,
    at: dt.datetime | None = None,
) -> PaymentOrder:
    """Mark an approved order paid and post the payment (payable -> bank). The caller commits."""
    order = await locked_order(session, order_id)
    if order.status != "approved":
        raise Problem(
            409, "wrong-status", "Cannot mark paid", f"order {order.number} is {order.status}, not approved"
        )
    now = at or utcnow()
    entry_id = await post_entry(
        session, accounts, ENTRY_KIND, payment_lines(order), memo=f"payment order {order.number}", at=now
    )
    order.status, order.paid_at, order.paid_by = "paid", now, actor
    order.statement_line_id, order.entry_id, order.updated_at = statement_line_id, entry_id, now
    await session.flush()
    return order


async def orders_for_export(session: AsyncSession, ids: list[int]) -> list[PaymentOrder]:
    """Approved (or already paid) orders to put in a file; any other id is a 422."""
    if not ids:
        raise invalid("no-orders", "choose at least one payment order")
    rows = list(
        (
            await session.scalars(
                select(PaymentOrder).where(PaymentOrder.id.in_(ids)).order_by(PaymentOrder.id)
            )
        ).all()
    )
    found = {o.id for o in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise not_found(f"payment orders {missing}")
    bad = [o.number for o in rows if o.status not in ("approved", "paid")]
    if bad:
        raise invalid("not-approved", f"only approved orders can be exported; not approved: {', '.join(bad)}")
    return rows


async def mark_exported(session: AsyncSession, orders: list[PaymentOrder]) -> None:
    now = utcnow()
    await session.execute(
        update(PaymentOrder).where(PaymentOrder.id.in_([o.id for o in orders])).values(exported_at=now)
    )
