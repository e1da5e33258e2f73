"""Delivering accepted payments to providers: claim, send, record, retry, fail over.

The rules that keep a payment from being lost or paid twice:

* A worker claims due payments in one transaction (``FOR NO KEY UPDATE SKIP LOCKED`` on PostgreSQL),
  moving ``next_attempt_at`` a lease ahead and marking them ``in_doubt``: from then on the
  payment may have reached its provider. If the worker dies, the lease runs out, another worker
  claims it and, seeing ``in_doubt``, asks that same provider for the status first.
* The transaction id sent to providers is the payment id, the same on every retry.
* Only a definitive answer (refusal, unreachable before sending, or a status saying "failed" /
  "not found") clears ``in_doubt``; only then may the payment go to another provider.
* Every claim has a lease of its own (a fencing token, :class:`Lease`): the outcome is recorded in
  one transaction with its journal entry, and only if that claim still holds the lease (outcomes
  finishing together share one transaction: :mod:`.recorder`). A worker that claims its own payment
  again holds a new lease: the earlier claim's outcome is refused.
* The lease is checked again immediately before each request leaves (:mod:`paymux.providers.send_guard`):
  a worker that paused past its lease sends nothing more and gives the payment back.
* A claim that takes over a lease that ran out without an outcome *pins* the payment to its
  provider (``provider_pinned``): the paused worker may still send there, so the payment is settled
  at that provider only (status, then the same pay), never rerouted, and never failed while that
  provider may still pay it (past its lifetime it waits for an operator, ``needs_attention``).
* A payment accepted in a process that runs a worker with room for it is inserted already claimed
  by that worker (in the acceptance transaction, leased and in doubt) and handed to it directly:
  no claim transaction, no polling delay.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select, tuple_, update

from paymux.catalog.snapshot import ProviderView, Snapshot
from paymux.db import direct
from paymux.db.base import utcnow
from paymux.ledger.service import InsufficientFunds, post_entry
from paymux.payments.models import Payment, PaymentValues
from paymux.payments.postings import (
    accept_lines,
    deposit_floor,
    provider_account,
    reroute_lines,
    reverse,
    success_lines,
)
from paymux.payments.recorder import Writes
from paymux.providers import send_guard
from paymux.providers.base import PayRequest, ProtocolResult, StatusRequest
from paymux.providers.send_guard import SendGuard
from paymux.routing.engine import plan_route
from paymux.runtime import Hub

log = logging.getLogger("paymux.processing")

BREAKER_FAILURES = ("unreachable", "unknown", "temporary")
_payments = cast(Table, Payment.__table__)


@dataclass(frozen=True, slots=True)
class Lease:
    """One claim's lease: its token (the payments' ``lease_owner`` while it holds them), when it runs
    out in the database (``next_attempt_at``) and, on this process's monotonic clock, the last
    moment a request may leave under it (a margin earlier, for other hosts' clocks)."""

    token: str
    until: dt.datetime
    deadline: float


def new_lease(hub: Hub, owner: str) -> Lease:
    """A lease for one claim of worker ``owner``, starting now."""
    seconds = hub.settings.lease_seconds
    margin = min(2.0, seconds / 10)
    mono, now = time.monotonic(), utcnow()
    return Lease(
        f"{owner}.{next(_claim_numbers)}", now + dt.timedelta(seconds=seconds), mono + seconds - margin
    )


_claim_numbers = itertools.count(1)


@dataclass(slots=True)
class Claimed:
    """A payment as it was when claimed (before the claim marked it in doubt)."""

    payment: Any  # PaymentValues: read by a claim, or inserted already claimed by the acceptor
    was_in_doubt: bool
    lease: str
    guard: SendGuard
    pinned: bool = False  # settled at its provider only (see the module's docstring)
    was_status: str = "accepted"
    due_again: bool = False  # its recorded outcome makes it due again at once (failover, resend)


def claimed(
    payment: Any, lease: Lease, *, was_in_doubt: bool = False, pinned: bool = False, status: str = "accepted"
) -> Claimed:
    return Claimed(payment, was_in_doubt, lease.token, SendGuard(lease.deadline), pinned, status)


async def claim_due(hub: Hub, lease: Lease | str, limit: int) -> list[Claimed]:
    """Claim up to ``limit`` due payments under ``lease`` (or a new lease of the worker so named), in
    one short transaction.

    A payment whose ``lease_owner`` is still set was claimed and never given an outcome: its lease
    ran out (the worker paused, died or failed). A request may have left for its provider, and may
    still leave (a paused worker wakes up): the payment is pinned to that provider.

    Rows are read with Core into :class:`PaymentValues` (a claim of a hundred payments built ORM
    objects for a third of its time) and leased with one statement per row of the same shape."""
    if isinstance(lease, str):
        lease = new_lease(hub, lease)
    now = utcnow()
    async with hub.sessions() as session:
        conn = await session.connection()
        stmt = (
            select(_payments)
            .where(_payments.c.next_attempt_at <= now)
            .order_by(_payments.c.next_attempt_at)
            .limit(limit)
        )
        if not hub.sqlite:
            # NO KEY UPDATE: an attempt or entry inserted for a claimed payment (a foreign-key check)
            # does not wait for the claim's transaction
            stmt = stmt.with_for_update(skip_locked=True, key_share=True)
        result = await conn.execute(stmt)
        names = tuple(result.keys())
        rows = [PaymentValues.of_row(names, r) for r in result.all()]
        if not rows:
            await session.rollback()
            return []
        taken = [
            claimed(
                p,
                lease,
                was_in_doubt=p.in_doubt,
                pinned=bool(p.provider_pinned or p.lease_owner is not None),
                status=p.status,
            )
            for p in rows
        ]
        for c in taken:
            if c.pinned and not c.payment.provider_pinned:
                log.warning(
                    "payment %s: taken over from lease %s, which ran out without an outcome; "
                    "pinned to its provider",
                    c.payment.id,
                    c.payment.lease_owner,
                )
        values = {
            "next_attempt_at": lease.until,
            "lease_owner": lease.token,
            "status": "processing",
            "in_doubt": True,
            "updated_at": now,
        }
        await direct.update(
            conn,
            _payments,
            [{**values, "provider_pinned": c.pinned, "id": c.payment.id} for c in sorted(taken, key=_by_id)],
        )
        await session.commit()
    return taken


def _by_id(c: Claimed) -> int:
    return int(c.payment.id)


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
    if not c.was_in_doubt:
        why = ""
        if not _still_routable(snap, p, provider):
            why = f"{provider.code} is switched off or disabled"
        elif not hub.breakers.allow(provider.id, provider.breaker):
            why = f"{provider.code}: circuit breaker open"
        if why and c.pinned:
            await _wait_for_pinned_provider(hub, c, provider, why)
            return
        if why:  # and never sent there: move it first
            await _reroute_before_sending(hub, snap, c, provider, why)
            return
    if c.guard.expired():  # paused between the claim and here: give it back, nothing was sent
        await release(hub, c)
        return
    proto = hub.protocol(provider)
    hub.breakers.begin_call(provider.id, provider.breaker)
    started = utcnow()
    pay = PayRequest(
        txn_id=str(p.id),
        txn_date=p.created_at,
        service_code=p.provider_service_code,
        account=p.account,
        amount=p.amount,
        currency=p.currency,
        fields=dict(p.fields or {}),
    )
    guarded = send_guard.current.set(c.guard)
    try:
        if c.was_in_doubt:
            step = "status"
            result = await proto.status(StatusRequest(pay.txn_id, pay.service_code, p.provider_txn_id, pay))
        else:
            step = "pay"
            result = await proto.pay(pay)
    finally:
        send_guard.current.reset(guarded)
    if c.guard.tripped:  # the lease ran out before a request could leave: nothing more was sent
        hub.breakers.abandon_call(provider.id, provider.breaker)  # no call, no verdict on the provider
        await release(hub, c)
        return
    hub.breakers.record(provider.id, provider.breaker, result.outcome not in BREAKER_FAILURES)
    elapsed_ms = (utcnow() - started) // dt.timedelta(milliseconds=1)
    attempt = {
        "payment_id": p.id,
        "provider_id": provider.id,
        "step": step,
        "outcome": result.outcome,
        "code": result.code,
        "message": (result.message or "")[:500] or None,
        "provider_txn_id": result.provider_txn_id,
        "exchanges": [_exchange_dict(e) for e in result.exchanges],
        "elapsed_ms": elapsed_ms,
        "started_at": started,
        "lease": c.lease,
    }

    async def apply(w: Writes) -> None:
        await _apply(hub, w, snap, c, provider, step, result)

    if not await hub.recorder.record(p.id, c.lease, attempt, apply):
        log.warning("payment %s: lease lost, outcome left to the new owner", p.id)


async def release(hub: Hub, c: Claimed) -> None:
    """Give a claimed payment back (its lease ran out before anything more was sent, or its step
    failed before sending): due at once for any worker, as it was before the claim unless a request
    of this step left. Only while this claim still holds the lease; otherwise the new holder has it."""
    sent = c.guard.sent > 0
    in_doubt = c.was_in_doubt or sent
    values: dict[str, Any] = {"lease_owner": None, "next_attempt_at": utcnow(), "in_doubt": in_doubt}
    if not in_doubt:
        values["status"] = c.was_status
    try:
        async with hub.sessions() as session:
            held = await session.execute(
                update(Payment)
                .where(Payment.id == c.payment.id, Payment.lease_owner == c.lease)
                .values(**values)
                .returning(Payment.id)
            )
            given_back = held.first() is not None
            await session.commit()
    except Exception:  # the lease runs out on its own
        log.exception("payment %s: giving it back failed", c.payment.id)
        return
    if given_back:
        log.warning("payment %s: given back unsent (lease %s)", c.payment.id, c.lease)
        hub.work_due()
    else:
        log.warning("payment %s: lease %s was taken over; nothing sent under it", c.payment.id, c.lease)


async def _wait_for_pinned_provider(hub: Hub, c: Claimed, provider: ProviderView, why: str) -> None:
    """A pinned payment whose provider may not be called now waits for it (it never moves)."""
    now = utcnow()
    p = c.payment

    async def apply(w: Writes) -> None:
        _set(
            w,
            c,
            in_doubt=False,
            needs_attention=now >= p.expires_at or not provider.enabled,
            next_attempt_at=now + backoff(hub, max(p.attempts, 1)),
            error_code="pinned",
            error_message=f"waits for {provider.code}, where a request may have reached it: {why}"[:500],
        )

    if not await hub.recorder.record(p.id, c.lease, None, apply):
        log.warning("payment %s: lease lost, left to the new owner", p.id)


def _still_routable(snap: Snapshot, p: PaymentValues, provider: ProviderView) -> bool:
    if not provider.enabled:
        return False
    return any(c.provider_id == provider.id and c.enabled for c in snap.routes.get(p.service_id, ()))


async def _reroute_before_sending(
    hub: Hub, snap: Snapshot, c: Claimed, provider: ProviderView, why: str
) -> None:
    """Move a payment that was never sent to its provider to the next one, or retry later."""
    r = ProtocolResult(outcome="unreachable", message=why)
    now = utcnow()

    async def apply(w: Writes) -> None:
        n = c.payment.attempts
        if await _failover(hub, w, snap, c, provider, r, n, now, keep_tried=False):
            return
        if now >= c.payment.expires_at:
            _fail(w, c, provider, r, n, now, "lifetime ended: " + why)
            return
        _set(
            w,
            c,
            in_doubt=False,
            next_attempt_at=now + backoff(hub, n + 1),
            error_code="no-route",
            error_message=r.message,
        )

    if not await hub.recorder.record(c.payment.id, c.lease, None, apply):
        log.warning("payment %s: lease lost, left to the new owner", c.payment.id)


def _exchange_dict(e: object) -> dict[str, object]:
    return {k: getattr(e, k) for k in ("step", "url", "request", "response", "status_code", "elapsed_ms")}


def _set(w: Writes, c: Claimed, **values: Any) -> None:
    """Change the payment, in the outcome's batch (the recorder has checked the lease)."""
    now = utcnow()
    values.setdefault("updated_at", now)
    due = values.get("next_attempt_at")
    if due is not None and due <= now:
        c.due_again = True
    w.update_payment(c.payment.id, values)


async def _apply(
    hub: Hub,
    w: Writes,
    snap: Snapshot,
    c: Claimed,
    provider: ProviderView,
    step: str,
    r: ProtocolResult,
) -> None:
    p = c.payment
    now = utcnow()
    attempts = p.attempts + 1
    o = r.outcome
    if o == "ok":
        _succeed(w, c, provider, r, attempts, now)
        return
    if o == "not_found":
        # the provider never got it: send it again to the same provider, same txn id
        _set(w, c, in_doubt=False, attempts=attempts, next_attempt_at=now)
        return
    if o == "fatal":  # a refusal, or (to a status request) "it failed": definitive either way
        if c.pinned:  # it will not pay it; nowhere else may
            _fail(w, c, provider, r, attempts, now, f"{provider.code}: {r.message or r.code or r.outcome}")
            return
        await _failover_or_fail(hub, w, snap, c, provider, r, attempts, now)
        return
    if o in ("pending", "unknown") or (step == "status" and o in ("temporary", "unreachable")):
        # the outcome is not known: only the same provider's status may settle it
        _set(
            w,
            c,
            in_doubt=True,
            attempts=attempts,
            needs_attention=now >= p.expires_at,
            next_attempt_at=now + backoff(hub, attempts if o != "pending" else 1),
            error_code=r.code,
            error_message=(r.message or o)[:500],
        )
        return
    if o == "unreachable" and await _failover(hub, w, snap, c, provider, r, attempts, now, keep_tried=False):
        return
    # temporary error, or unreachable with nowhere else to go: retry the same provider later
    if now >= p.expires_at and c.pinned:
        # a request that left under a lapsed lease may still be paid there: ask, never give up
        _set(
            w,
            c,
            in_doubt=True,
            attempts=attempts,
            needs_attention=True,
            next_attempt_at=now + backoff(hub, attempts),
            error_code=r.code,
            error_message=("lifetime ended, pinned to its provider: " + (r.message or o))[:500],
        )
        return
    if now >= p.expires_at:
        _fail(w, c, provider, r, attempts, now, "lifetime ended: " + (r.message or o))
        return
    _set(
        w,
        c,
        in_doubt=False,
        attempts=attempts,
        next_attempt_at=now + backoff(hub, attempts),
        error_code=r.code,
        error_message=(r.message or o)[:500],
    )


def _succeed(
    w: Writes, c: Claimed, provider: ProviderView, r: ProtocolResult, attempts: int, now: dt.datetime
) -> None:
    p = c.payment
    _set(
        w,
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
    if any(ln.amount for ln in lines):  # nothing to recognise without fee, remuneration, commission
        w.journal.add("payment_success", lines, payment_id=p.id, at=now)


def _fail(
    w: Writes,
    c: Claimed,
    provider: ProviderView,
    r: ProtocolResult,
    attempts: int,
    now: dt.datetime,
    message: str,
) -> None:
    p = c.payment
    _set(
        w,
        c,
        status="failed",
        in_doubt=False,
        attempts=attempts,
        next_attempt_at=None,
        final_at=now,
        error_code=r.code or r.outcome,
        error_message=message[:500],
    )
    key = provider_account(provider.id, provider.settlement, p.currency)
    w.journal.add("payment_fail", reverse(accept_lines(p, key)), payment_id=p.id, at=now)


async def _failover_or_fail(
    hub: Hub,
    w: Writes,
    snap: Snapshot,
    c: Claimed,
    provider: ProviderView,
    r: ProtocolResult,
    attempts: int,
    now: dt.datetime,
) -> None:
    if not await _failover(hub, w, snap, c, provider, r, attempts, now, keep_tried=True):
        _fail(w, c, provider, r, attempts, now, f"{provider.code}: {r.message or r.code or r.outcome}")


async def _failover(
    hub: Hub,
    w: Writes,
    snap: Snapshot,
    c: Claimed,
    provider: ProviderView,
    r: ProtocolResult,
    attempts: int,
    now: dt.datetime,
    *,
    keep_tried: bool,
) -> bool:
    """Move the payment to the next eligible provider; False when there is none.

    ``keep_tried``: the provider refused, never offer it this payment again. Otherwise (it was
    unreachable) it is only skipped for this move.
    """
    p = c.payment
    if now >= p.expires_at or c.pinned:
        return False
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
            # posted at once: it checks the new deposit's floor (the savepoint takes it back if not)
            async with w.session.begin_nested():
                await post_entry(
                    w.session,
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
        _set(
            w,
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
        return True
    return False


class Worker:
    """Processes up to ``concurrency`` payments at once: handed over at acceptance, or claimed.

    Claiming is a write transaction, so the worker claims only when it has room for a useful
    batch and there is reason to expect work: at start, when the last claim came back full (a
    backlog), when an outcome made a payment due again at once, when this process accepted
    payments it could not hand over, and otherwise every ``poll_interval_ms`` (retries that came
    due, payments accepted by other processes).
    """

    def __init__(self, hub: Hub, concurrency: int | None = None) -> None:
        self.hub = hub
        self.concurrency = concurrency or hub.settings.workers
        self.lease = f"w-{secrets.token_hex(8)}"  # this worker's name: each claim's lease starts with it
        self._running: set[asyncio.Task[None]] = set()
        self._inbox: deque[Claimed] = deque()
        self._reserved = 0
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._claim_soon = True
        self.processed = 0
        self.claims = 0

    # -- hand-over from the acceptor of this process -------------------------------------------

    def take_slots(self, n: int) -> int:
        """Reserve room for up to ``n`` payments about to be inserted already claimed by us."""
        if self._stop.is_set():
            return 0
        k = max(0, min(n, self.concurrency - len(self._running) - len(self._inbox) - self._reserved))
        self._reserved += k
        return k

    def new_lease(self) -> Lease:
        """A lease for payments an acceptance batch inserts already claimed by this worker."""
        return new_lease(self.hub, self.lease)

    def hand_over(self, payments: Iterable[Any], reserved: int, lease: Lease | None = None) -> None:
        """Payments committed as claimed by this worker under ``lease`` (after ``take_slots(reserved)``)."""
        self._reserved -= reserved
        if lease is not None:
            self._inbox.extend(claimed(p, lease) for p in payments)
        self._wake.set()

    def claim_soon(self) -> None:
        """There is due work in the database (accepted here without room to hand it over)."""
        self._claim_soon = True
        self._wake.set()

    # -- the loop ----------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def _one(self, c: Claimed) -> None:
        try:
            await process(self.hub, c)
        except Exception:  # a bug or a database error: the lease expires and the payment is retried
            log.exception("payment %s: processing failed", c.payment.id)
            if c.guard.sent == 0:  # nothing left for the provider: no need to wait for the lease
                await release(self.hub, c)
        finally:
            self.processed += 1
            if c.due_again:
                self._claim_soon = True

    def _start(self, claimed: Iterable[Claimed]) -> None:
        for c in claimed:
            t = asyncio.create_task(self._one(c))
            self._running.add(t)
            t.add_done_callback(self._done)

    def _done(self, t: asyncio.Task[None]) -> None:
        self._running.discard(t)
        if self._inbox or self._claim_soon:
            self._wake.set()

    async def run(self) -> None:
        hub = self.hub
        if hub.local_worker is None:
            hub.local_worker = self
        poll = hub.settings.poll_interval_ms / 1000
        batch = max(1, hub.settings.claim_batch)
        useful = max(1, min(batch, self.concurrency // 4))  # a claim for fewer is not worth a write
        last_claim = -poll
        try:
            while not self._stop.is_set():
                while self._inbox and len(self._running) < self.concurrency:
                    self._start([self._inbox.popleft()])
                free = self.concurrency - len(self._running) - len(self._inbox) - self._reserved
                timer = time.monotonic() - last_claim >= poll
                if free > 0 and ((self._claim_soon and free >= useful) or timer):
                    self._claim_soon = False
                    last_claim = time.monotonic()
                    want = min(free, batch)
                    try:
                        taken = await claim_due(hub, new_lease(hub, self.lease), want)
                    except Exception:
                        log.exception("claiming due payments failed")
                        taken = []
                    self.claims += 1
                    self._start(taken)
                    if len(taken) == want:
                        self._claim_soon = True  # probably more where these came from
                        await asyncio.sleep(0)
                        continue
                self._wake.clear()
                wait = max(0.0, poll - (time.monotonic() - last_claim))
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=wait or poll)
                except TimeoutError:
                    pass
        finally:
            if hub.local_worker is self:
                hub.local_worker = None
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)
            await self._release_inbox()

    async def _release_inbox(self) -> None:
        """Give back payments handed over but never started, so any worker may take them at once."""
        left = [(c.payment.id, c.lease) for c in self._inbox]
        self._inbox.clear()
        if not left:
            return
        try:
            async with self.hub.sessions() as session:
                await session.execute(
                    update(Payment)
                    .where(tuple_(Payment.id, Payment.lease_owner).in_(left))
                    .values(next_attempt_at=utcnow(), lease_owner=None, in_doubt=False, status="accepted")
                )
                await session.commit()
        except Exception:  # the leases run out on their own
            log.exception("releasing %d handed-over payments failed", len(left))
