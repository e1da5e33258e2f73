"""OSMP check and pay on the hub's payment service, exactly as the channel API uses it.

A gateway is a channel: ``check`` validates (and, unless the gateway checks locally, asks the
routed provider through ``paymux.payments.checks``), ``pay`` goes through
``paymux.payments.service.accept`` with ``external_id = txn_id``, so the payment is priced,
routed, written to the ledger and delivered like any other, and the unique
``(channel, external_id)`` makes a repeated pay return the payment already made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from paymux.catalog.snapshot import ChannelView, ServiceView, Snapshot
from paymux.errors import Problem
from paymux.gateways.osmp import codes
from paymux.gateways.osmp.codes import OsmpRefusal
from paymux.gateways.osmp.params import OsmpRequest
from paymux.gateways.registry import GatewayView
from paymux.money import MoneyError, format_amount, parse_amount
from paymux.payments import service as payments
from paymux.payments.checks import check_account
from paymux.payments.models import Payment
from paymux.payments.schemas import CheckIn, PaymentIn
from paymux.runtime import Hub


@dataclass(slots=True)
class Answer:
    result: int
    comment: str
    sum: str | None = None
    prv_txn: int | None = None  # the hub's payment id
    payment_id: int | None = None


@dataclass(slots=True)
class _Priced:
    service: ServiceView
    amount: int


def _amount(gw: GatewayView, snap: Snapshot, req: OsmpRequest) -> _Priced:
    """The service and the amount in minor units, within the gateway's and the service's limits."""
    service = snap.services.get(req.service)
    if service is None:  # the gateway lists a service the catalog no longer has
        raise OsmpRefusal(codes.FORBIDDEN_TECHNICAL, f"service {req.service!r} is not available")
    cur = service.currency
    if req.ccy is not None and req.ccy != cur:
        raise OsmpRefusal(codes.OTHER, f"service {service.code} is paid in {cur}, not {req.ccy}")
    try:
        amount = parse_amount(req.sum, cur, allow_zero=True)
    except MoneyError as e:
        raise OsmpRefusal(codes.OTHER, str(e)) from None
    if amount == 0:
        raise OsmpRefusal(codes.AMOUNT_TOO_SMALL, "sum must be greater than zero")
    gw_min, gw_max = gw.limits.get(cur, (None, None))
    for low, what in ((gw_min, "gateway"), (service.min_amount, "service")):
        if low is not None and amount < low:
            raise OsmpRefusal(
                codes.AMOUNT_TOO_SMALL, f"sum {req.sum} is below the {what} minimum {format_amount(low, cur)}"
            )
    for high, what in ((gw_max, "gateway"), (service.max_amount, "service")):
        if high is not None and amount > high:
            raise OsmpRefusal(
                codes.AMOUNT_TOO_LARGE,
                f"sum {req.sum} is above the {what} maximum {format_amount(high, cur)}",
            )
    return _Priced(service, amount)


async def check(hub: Hub, gw: GatewayView, channel: ChannelView, req: OsmpRequest) -> Answer:
    snap = await hub.catalog.get()
    priced = _amount(gw, snap, req)
    cur = priced.service.currency
    body = CheckIn(
        service=req.service,
        account=req.account,
        amount=format_amount(priced.amount, cur),
        currency=cur,
        fields=req.fields,
    )
    shown = format_amount(priced.amount, cur)
    try:
        if gw.check == "local":
            payments.validate(snap, body)
            return Answer(codes.OK, "OK", sum=shown)
        out = await check_account(hub, channel, body)
    except Problem as p:
        raise codes.from_problem(p, "check") from None
    if out.result == "ok":
        return Answer(codes.OK, "OK", sum=shown)
    result = codes.from_provider_code(out.code)
    return Answer(result, out.message or codes.COMMENTS[result], sum=shown)


def outcome(gw: GatewayView, p: Any) -> Answer:
    """What a pay of payment ``p`` answers: 0 once accepted, or with ``pay_result: final`` 90 until
    the provider has paid, 0 when it has, and the refusal when it failed."""
    shown = format_amount(p.amount, p.currency)
    if gw.pay_result == "final":
        if p.status in ("failed", "cancelled"):
            result = codes.from_provider_code(p.error_code)
            return Answer(result, p.error_message or codes.COMMENTS[result], shown, p.id, p.id)
        if p.status != "succeeded":
            return Answer(codes.NOT_COMPLETED, codes.COMMENTS[codes.NOT_COMPLETED], shown, p.id, p.id)
    return Answer(codes.OK, "OK", shown, p.id, p.id)


async def pay(hub: Hub, gw: GatewayView, channel: ChannelView, req: OsmpRequest) -> Answer:
    snap = await hub.catalog.get()
    try:
        priced = _amount(gw, snap, req)
        cur = priced.service.currency
        body = PaymentIn(
            external_id=req.txn_id,
            service=req.service,
            account=req.account,
            amount=format_amount(priced.amount, cur),
            currency=cur,
            fields=req.fields,
        )
        try:
            payment, _created = await payments.accept(hub, channel, body)
        except Problem as p:
            raise codes.from_problem(p, "pay") from None
    except OsmpRefusal:
        # refused now: if this txn_id already paid (before a catalog change), the repeat keeps its
        # outcome; if it paid something else, the repeat is refused as a conflict
        earlier = await _earlier(hub, channel.id, req.txn_id)
        if earlier is None:
            raise
        if _same(earlier, snap, req):
            return outcome(gw, earlier)
        raise OsmpRefusal(
            codes.OTHER,
            f"txn_id {req.txn_id} was already used for another payment (prv_txn {earlier.id})",
        ) from None
    return outcome(gw, payment)


async def _earlier(hub: Hub, channel_id: int, txn_id: str) -> Payment | None:
    async with hub.read_sessions() as session:
        found: Payment | None = await session.scalar(
            select(Payment).where(Payment.channel_id == channel_id, Payment.external_id == txn_id)
        )
        return found


def _same(p: Payment, snap: Snapshot, req: OsmpRequest) -> bool:
    service = snap.services_by_id.get(p.service_id)
    if service is None or service.code != req.service or p.account != req.account:
        return False
    if dict(p.fields or {}) != req.fields:
        return False
    try:
        return parse_amount(req.sum, p.currency, allow_zero=True) == p.amount
    except MoneyError:
        return False
