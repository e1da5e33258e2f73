"""The gateway machinery every inbound protocol shares: check, pay, status and cancel on the hub's
payment service, exactly as the channel API uses it.

A gateway is a channel: ``check`` validates (and, unless the gateway checks locally, asks the
routed provider through ``paymux.payments.checks``, whose account details come back as
``fields``; nothing is registered), ``pay`` goes through ``paymux.payments.service.accept`` with
``external_id = txn_id``, so the payment is priced, routed, written to the ledger and delivered
like any other, and the unique ``(channel, external_id)`` makes a repeated pay return the payment
already made. ``status`` and ``cancel`` find the payment by the same ``txn_id``.

Refusals are :class:`~paymux.gateways.base.GatewayRefusal` with one of the hub's reasons; each
protocol answers them with its own codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.snapshot import ChannelView, ServiceView, Snapshot
from paymux.errors import Problem
from paymux.gateways.base import GatewayRefusal, InboundRequest, Outcome, Reason
from paymux.gateways.registry import GatewayView
from paymux.money import MoneyError, format_amount, parse_amount
from paymux.payments import service as payments
from paymux.payments.checks import check_account
from paymux.payments.models import Payment
from paymux.payments.schemas import CheckIn, PaymentIn
from paymux.runtime import Hub

_BY_SLUG: dict[str, Reason] = {
    "invalid-account": "bad_account",
    "invalid-field": "bad_field",
    "unknown-service": "forbidden",
    "service-disabled": "unavailable",
    "channel-disabled": "unavailable",
    "wrong-currency": "bad_request",
    "invalid-amount": "bad_request",
    "idempotency-conflict": "conflict",
}


def from_problem(p: Problem, command: str) -> GatewayRefusal:
    """The reason of a refusal of the hub's payment service (``paymux.payments.service``)."""
    detail = p.detail or p.title
    if p.slug == "amount-out-of-limits":
        return GatewayRefusal("too_large" if "above" in detail else "too_small", detail)
    if p.slug == "no-provider-available":
        # nobody can take it now: a check cannot be answered, a pay is to be repeated later
        return GatewayRefusal("cannot_check" if command == "check" else "temporary", detail)
    if p.status >= 500:
        return GatewayRefusal("temporary", detail)
    return GatewayRefusal(_BY_SLUG.get(p.slug, "bad_request"), detail)


@dataclass(slots=True)
class _Priced:
    service: ServiceView
    amount: int
    given: bool = True  # False: a lookup without an amount (the amount is the smallest one taken)


def _amount(gw: GatewayView, snap: Snapshot, req: InboundRequest) -> _Priced:
    """The service and the amount in minor units, within the gateway's and the service's limits.

    A lookup without an amount is made with the smallest amount the gateway and the service take
    (one minor unit when neither has a minimum)."""
    service = snap.services.get(req.service)
    if service is None:  # the gateway lists a service the catalog no longer has
        raise GatewayRefusal("unavailable", f"service {req.service!r} is not available")
    cur = service.currency
    if req.currency is not None and req.currency != cur:
        raise GatewayRefusal("bad_request", f"service {service.code} is paid in {cur}, not {req.currency}")
    gw_min, gw_max = gw.limits.get(cur, (None, None))
    if req.amount is None:
        return _Priced(service, max(gw_min or 0, service.min_amount or 0, 1), given=False)
    try:
        amount = parse_amount(req.amount, cur, allow_zero=True)
    except MoneyError as e:
        raise GatewayRefusal("bad_request", str(e)) from None
    if amount == 0:
        raise GatewayRefusal("too_small", "sum must be greater than zero")
    for low, what in ((gw_min, "gateway"), (service.min_amount, "service")):
        if low is not None and amount < low:
            raise GatewayRefusal(
                "too_small", f"sum {req.amount} is below the {what} minimum {format_amount(low, cur)}"
            )
    for high, what in ((gw_max, "gateway"), (service.max_amount, "service")):
        if high is not None and amount > high:
            raise GatewayRefusal(
                "too_large", f"sum {req.amount} is above the {what} maximum {format_amount(high, cur)}"
            )
    return _Priced(service, amount)


