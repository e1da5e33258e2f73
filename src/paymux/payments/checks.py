"""Account checks: ask the routed provider whether an account can be paid."""

from __future__ import annotations

from paymux.catalog.snapshot import ChannelView
from paymux.db.base import utcnow
from paymux.errors import Problem
from paymux.money import format_amount
from paymux.payments.schemas import CheckIn, CheckOut
from paymux.payments.service import price, validate
from paymux.providers.base import CheckRequest
from paymux.routing.engine import plan_route
from paymux.runtime import Hub

UNANSWERED = ("unreachable", "unknown", "temporary")


async def check_account(
    hub: Hub, channel: ChannelView, body: CheckIn, *, txn_id: str | None = None
) -> CheckOut:
    """The first provider on the route that answers decides; ones that do not answer are skipped.

    ``txn_id``: the transaction id the providers get (an inbound gateway may forward its payment
    system's); by default a check id of the hub's own (:mod:`paymux.payments.check_ids`), taken once
    there is a provider to ask.
    """
    snap = await hub.catalog.get()
    v = validate(snap, body)
    now = utcnow()
    pricing = price(snap, v.service, channel, v.amount, now)
    cur = v.service.currency
    plan = plan_route(snap, v.service, channel, v.amount, now, hub.breakers)
    failures: list[str] = []
    for option in plan.options:
        p = option.provider
        proto = hub.protocol(p)
        if txn_id is None:
            txn_id = await hub.check_ids.next(hub)
        hub.breakers.begin_call(p.id, p.breaker)
        r = await proto.check(
            CheckRequest(
                txn_id=txn_id,
                service_code=option.candidate.provider_service_code,
                account=body.account,
                amount=v.amount,
                currency=cur,
                fields=v.fields,
            )
        )
        hub.breakers.record(p.id, p.breaker, r.outcome not in UNANSWERED)
        if r.outcome in UNANSWERED:
            failures.append(f"{p.code}: {r.message or r.outcome}")
            continue
        ok = r.outcome in ("ok", "pending")
        return CheckOut(
            result="ok" if ok else "rejected",
            code=r.code,
            message=r.message,
            provider=p.code,
            info=r.info,
            fields=r.fields,
            fee=format_amount(pricing.fee, cur),
            total=format_amount(v.amount + pricing.fee, cur),
        )
    detail = "; ".join(plan.skipped + failures) or "the service has no route"
    raise Problem(503, "no-provider-available", "No provider answered the check", detail)
