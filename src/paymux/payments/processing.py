"""Delivering accepted payments to providers: claim, send, record, retry, fail over.

The rules that keep a payment from being lost or paid twice:

* A worker claims due payments in one transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL),
  moving ``next_attempt_at`` a lease ahead and marking them ``in_doubt``: from then on the
  payment may have reached its provider. If the worker dies, the lease runs out, another worker
  claims it and, seeing ``in_doubt``, asks that same provider for the status first.
* The transaction id sent to providers is the payment id, the same on every retry.
* Only a definitive answer (refusal, unreachable before sending, or a status saying "failed" /
  "not found") clears ``in_doubt``; only then may the payment go to another provider.
* The outcome is recorded in one transaction with its journal entry, and only if the worker
  still holds the lease.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import secrets
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.snapshot import ProviderView, Snapshot
from paymux.db.base import utcnow
from paymux.ledger.service import InsufficientFunds, post_entry
from paymux.payments.models import Payment, PaymentAttempt
from paymux.payments.postings import (
    accept_lines,
    deposit_floor,
    provider_account,
    reroute_lines,
    reverse,
    success_lines,
)
from paymux.providers.base import PayRequest, ProtocolResult, StatusRequest
from paymux.routing.engine import plan_route
from paymux.runtime import Hub

log = logging.getLogger("paymux.processing")

BREAKER_FAILURES = ("unreachable", "unknown", "temporary")


@dataclass(slots=True)
class Claimed:
    """A payment as it was when claimed (before the claim marked it in doubt)."""

    payment: Payment
    was_in_doubt: bool
    lease: str


async def claim_due(hub: Hub, lease_owner: str, limit: int) -> list[Claimed]:
    """Claim up to ``limit`` due payments for this worker, in one short transaction."""
    now = utcnow()
    lease_until = now + dt.timedelta(seconds=hub.settings.lease_seconds)
    async with hub.sessions() as session:
        stmt = (
            select(Payment)
            .where(Payment.next_attempt_at <= now)
            .order_by(Payment.next_attempt_at)
            .limit(limit)
        )
        if not hub.sqlite:
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list((await session.scalars(stmt)).all())
        if not rows:
            await session.rollback()
            return []
        claimed = [Claimed(p, p.in_doubt, lease_owner) for p in rows]
        session.expunge_all()
        await session.execute(
            update(Payment)
            .where(Payment.id.in_([p.id for p in rows]))
            .values(
                next_attempt_at=lease_until,
                lease_owner=lease_owner,
                status="processing",
                in_doubt=True,
                updated_at=now,
            )
        )
        await session.commit()
    return claimed


def backoff(hub: Hub, attempt: int) -> dt.timedelta:
    """Growing retry interval: base * 2^(attempt-1), capped, with up to 10% jitter."""
    s = hub.settings
    ms = min(s.retry_base_ms * (2 ** max(attempt - 1, 0)), s.retry_max_ms)
    return dt.timedelta(milliseconds=ms + random.randrange(ms // 10 + 1))


async def process(hub: Hub, c: Claimed) -> None:
    """Take one claimed payment one step further and record the outcome."""
    snap = await hub.catalog.get()
    p = c.payment
    if p.provider_id not in snap.providers or p.service_id not in snap.services_by_id:
        hub.catalog_changed()  # created by another node after this process loaded its snapshot
        snap = await hub.catalog.get()
    provider = snap.providers[p.provider_id]
    if not c.was_in_doubt and not _still_routable(snap, p, provider):
        # switched off or disabled since acceptance, and never sent there: move it first
        await _reroute_before_sending(hub, snap, c, provider, f"{provider.code} is switched off or disabled")
        return
    if not c.was_in_doubt and not hub.breakers.allow(provider.id, provider.breaker):
        await _reroute_before_sending(hub, snap, c, provider, f"{provider.code}: circuit breaker open")
        return
    proto = hub.protocol(provider)
    hub.breakers.begin_call(provider.id, provider.breaker)
    started = utcnow()
    if c.was_in_doubt:
        step = "status"
        result = await proto.status(StatusRequest(str(p.id), p.provider_service_code, p.provider_txn_id))
    else:
        step = "pay"
        result = await proto.pay(
            PayRequest(
                txn_id=str(p.id),
                txn_date=p.created_at,
                service_code=p.provider_service_code,
                account=p.account,
                amount=p.amount,
                currency=p.currency,
                fields=dict(p.fields or {}),
            )
        )
    hub.breakers.record(provider.id, provider.breaker, result.outcome not in BREAKER_FAILURES)
    elapsed_ms = (utcnow() - started) // dt.timedelta(milliseconds=1)
    async with hub.sessions() as session:
        await session.execute(
            insert(PaymentAttempt).values(
                payment_id=p.id,
                provider_id=provider.id,
                step=step,
                outcome=result.outcome,
                code=result.code,
                message=(result.message or "")[:500] or None,
                provider_txn_id=result.provider_txn_id,
                exchanges=[_exchange_dict(e) for e in result.exchanges],
                elapsed_ms=elapsed_ms,
                started_at=started,
            )
        )
        applied = await _apply(hub, session, snap, c, provider, step, result)
        if applied:
            await session.commit()
        else:
            await session.rollback()
            log.warning("payment %s: lease lost, outcome left to the new owner", p.id)


def _still_routable(snap: Snapshot, p: Payment, provider: ProviderView) -> bool:
    if not provider.enabled:
        return False
    return any(c.provider_id == provider.id and c.enabled for c in snap.routes.get(p.service_id, ()))


async def _reroute_before_sending(
    hub: Hub, snap: Snapshot, c: Claimed, provider: ProviderView, why: str
) -> None:
    """Move a payment that was never sent to its provider to the next one, or retry later."""
    r = ProtocolResult(outcome="unreachable", message=why)
    now = utcnow()
    async with hub.sessions() as session:
        moved = await _failover(hub, session, snap, c, provider, r, c.payment.attempts, now, keep_tried=False)
        if moved is None and now >= c.payment.expires_at:
            moved = await _fail(
                hub, session, c, provider, r, c.payment.attempts, now, "lifetime ended: " + why
            )
        elif moved is None:
            moved = await _set(
                session,
                c,
                in_doubt=False,
                next_attempt_at=now + backoff(hub, c.payment.attempts + 1),
                error_code="no-route",
                error_message=r.message,
            )
        await session.commit() if moved else await session.rollback()


def _exchange_dict(e: object) -> dict[str, object]:
    return {k: getattr(e, k) for k in ("step", "url", "request", "response", "status_code", "elapsed_ms")}


async def _set(session: AsyncSession, c: Claimed, **values: object) -> bool:
    """Update the payment if this worker still holds its lease."""
    values.setdefault("updated_at", utcnow())
    t = _payments
    conn = await session.connection()  # a Core update: no ORM session synchronisation
    res = await conn.execute(
        update(t).where(t.c.id == c.payment.id, t.c.lease_owner == c.lease).values(**values).returning(t.c.id)
    )
    return res.first() is not None


_payments = cast(Table, Payment.__table__)


async def _apply(
    hub: Hub,
    session: AsyncSession,
    snap: Snapshot,
    c: Claimed,
    provider: ProviderView,
    step: str,
    r: ProtocolResult,
) -> bool:
    p = c.payment
    now = utcnow()
    attempts = p.attempts + 1
    o = r.outcome
    if o == "ok":
        return await _succeed(hub, session, c, provider, r, attempts, now)
    if o == "not_found" or (step == "status" and o == "fatal"):
        if o == "not_found":
            # the provider never got it: send it again to the same provider, same txn id
            return await _set(session, c, in_doubt=False, attempts=attempts, next_attempt_at=now)
        return await _failover_or_fail(hub, session, snap, c, provider, r, attempts, now)
    if o in ("pending", "unknown") or (step == "status" and o in ("temporary", "unreachable")):
        # the outcome is not known: only the same provider's status may settle it
        expired = now >= p.expires_at
        return await _set(
            session,
            c,
            in_doubt=True,
            attempts=attempts,
            needs_attention=expired,
            next_attempt_at=now + backoff(hub, attempts if o != "pending" else 1),
            error_code=r.code,
            error_message=(r.message or o)[:500],
        )
    if o == "fatal":
        return await _failover_or_fail(hub, session, snap, c, provider, r, attempts, now)
    if o == "unreachable":
        moved = await _failover(hub, session, snap, c, provider, r, attempts, now, keep_tried=False)
        if moved is not None:
            return moved
    # temporary error, or unreachable with nowhere else to go: retry the same provider later
    if now >= p.expires_at:
        return await _fail(hub, session, c, provider, r, attempts, now, "lifetime ended: " + (r.message or o))
    return await _set(
        session,
        c,
        in_doubt=False,
        attempts=attempts,
        next_attempt_at=now + backoff(hub, attempts),
        error_code=r.code,
        error_message=(r.message or o)[:500],
    )


async def _succeed(
    hub: Hub,
    session: AsyncSession,
    c: Claimed,
    provider: ProviderView,
    r: ProtocolResult,
    attempts: int,
    now: dt.datetime,
) -> bool:
    p = c.payment
    ok = await _set(
        session,
        c,
        status="succeeded",
        in_doubt=False,
        attempts=attempts,
        next_attempt_at=None,
        provider_txn_id=r.provider_txn_id or p.provider_txn_id,
        final_at=now,
        error_code=None,
        error_message=None,
        needs_attention=False,
    )
    lines = success_lines(p, provider.id)
    if ok and any(
        ln.amount for ln in lines
    ):  # nothing to recognise when there is no fee, remuneration or commission
        await post_entry(session, hub.accounts, "payment_success", lines, payment_id=p.id, at=now)
    return ok


async def _fail(
    hub: Hub,
    session: AsyncSession,
    c: Claimed,
    provider: ProviderView,
    r: ProtocolResult,
    attempts: int,
    now: dt.datetime,
    message: str,
) -> bool:
    p = c.payment
    ok = await _set(
        session,
        c,
        status="failed",
        in_doubt=False,
        attempts=attempts,
        next_attempt_at=None,
        final_at=now,
        error_code=r.code or r.outcome,
        error_message=message[:500],
    )
    if ok:
        key = provider_account(provider.id, provider.settlement, p.currency)
        await post_entry(
            session, hub.accounts, "payment_fail", reverse(accept_lines(p, key)), payment_id=p.id, at=now
        )
    return ok


async def _failover_or_fail(
    hub: Hub,
    session: AsyncSession,
    snap: Snapshot,
    c: Claimed,
    provider: ProviderView,
    r: ProtocolResult,
    attempts: int,
    now: dt.datetime,
) -> bool:
    moved = await _failover(hub, session, snap, c, provider, r, attempts, now, keep_tried=True)
    if moved is not None:
        return moved
    msg = f"{provider.code}: {r.message or r.code or r.outcome}"
    return await _fail(hub, session, c, provider, r, attempts, now, msg)


async def _failover(
    hub: Hub,
    session: AsyncSession,
    snap: Snapshot,
    c: Claimed,
    provider: ProviderView,
    r: ProtocolResult,
    attempts: int,
    now: dt.datetime,
    *,
    keep_tried: bool,
) -> bool | None:
    """Move the payment to the next eligible provider; None when there is none.

    ``keep_tried``: the provider refused, never offer it this payment again. Otherwise (it was
    unreachable) it is only skipped for this move.
    """
    p = c.payment
    if now >= p.expires_at:
        return None
    tried = list(p.tried_provider_ids or [])
    if provider.id not in tried:
        tried.append(provider.id)
    service = snap.services_by_id[p.service_id]
    channel = snap.channels[p.channel_id]
    plan = plan_route(snap, service, channel, p.amount, now, hub.breakers, exclude=set(tried))
    old_key = provider_account(provider.id, provider.settlement, p.currency)
    for option in plan.options:
        nxt = option.provider
        new_key = provider_account(nxt.id, nxt.settlement, p.currency)
        try:
            async with session.begin_nested():
                await post_entry(
                    session,
                    hub.accounts,
                    "payment_reroute",
                    reroute_lines(p.amount, old_key, new_key),
                    payment_id=p.id,
                    floors=deposit_floor(nxt.settlement, nxt.overdraft, new_key),
                    at=now,
                    memo=f"failover {provider.code} -> {nxt.code}",
                )
        except InsufficientFunds:
            continue
        why = (
            f"failover from {provider.code} ({r.outcome}: {r.message or r.code or ''}); {plan.reason(option)}"
        )
        return await _set(
            session,
            c,
            provider_id=nxt.id,
            provider_service_code=option.candidate.provider_service_code,
            remuneration=option.remuneration,
            remuneration_tariff_id=option.remuneration_tariff_id,
            tried_provider_ids=tried if keep_tried else list(p.tried_provider_ids or []),
            failovers=p.failovers + 1,
            in_doubt=False,
            attempts=attempts,
            next_attempt_at=now,
            route_reason=(p.route_reason + "\n" + why)[-4000:],
            error_code=r.code,
            error_message=(r.message or r.outcome)[:500],
        )
    return None


class Worker:
    """Claims due payments and processes up to ``concurrency`` of them at once."""

    def __init__(self, hub: Hub, concurrency: int | None = None) -> None:
        self.hub = hub
        self.concurrency = concurrency or hub.settings.workers
        self.lease = f"w-{secrets.token_hex(8)}"
        self._running: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self.processed = 0

    def stop(self) -> None:
        self._stop.set()
        self.hub.wakeup.set()

    async def _one(self, c: Claimed) -> None:
        try:
            await process(self.hub, c)
        except Exception:  # a bug or a database error: the lease expires and the payment is retried
            log.exception("payment %s: processing failed", c.payment.id)
        finally:
            self.processed += 1

    async def run(self) -> None:
        hub = self.hub
        poll = hub.settings.poll_interval_ms / 1000
        while not self._stop.is_set():
            free = self.concurrency - len(self._running)
            claimed: list[Claimed] = []
            if free > 0:
                try:
                    claimed = await claim_due(hub, self.lease, min(free, hub.settings.claim_batch))
                except Exception:
                    log.exception("claiming due payments failed")
            for c in claimed:
                t = asyncio.create_task(self._one(c))
                self._running.add(t)
                t.add_done_callback(self._done)
            if claimed and len(claimed) == min(free, hub.settings.claim_batch):
                await asyncio.sleep(0)
                continue
            hub.wakeup.clear()
            try:
                await asyncio.wait_for(hub.wakeup.wait(), timeout=poll)
            except TimeoutError:
                pass
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _done(self, t: asyncio.Task[None]) -> None:
        self._running.discard(t)
        self.hub.wakeup.set()