async def check(hub: Hub, gw: GatewayView, channel: ChannelView, req: InboundRequest) -> Outcome:
    """The hub's rules, then (``check: provider``) the routed provider's account check, whose
    details (``fields``) are passed on. Nothing is registered here."""
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
    shown = format_amount(priced.amount, cur) if priced.given else None
    if req.opens and req.txn_id is not None:
        earlier = await find(hub, channel.id, req.txn_id)
        if earlier is not None:
            differs = difference(earlier, snap, req, req.amount or "")
            if differs is None:
                raise GatewayRefusal("duplicate", f"txn_id {req.txn_id} already has its payment")
            raise GatewayRefusal(
                "conflict",
                f"txn_id {req.txn_id} was already used for another payment (prv_txn {earlier.id})",
                detail=differs,
            )
    # the provider's check gets a check id of the hub's own, or with check_txn_id: upstream the
    # payment system's txn_id (a lookup has none to forward)
    forwarded = req.upstream_check_id if gw.check_txn_id == "upstream" and not req.lookup else None
    try:
        if gw.check == "local":
            payments.validate(snap, body)
            return Outcome("ok", "OK", sum=shown)
        out = await check_account(hub, channel, body, txn_id=forwarded)
    except Problem as p:
        raise from_problem(p, "check") from None
    if out.result == "ok":
        return Outcome("ok", "OK", sum=shown, fields=out.fields)
    return Outcome("refused", out.message or None, sum=shown, fields=out.fields, provider_code=out.code)


def outcome(gw: GatewayView, p: Any) -> Outcome:
    """What a pay of payment ``p`` answers: ok once accepted, or with ``pay_result: final``
    not_completed until the provider has paid, ok when it has, and the refusal when it failed."""
    shown = format_amount(p.amount, p.currency)
    if gw.pay_result == "final":
        if p.status in ("failed", "cancelled"):
            return Outcome(
                "refused",
                p.error_message or None,
                shown,
                p.id,
                provider_code=p.error_code,
                payment_status=p.status,
            )
        if p.status != "succeeded":
            return Outcome("not_completed", None, shown, p.id, payment_status=p.status)
    return Outcome("ok", "OK", shown, p.id, payment_status=p.status)


async def pay(hub: Hub, gw: GatewayView, channel: ChannelView, req: InboundRequest) -> Outcome:
    txn_id, given_sum = req.txn_id, req.amount
    if txn_id is None or given_sum is None:  # the protocols' parsers require both for pay
        raise GatewayRefusal("bad_request", "txn_id and sum are required")
    snap = await hub.catalog.get()
    try:
        priced = _amount(gw, snap, req)
        cur = priced.service.currency
        body = PaymentIn(
            external_id=txn_id,
            service=req.service,
            account=req.account,
            amount=format_amount(priced.amount, cur),
            currency=cur,
            fields=req.fields,
        )
        try:
            payment, _created = await payments.accept(hub, channel, body)
        except Problem as p:
            raise from_problem(p, "pay") from None
    except GatewayRefusal:
        # refused now: if this txn_id already paid (before a catalog change), the repeat keeps its
        # outcome; if it paid something else, the repeat is refused as a conflict
        earlier = await find(hub, channel.id, txn_id)
        if earlier is None:
            raise
        differs = difference(earlier, snap, req, given_sum)
        if differs is None:
            return outcome(gw, earlier)
        raise GatewayRefusal(
            "conflict",
            f"txn_id {txn_id} was already used for another payment (prv_txn {earlier.id})",
            detail=differs,
        ) from None
    return outcome(gw, payment)


