"""Accepting, reading and cancelling payments (the channel API's business logic).

Acceptance is one short transaction: the payment row (its unique ``(channel, external_id)``
is the idempotency guard) and its acceptance journal entry. Delivery to the provider happens
later, in a worker (``paymux.payments.processing``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.fields import catalog_pattern
from paymux.catalog.snapshot import ChannelView, ServiceView, Snapshot
from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.errors import Problem, invalid, not_found
from paymux.ledger.service import post_entry
from paymux.money import MoneyError, format_amount, parse_amount
from paymux.payments.acceptor import Pending
from paymux.payments.models import FINAL_STATUSES, Payment, PaymentValues
from paymux.payments.postings import accept_lines, provider_account, reverse
from paymux.payments.schemas import CheckIn, PaymentIn
from paymux.routing.engine import plan_route
from paymux.runtime import Hub
from paymux.tariffs.calc import compute


@dataclass(slots=True)
class Pricing:
    fee: int
    fee_tariff_id: int | None
    commission: int
    commission_tariff_id: int | None


@dataclass(slots=True)
class Validated:
    service: ServiceView
    amount: int
    fields: dict[str, str]


def validate(snap: Snapshot, body: PaymentIn | CheckIn) -> Validated:
    """Check the request against the service; raises a 422 Problem naming what is wrong."""
    service = snap.services.get(body.service)
    if service is None:
        raise invalid("unknown-service", f"service {body.service!r} does not exist")
    if not service.enabled:
        raise invalid("service-disabled", f"service {body.service!r} is disabled")
    if body.currency != service.currency:
        raise invalid(
            "wrong-currency", f"service {service.code} is paid in {service.currency}, not {body.currency}"
        )
    try:
        amount = parse_amount(body.amount, service.currency)
    except MoneyError as e:
        raise invalid("invalid-amount", str(e)) from None
    cur = service.currency
    if service.min_amount is not None and amount < service.min_amount:
        raise invalid(
            "amount-out-of-limits",
            f"amount {body.amount} is below the minimum {format_amount(service.min_amount, cur)} {cur}",
        )
    if service.max_amount is not None and amount > service.max_amount:
        raise invalid(
            "amount-out-of-limits",
            f"amount {body.amount} is above the maximum {format_amount(service.max_amount, cur)} {cur}",
        )
    if not service.pattern.fullmatch(body.account):
        raise invalid(
            "invalid-account",
            f"account {body.account!r} does not match the format of service {service.code}"
            f" ({service.pattern.pattern})",
        )
    fields: dict[str, str] = {}
    known = {f["name"] for f in service.fields}
    unknown = sorted(set(body.fields) - known)
    if unknown:
        raise invalid("invalid-field", f"unknown field(s) for service {service.code}: {', '.join(unknown)}")
    for f in service.fields:
        value = body.fields.get(f["name"])
        if value is None:
            if f.get("required"):
                raise invalid("invalid-field", f"field {f['name']!r} is required by service {service.code}")
            continue
        pattern = f.get("pattern")
        if pattern and not _fullmatch(pattern, value):
            raise invalid("invalid-field", f"field {f['name']!r} does not match {pattern}")
        fields[f["name"]] = value
    return Validated(service, amount, fields)


def _fullmatch(pattern: str, value: str) -> bool:
    return catalog_pattern(pattern).fullmatch(value) is not None


def price(
    snap: Snapshot, service: ServiceView, channel: ChannelView, amount: int, at: dt.datetime
) -> Pricing:
    """The payer's fee and the dealer's commission under the tariffs in force at ``at``."""
    fee_t = snap.tariff("fee", currency=service.currency, at=at, service_id=service.id, channel=channel)
    com_t = snap.tariff(
        "commission", currency=service.currency, at=at, service_id=service.id, channel=channel
    )
    return Pricing(
        fee=compute(fee_t.rule, amount) if fee_t else 0,
        fee_tariff_id=fee_t.id if fee_t else None,
        commission=compute(com_t.rule, amount) if com_t else 0,
        commission_tariff_id=com_t.id if com_t else None,
    )


def request_hash(channel_id: int, v: Validated, account: str, customer: str | None = None) -> str:
    parts: list[object] = [channel_id, v.service.code, account, v.amount, v.service.currency, v.fields]
    if customer is not None:  # payments without one keep the hash they always had
        parts.append(customer)
    canon = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canon).hexdigest()


# a payment: the ORM row, or the values a batch just wrote (same attribute names)
PaymentRecord = Payment | PaymentValues


async def accept(hub: Hub, channel: ChannelView, body: PaymentIn) -> tuple[PaymentRecord, bool]:
    """Accept a payment; returns it and whether it was created (False: an idempotent repeat).

    Validation, pricing and routing need no database; the payment is then written with others
    accepted at the same moment in one transaction (``paymux.payments.acceptor``) and returned
    once that transaction committed. Raises a Problem for invalid input (422), a reused
    external_id with another body (409) or when no provider can take it (503).
    """
    snap = await hub.catalog.get()
    v = validate(snap, body)
    digest = request_hash(channel.id, v, body.account, body.customer)
    now = utcnow()
    pricing = price(snap, v.service, channel, v.amount, now)
    plan = plan_route(snap, v.service, channel, v.amount, now, hub.breakers)
    if not plan.options:
        reasons = "; ".join(plan.skipped) or "the service has no route"
        raise Problem(
            503,
            "no-provider-available",
            "No provider can take this payment now",
            f"no provider of service {v.service.code} can take this payment ({reasons})",
        )
    lifetime = v.service.lifetime_seconds or hub.settings.payment_lifetime_seconds
    values = {
        "channel_id": channel.id,
        "external_id": body.external_id,
        "request_hash": digest,
        "service_id": v.service.id,
        "account": body.account,
        "currency": v.service.currency,
        "amount": v.amount,
        "fee": pricing.fee,
        "total": v.amount + pricing.fee,
        "commission": pricing.commission,
        "fee_tariff_id": pricing.fee_tariff_id,
        "commission_tariff_id": pricing.commission_tariff_id,
        "fields": v.fields,
        "customer": body.customer,
        "status": "accepted",
        "tried_provider_ids": [],
        "attempts": 0,
        "failovers": 0,
        "in_doubt": False,
        "needs_attention": False,
        "next_attempt_at": now,
        "expires_at": now + dt.timedelta(seconds=lifetime),
        "created_at": now,
        "updated_at": now,
    }
    result = await hub.acceptor.submit(Pending(channel, body, values, plan, now))
    if result.problem is not None:
        raise result.problem
    if result.row is not None:
        return result.row, True
    # the external_id is taken: the same request again, or a different one
    async with hub.read_sessions() as reader:
        existing = await reader.scalar(
            select(Payment).where(Payment.channel_id == channel.id, Payment.external_id == body.external_id)
        )
    if existing is None:  # pragma: no cover - the conflicting row is committed before we are answered
        raise Problem(409, "conflict", "Conflict", "concurrent request with the same external_id")
    if existing.request_hash != digest:
        raise Problem(
            409,
            "idempotency-conflict",
            "external_id already used",
            f"external_id {body.external_id!r} was already used for a different payment (id {existing.id})",
            payment_id=existing.id,
        )
    return existing, False


async def get_payment(session: AsyncSession, channel_id: int, payment_id: int) -> Payment:
    p = await session.get(Payment, payment_id)
    if p is None or p.channel_id != channel_id:
        raise not_found(f"payment {payment_id}")
    return p


async def get_by_external_id(session: AsyncSession, channel_id: int, external_id: str) -> Payment:
    p = await session.scalar(
        select(Payment).where(Payment.channel_id == channel_id, Payment.external_id == external_id)
    )
    if p is None:
        raise not_found(f"payment with external_id {external_id!r}")
    return p


def cancellable(p: Payment) -> bool:
    """Accepted and never claimed for sending (a claim marks it in doubt and in processing)."""
    return p.status == "accepted" and p.attempts == 0 and not p.in_doubt


async def cancel(hub: Hub, session: AsyncSession, channel_id: int, payment_id: int) -> Payment:
    """Cancel a payment that has not been sent to a provider yet (reversing its acceptance).

    Cancelling a cancelled payment answers it again, also when another request cancelled it a
    moment ago: the row is locked and read as committed before anything is decided
    (:mod:`paymux.db.concurrent`)."""
    p = await locked(session, Payment, payment_id, key_share=True)
    if p is None or p.channel_id != channel_id:
        raise not_found(f"payment {payment_id}")
    if p.status == "cancelled":
        return p
    if not cancellable(p):
        raise Problem(
            409,
            "cannot-cancel",
            "The payment can no longer be cancelled",
            f"payment {p.id} is already {p.status}"
            if p.status in FINAL_STATUSES
            else f"payment {p.id} is {p.status} and has been sent to a provider",
        )
    now = utcnow()
    await session.execute(
        update(Payment)
        .where(Payment.id == p.id)
        .values(
            status="cancelled",
            next_attempt_at=None,
            final_at=now,
            updated_at=now,
            error_code="cancelled",
            error_message="cancelled by the channel",
        )
    )
    snap = await hub.catalog.get()
    prov = snap.providers[p.provider_id]
    key = provider_account(prov.id, prov.settlement, p.currency)
    await post_entry(
        session, hub.accounts, "payment_cancel", reverse(accept_lines(p, key)), payment_id=p.id, at=now
    )
    await session.refresh(p)
    return p