def _state(gw: GatewayView, p: Payment) -> Outcome:
    shown = format_amount(p.amount, p.currency)
    if p.status == "succeeded":
        return Outcome("ok", "OK", shown, p.id, payment_status=p.status)
    if p.status in ("failed", "cancelled"):
        return Outcome(
            "refused",
            p.error_message or None,
            shown,
            p.id,
            provider_code=p.error_code,
            payment_status=p.status,
        )
    return Outcome("not_completed", None, shown, p.id, payment_status=p.status)


async def status(hub: Hub, gw: GatewayView, channel: ChannelView, req: InboundRequest) -> Outcome:
    """The payment of this txn_id: ok (paid), not_completed (on its way), refused (failed or
    cancelled), not_found."""
    if req.txn_id is None:
        raise GatewayRefusal("bad_request", "txn_id is required")
    p = await _found(hub, channel, req)
    return _state(gw, p)


async def cancel(
    hub: Hub, session: AsyncSession, gw: GatewayView, channel: ChannelView, req: InboundRequest
) -> Outcome:
    """Cancel the payment of this txn_id while it has not been sent to a provider (as the channel
    API's cancel); a cancelled one answers ok again. Flushes, never commits."""
    if req.txn_id is None:
        raise GatewayRefusal("bad_request", "txn_id is required")
    p = await _found(hub, channel, req)
    try:
        done = await payments.cancel(hub, session, channel.id, p.id)
    except Problem as problem:
        if problem.slug == "cannot-cancel":
            raise GatewayRefusal("cannot_cancel", problem.detail or problem.title) from None
        raise from_problem(problem, "cancel") from None
    shown = format_amount(done.amount, done.currency)
    return Outcome("ok", "OK", shown, done.id, payment_status=done.status)


async def _found(hub: Hub, channel: ChannelView, req: InboundRequest) -> Payment:
    """The payment of the request's txn_id (and hub_txn, when given), or a not_found refusal."""
    assert req.txn_id is not None
    p = await find(hub, channel.id, req.txn_id)
    if p is None:
        raise GatewayRefusal("not_found", f"no payment with txn_id {req.txn_id}")
    if req.hub_txn is not None and req.hub_txn != str(p.id):
        raise GatewayRefusal("not_found", f"the payment of txn_id {req.txn_id} is not {req.hub_txn}")
    return p


async def find(hub: Hub, channel_id: int, txn_id: str) -> Payment | None:
    async with hub.read_sessions() as session:
        found: Payment | None = await session.scalar(
            select(Payment).where(Payment.channel_id == channel_id, Payment.external_id == txn_id)
        )
        return found


def difference(p: Payment, snap: Snapshot, req: InboundRequest, given_sum: str) -> str | None:
    """What differs between an earlier payment and a repeated request: ``service``, ``account``,
    ``fields``, ``amount``, or None when it is the same payment."""
    service = snap.services_by_id.get(p.service_id)
    if service is None or service.code != req.service:
        return "service"
    if p.account != req.account:
        return "account"
    if dict(p.fields or {}) != req.fields:
        return "fields"
    try:
        same = parse_amount(given_sum, p.currency, allow_zero=True) == p.amount
    except MoneyError:
        same = False
    return None if same else "amount"


async def perform(hub: Hub, gw: GatewayView, channel: ChannelView, req: InboundRequest) -> Outcome:
    """The request's command on the hub; a :class:`GatewayRefusal` becomes its outcome. This is the
    edge of the gateway routes: a cancel's transaction is committed here."""
    try:
        if req.command == "pay":
            return await pay(hub, gw, channel, req)
        if req.command == "status":
            return await status(hub, gw, channel, req)
        if req.command == "cancel":
            async with hub.sessions() as session:
                done = await cancel(hub, session, gw, channel, req)
                await session.commit()
                return done
        return await check(hub, gw, channel, req)
    except GatewayRefusal as r:
        return r.outcome()
