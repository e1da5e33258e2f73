"""The executor: carries a run from ``due`` (or ``checking``) to a final state, one committed step at a time.

A step's write is group-committed with the steps of the other runs in flight in this process
(:class:`paymux.recurring.steps.StepWriter`: one transaction per batch, the fence checked by the
statement that records each step); the run goes on only once its step committed.

Runs are jobs (:mod:`paymux.worker.jobs`): a worker claims due ``pending``/``running`` runs under a
lease of its own (``lease_owner``, a fencing token); every write checks it, and the lease is renewed
in the database right before anything leaves the hub (a debit, a payment, a refund). A worker that
paused past its lease therefore sends nothing once another worker took the run over, and a worker
that died leaves the run ``running`` until its lease runs out; then any worker resumes it from its
committed state:

``checking``   threshold / debt: ask the provider for the balance or the debt (the observer), decide
               ``due`` with an amount, ``not_needed``, or (debt above the customer's limit)
               ``awaiting_confirmation`` with a ``debt.confirm`` notice.
``due``        limits, under the customer's row lock: per payment (``per_payment_limit``) and per
               calendar month in the customer's timezone (``month_limit``, counting paid runs and runs
               in flight) -> ``limit_exceeded``; else ``debiting``.
``debiting``   debit the agent's funding source under ``debit_key``. The run is marked
               (``error_code = debit_sent``) before the request leaves, so a run resumed after a crash
               or a lost answer asks ``status(debit_key)`` first and never debits again; ``done`` ->
               ``paying``; ``refused`` (insufficient funds...) -> ``failed``.
``paying``     accept the payment through the hub's pipeline under the agent's recurring channel with
               ``external_id = rec-<run id>`` (idempotent: a crash after acceptance finds the same
               payment), then look at it again later until it is final (never blocking a worker):
               succeeded -> ``paid``; failed or cancelled -> ``refunding``.
``refunding``  give the debit back under ``refund_key`` (``status`` first, so a lost answer is
               settled, never refunded twice) -> ``refunded``.

Each final state is written with its notice (``run.paid``, ``run.failed``, ``run.limit_exceeded``) in
one transaction. Failpoints (:mod:`paymux.failpoints`) ``recurring.before_debit``,
``recurring.after_debit``, ``recurring.before_accept``, ``recurring.after_accept``,
``recurring.before_final``, ``recurring.before_refund`` and ``recurring.after_refund`` let tests crash
a run at each step.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import datetime as dt
import importlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import failpoints
from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.errors import Problem
from paymux.funding.base import Debit, FundingAnswer, FundingSource, Refund, source_class
from paymux.money import format_amount
from paymux.payments.models import Payment
from paymux.payments.schemas import PaymentIn
from paymux.payments.service import accept
from paymux.recurring import notices
from paymux.recurring.engine_settings import EngineSettings
from paymux.recurring.models import Customer, RecurringAgent, Run, Subscription, Template
from paymux.recurring.schedule import RuleError, zone
from paymux.recurring.scheduler import refund_key, schedule_due
from paymux.recurring.steps import Step
from paymux.runtime import Hub
from paymux.worker.jobs import FINISHED_KEPT, PollingWorker, claim_due, retry_delay, running

log = logging.getLogger(__name__)

# runs counted against a customer's month limit: paid and in flight with money taken or being taken
COUNTED_STATES = ("debiting", "paying", "paid")
DEBIT_MARKS = ("debit_sent", "debit_unknown")  # error_code while a debit's outcome is not known


class Observed(Protocol):
    value: int
    currency: str


Observer = Callable[..., Awaitable[Observed]]


async def default_observer(
    hub: Hub,
    *,
    service_id: int,
    account: str,
    kind: str,
    channel_id: int | None = None,
    fields: dict[str, str] | None = None,
) -> Observed:
    """:func:`paymux.recurring.observe.observe` (the provider's check answer read for a balance/debt),
    routed as the agent's recurring channel, with the template's fields."""
    module = importlib.import_module("paymux.recurring.observe")
    result: Observed = await module.observe(
        hub, service_id=service_id, account=account, kind=kind, channel_id=channel_id, fields=fields
    )
    return result


@dataclass
class Ctx:
    run: Run
    sub: Subscription
    customer: Customer
    template: Template
    agent: RecurringAgent
    owner: str
    now: dt.datetime
    # the run's current state was entered by this claim with the lease renewed and its mark written
    # (``debit_sent`` / the refund key), and nothing has left under it yet: no status call is needed
    # first and no second renewal before it leaves
    fresh: bool = False


class Lost(Exception):
    """The run's lease is no longer ours: stop touching it."""


class Executor:
    """Executes claimed runs (see the module's note). One per worker; sources are cached by config."""

    def __init__(
        self, hub: Hub, settings: EngineSettings | None = None, observer: Observer | None = None
    ) -> None:
        self.hub = hub
        self.settings = settings or EngineSettings()
        self.observer = observer or default_observer
        self._sources: dict[str, FundingSource] = {}
        self._preloaded: dict[tuple[int, str], tuple[Any, ...]] = {}  # (run id, owner) -> its row

    # -- plumbing -------------------------------------------------------------------------------

    def source(self, agent: RecurringAgent) -> FundingSource:
        fingerprint = agent.funding_protocol + json.dumps(agent.funding_config, sort_keys=True, default=str)
        src = self._sources.get(fingerprint)
        if src is None:
            src = source_class(agent.funding_protocol)(dict(agent.funding_config), self.hub.http)
            self._sources[fingerprint] = src
        return src

    @staticmethod
    def _loading(owner: str) -> Any:
        """Runs held by ``owner`` with their subscription, customer, template and agent's settings."""
        return (
            select(Run, Subscription, Customer, Template, RecurringAgent)
            .join(Subscription, Subscription.id == Run.subscription_id)
            .join(Customer, Customer.id == Subscription.customer_id)
            .join(Template, Template.id == Subscription.template_id)
            .outerjoin(RecurringAgent, RecurringAgent.agent_id == Customer.agent_id)
            .where(Run.lease_owner == owner, Run.status == "running")
        )

    async def preload(self, run_ids: list[int], owner: str) -> None:
        """Load the runs just claimed under ``owner`` in one query; each run's :meth:`execute` then
        takes its own instead of asking again."""
        if len(run_ids) < 2:
            return
        async with self.hub.read_sessions() as session:
            rows = (await session.execute(self._loading(owner).where(Run.id.in_(run_ids)))).all()
        for row in rows:
            self._preloaded[(row[0].id, owner)] = tuple(row)

    async def _load(self, run_id: int, owner: str, now: dt.datetime, *, claimed: bool = False) -> Ctx | None:
        """The run held by ``owner`` with what it needs, in one query (None when the claim no longer
        holds it); ``claimed``: right after the claim, as preloaded if it was."""
        row = self._preloaded.pop((run_id, owner), None) if claimed else None
        if row is None:
            async with self.hub.read_sessions() as session:
                found = (await session.execute(self._loading(owner).where(Run.id == run_id))).first()
            if found is None:
                return None
            row = tuple(found)
        run, sub, customer, template, agent = row
        if agent is None:
            raise RuntimeError(f"run {run_id}: agent {customer.agent_id} has no recurring settings")
        return Ctx(run, sub, customer, template, agent, owner, now)

    async def _set(self, ctx: Ctx, **values: Any) -> None:
        """Write the run if ``ctx.owner`` still holds it (else :class:`Lost`), group-committed with
        the steps of the other runs in flight (:mod:`paymux.recurring.steps`)."""
        await self._write(ctx, Step(ctx.run.id, ctx.owner, values))

    async def _write(self, ctx: Ctx, step: Step) -> None:
        """Record ``step`` (committed on return) and mirror its values on ``ctx.run``."""
        if not await self.hub.run_steps.record(step):
            raise Lost
        for k, v in step.values.items():
            setattr(ctx.run, k, v)

    async def _fenced(self, session: AsyncSession, ctx: Ctx, values: dict[str, Any]) -> None:
        """The fenced write inside a transaction of the caller's (the month limit's row lock)."""
        row = (
            await session.execute(
                update(Run)
                .where(Run.id == ctx.run.id, Run.lease_owner == ctx.owner, Run.status == "running")
                .values(updated_at=utcnow(), **values)
                .returning(Run.id)
            )
        ).first()
        if row is None:
            await session.rollback()
            raise Lost

    def _notice(self, ctx: Ctx, event: str, values: dict[str, Any]) -> notices.Notice:
        """The notice of ``event`` about the run as ``values`` leave it."""
        for k, v in values.items():
            setattr(ctx.run, k, v)
        return notices.about_run(event, ctx.run, ctx.sub, ctx.customer, ctx.template, ctx.agent.agent_id)

    async def _renew(self, ctx: Ctx, **values: Any) -> None:
        """Renew the lease right before something leaves (and write ``values`` with it)."""
        await self._set(ctx, due_at=ctx.now + dt.timedelta(seconds=self.settings.lease_seconds), **values)

    async def _later(self, ctx: Ctx, delay: float, **values: Any) -> str:
        """Give the run back to the queue, due again after ``delay`` seconds."""
        await self._set(
            ctx, status="pending", lease_owner=None, due_at=ctx.now + dt.timedelta(seconds=delay), **values
        )
        return "pending"

    def _backoff(self, ctx: Ctx) -> float:
        s = self.settings
        delay = retry_delay(s.retry_base_seconds, s.retry_max_seconds, ctx.run.attempts, jitter=False)
        return delay.total_seconds()

    async def _final(
        self,
        ctx: Ctx,
        state: str,
        event: str | None = None,
        paid: bool = False,
        **values: Any,
    ) -> str:
        """Write the final ``state`` with its notice (and a paid run's count) in one transaction."""
        failpoints.hit("recurring.before_final")
        values = {"state": state, "status": "done", "lease_owner": None, "final_at": ctx.now, **values}
        await self._write(
            ctx,
            Step(
                ctx.run.id,
                ctx.owner,
                values,
                paid=(ctx.sub.id, ctx.now) if paid else None,
                notice=None if event is None else self._notice(ctx, event, values),
            ),
        )
        return state

    # -- the run ------------------------------------------------------------------------------------

    async def execute(self, run_id: int, owner: str, now: dt.datetime | None = None) -> str:
        """Carry a claimed run as far as it goes now; returns its job outcome (a final state,
        ``pending`` when it waits for something, ``lost`` when another worker holds it)."""
        try:
            loaded = await self._load(run_id, owner, now or utcnow(), claimed=True)
            if loaded is None:
                return "lost"
            ctx = loaded
            for _ in range(8):
                # every write is fenced and mirrored on ``ctx``: the next step goes on from it
                step = getattr(self, f"_step_{ctx.run.state}", None)
                if step is None:  # a final state with a stale job status
                    await self._set(ctx, status="done", lease_owner=None)
                    return ctx.run.state
                outcome: str | None = await step(ctx)
                if outcome is not None:
                    return outcome
            last = await self._load(run_id, owner, now or utcnow())
            # enough for one claim: the run goes back to the queue, the next claim goes on
            return "lost" if last is None else await self._later(last, 0)
        except Lost:
            return "lost"

    async def _stopped(self, ctx: Ctx) -> str | None:
        """A run not begun of a subscription paused or cancelled since: skipped."""
        if ctx.sub.status in ("paused", "cancelled"):
            return await self._final(
                ctx,
                "skipped",
                error_code=f"subscription_{ctx.sub.status}",
                error_message=ctx.sub.status_reason,
            )
        return None

    async def _step_checking(self, ctx: Ctx) -> str | None:
        if (stopped := await self._stopped(ctx)) is not None:
            return stopped
        sub = ctx.sub
        kind = "balance" if sub.kind == "threshold" else "debt"
        if sub.kind == "threshold" and sub.last_topup_at is not None and sub.quiet_seconds:
            if ctx.now < sub.last_topup_at + dt.timedelta(seconds=sub.quiet_seconds):
                return await self._final(ctx, "not_needed", error_code="quiet_period")
        await self._renew(ctx)
        try:
            seen = await self.observer(
                self.hub,
                service_id=ctx.template.service_id,
                account=ctx.template.account,
                kind=kind,
                channel_id=ctx.agent.channel_id,
                fields={str(k): str(v) for k, v in (ctx.template.fields or {}).items()},
            )
        except Exception as exc:  # the provider did not tell: look again, give up after a while
            # paymux.recurring.observe.ObserveError says whether asking again may help (temporary)
            message = f"{kind} not known: {exc}"[:500]
            if getattr(exc, "temporary", True) is False or ctx.run.attempts >= self.settings.observe_attempts:
                event = "run.failed" if sub.kind == "debt" else None
                return await self._final(
                    ctx, "failed", event, error_code="observe_failed", error_message=message
                )
            return await self._later(
                ctx, self._backoff(ctx), error_code="observe_failed", error_message=message
            )
        if seen.currency != ctx.run.currency:
            return await self._final(
                ctx,
                "failed",
                error_code="currency_mismatch",
                error_message=f"the provider answered in {seen.currency}, not {ctx.run.currency}",
            )
        value = int(seen.value)
        if sub.kind == "threshold":
            if sub.threshold is None or value >= sub.threshold or not sub.amount:
                return await self._final(
                    ctx, "not_needed", observed=value, error_code=None, error_message=None
                )
            await self._set(
                ctx, state="due", observed=value, amount=sub.amount, error_code=None, error_message=None
            )
            return None
        if value <= 0:
            return await self._final(ctx, "not_needed", observed=value, error_code=None, error_message=None)
        if sub.debt_limit is not None and value > sub.debt_limit:
            values = {
                "state": "awaiting_confirmation",
                "observed": value,
                "amount": value,
                "status": "pending",
                "lease_owner": None,
                "due_at": ctx.now + dt.timedelta(hours=self.settings.confirm_hours),
                "error_code": None,
                "error_message": None,
            }
            notice = self._notice(ctx, "debt.confirm", values)
            await self._write(ctx, Step(ctx.run.id, ctx.owner, values, notice=notice))
            return "awaiting_confirmation"
        await self._set(ctx, state="due", observed=value, amount=value, error_code=None, error_message=None)
        return None

    async def _step_awaiting_confirmation(self, ctx: Ctx) -> str | None:
        # claimed again only when nobody answered within confirm_hours
        return await self._final(
            ctx, "declined", error_code="not_confirmed", error_message="the customer did not confirm in time"
        )

    async def _step_due(self, ctx: Ctx) -> str | None:
        if (stopped := await self._stopped(ctx)) is not None:
            return stopped
        run, sub, customer = ctx.run, ctx.sub, ctx.customer
        amount = run.amount
        if amount is None or amount <= 0:
            return await self._final(
                ctx, "failed", "run.failed", error_code="no_amount", error_message="no amount"
            )
        if not customer.funding_account:
            return await self._final(
                ctx,
                "failed",
                "run.failed",
                error_code="no_funding_account",
                error_message="the customer has no funding account",
            )
        if sub.per_payment_limit is not None and amount > sub.per_payment_limit:
            return await self._final(
                ctx,
                "limit_exceeded",
                "run.limit_exceeded",
                error_code="per_payment_limit",
                error_message=f"{format_amount(amount, run.currency)} is above the limit of "
                f"{format_amount(sub.per_payment_limit, run.currency)} per payment",
            )
        if customer.month_limit is None:
            # one write: the state, the debit's mark and the lease (see _step_debiting)
            await self._renew(ctx, state="debiting", error_code="debit_sent")
            ctx.fresh = True
            return None
        # the month limit: decided and recorded under the customer's row lock, so two runs of one
        # customer never both pass it
        over: str | None = None
        async with self.hub.sessions() as session:
            await locked(session, Customer, customer.id)
            start, end = month_bounds(run.scheduled_at, customer.timezone)
            spent = int(
                await session.scalar(
                    select(func.coalesce(func.sum(Run.amount), 0))
                    .join(Subscription, Subscription.id == Run.subscription_id)
                    .where(
                        Subscription.customer_id == customer.id,
                        Run.state.in_(COUNTED_STATES),
                        Run.scheduled_at >= start,
                        Run.scheduled_at < end,
                        Run.id != run.id,
                    )
                )
                or 0
            )
            if spent + amount > customer.month_limit:
                over = (
                    f"{format_amount(spent, run.currency)} already this month; "
                    f"{format_amount(amount, run.currency)} more is above the monthly limit of "
                    f"{format_amount(customer.month_limit, run.currency)}"
                )
                await session.rollback()
            else:
                await self._fenced(session, ctx, {"state": "debiting"})
                await session.commit()
                ctx.run.state = "debiting"
        if over is not None:  # never open a session while holding another (SQLite's one writer)
            return await self._final(
                ctx, "limit_exceeded", "run.limit_exceeded", error_code="month_limit", error_message=over
            )
        return None

    async def _step_debiting(self, ctx: Ctx) -> str | None:
        run = ctx.run
        source = self.source(ctx.agent)
        answer: FundingAnswer | None = None
        fresh, ctx.fresh = ctx.fresh, False
        if run.error_code in DEBIT_MARKS and not fresh:
            # the debit may have left before: only its status may settle it
            answer = await source.status(run.debit_key)
            if answer.outcome == "not_found":
                answer = None  # it never arrived: sending it (same key) is safe
            elif answer.outcome in ("unknown", "unreachable") or (
                answer.kind is not None and answer.kind != "debit"
            ):
                return await self._later(ctx, self._backoff(ctx), error_message=answer.message)
        if answer is None:
            assert ctx.customer.funding_account is not None and run.amount is not None
            if not fresh:
                await self._renew(ctx, error_code="debit_sent")
            failpoints.hit("recurring.before_debit")
            answer = await source.debit(
                Debit(
                    key=run.debit_key,
                    account=ctx.customer.funding_account,
                    amount=run.amount,
                    currency=run.currency,
                    description=f"{ctx.template.name} {ctx.template.account} {run.period_key}"[:200],
                )
            )
            failpoints.hit("recurring.after_debit")
        if answer.outcome == "done":
            # the lease renewed with it: the payment is accepted next (see _accept)
            await self._renew(
                ctx, state="paying", debit_reference=answer.reference, error_code=None, error_message=None
            )
            ctx.fresh = True
            return None
        if answer.outcome == "refused":
            return await self._final(
                ctx,
                "failed",
                "run.failed",
                error_code=(answer.code or "refused")[:32],
                error_message=answer.message,
            )
        if answer.outcome == "unknown":
            return await self._later(ctx, self.settings.retry_base_seconds, error_code="debit_unknown")
        return await self._later(ctx, self._backoff(ctx))  # unreachable: send again later, same key

    async def _step_paying(self, ctx: Ctx) -> str | None:
        run = ctx.run
        recorded: dict[str, Any] = {}  # the payment's id, written with whatever comes next
        payment_id = run.payment_id
        status: str | None = None  # the payment's status as the acceptance answered it
        error_message: str | None = None
        if payment_id is None:
            accepted = await self._accept(ctx)
            if accepted is None:
                return None if ctx.run.state == "refunding" else "pending"
            payment_id, status, error_message = accepted
            recorded["payment_id"] = payment_id
        if status is None:
            async with self.hub.read_sessions() as session:
                payment = await session.get(Payment, payment_id)
            assert payment is not None
            status, error_message = payment.status, payment.error_message
        if status == "succeeded":
            return await self._final(ctx, "paid", "run.paid", paid=True, **recorded)
        if status in ("failed", "cancelled"):
            await self._renew(
                ctx,
                state="refunding",
                refund_key=refund_key(run.debit_key),
                error_code=f"payment_{status}",
                error_message=error_message,
                **recorded,
            )
            ctx.fresh = True
            return None
        return await self._later(ctx, self.settings.payment_poll_seconds, **recorded)

    async def _accept(self, ctx: Ctx) -> tuple[int, str | None, str | None] | None:
        """Accept the run's payment (idempotent by ``rec-<run id>``): its id, status and error message
        as accepted (no status when not known: read it); None when it cannot be now (the run was
        given back to the queue) or for good (the run goes refunding)."""
        run, template = ctx.run, ctx.template
        snap = await self.hub.catalog.get()
        channel = snap.channels.get(ctx.agent.channel_id)
        service = snap.services_by_id.get(template.service_id)

        async def give_up(code: str, message: str) -> None:
            await self._set(
                ctx,
                state="refunding",
                refund_key=refund_key(run.debit_key),
                error_code=code,
                error_message=message[:500],
            )

        if channel is None or service is None:
            await give_up("payment_rejected", "the recurring channel or the service is gone")
            return None
        assert run.amount is not None
        try:
            body = PaymentIn(
                external_id=f"rec-{run.id}",
                service=service.code,
                account=template.account,
                amount=format_amount(run.amount, run.currency),
                currency=run.currency,
                fields={str(k): str(v) for k, v in (template.fields or {}).items()},
            )
        except ValidationError as exc:
            await give_up("payment_rejected", f"the template makes no valid payment: {exc.errors()[:1]}")
            return None
        fresh, ctx.fresh = ctx.fresh, False
        if not fresh:  # else the lease was renewed with the debit's outcome, just now
            await self._renew(ctx)
        failpoints.hit("recurring.before_accept")
        try:
            payment, _ = await accept(self.hub, channel, body)
        except Problem as p:
            if p.status == 409 and isinstance(p.extra.get("payment_id"), int):
                # accepted before, from a template changed since
                return int(p.extra["payment_id"]), None, None
            if p.status in (400, 404, 422):
                await give_up("payment_rejected", p.detail or p.title)
                return None
            if ctx.run.attempts >= self.settings.accept_attempts:
                await give_up("payment_not_accepted", p.detail or p.title)
                return None
            await self._later(ctx, self._backoff(ctx), error_message=(p.detail or p.title)[:500])
            return None
        failpoints.hit("recurring.after_accept")
        return int(payment.id), payment.status, payment.error_message

    async def _step_refunding(self, ctx: Ctx) -> str | None:
        run = ctx.run
        assert run.amount is not None
        key = run.refund_key or refund_key(run.debit_key)
        source = self.source(ctx.agent)
        fresh, ctx.fresh = ctx.fresh, False
        # a refund sent before (lost answer, crash) is settled by its status; a run that went refunding
        # in this claim (the key and the lease written with it) has sent nothing under the key yet
        answer = (
            FundingAnswer(outcome="not_found")
            if fresh and run.refund_key == key
            else await source.status(key)
        )
        if answer.outcome == "not_found":
            if not fresh:
                await self._renew(ctx, refund_key=key)
            failpoints.hit("recurring.before_refund")
            answer = await source.refund(
                Refund(
                    key=key,
                    debit_key=run.debit_key,
                    amount=run.amount,
                    currency=run.currency,
                    reason=(run.error_message or run.error_code or "the payment failed")[:200],
                )
            )
            failpoints.hit("recurring.after_refund")
        if answer.outcome == "done" and answer.kind in (None, "refund"):
            return await self._final(ctx, "refunded", "run.failed", refund_reference=answer.reference)
        if answer.outcome == "refused":
            log.error("run %s: refund %s refused: %s %s", run.id, key, answer.code, answer.message)
            # a refused refund needs a person: the run waits in the queue, retried rarely
            return await self._later(ctx, self.settings.retry_max_seconds)
        return await self._later(ctx, self._backoff(ctx))


def month_bounds(at: dt.datetime, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """The UTC bounds [start, end) of the calendar month holding ``at`` in ``timezone``."""
    try:
        tz = zone(timezone)
    except RuleError:
        tz = zone("UTC")
    local = at.astimezone(tz)
    first = dt.datetime(local.year, local.month, 1, tzinfo=tz)
    days = calendar.monthrange(local.year, local.month)[1]
    nxt = first + dt.timedelta(days=days)
    nxt = dt.datetime(nxt.year, nxt.month, 1, tzinfo=tz)
    return first.astimezone(dt.UTC), nxt.astimezone(dt.UTC)


async def confirm_debt(
    session: AsyncSession, run_id: int, accept: bool, now: dt.datetime | None = None
) -> Run:
    """The customer's answer to a ``debt.confirm``: pay the debt (the run becomes ``due`` at once) or
    decline it. Idempotent: the same answer again returns the run; a run not awaiting a confirmation
    raises a 409 Problem (``not-awaiting-confirmation``), an unknown one 404. The caller commits."""
    run = await locked(session, Run, run_id)
    if run is None:
        raise Problem(404, "not-found", "Not found", f"run {run_id} not found")
    if run.state == "awaiting_confirmation":
        now = now or utcnow()
        if accept:
            run.state = "due"
            run.status = "pending"
            run.due_at = now
        else:
            run.state = "declined"
            run.status = "done"
            run.final_at = now
            run.error_code = "declined"
            run.error_message = "the customer declined"
        run.lease_owner = None
        run.updated_at = now
        await session.flush()
        return run
    answered = run.state == "declined" if not accept else run.state not in ("declined", "checking")
    if answered and run.observed is not None:
        return run  # the same answer again
    raise Problem(
        409,
        "not-awaiting-confirmation",
        "The run is not awaiting a confirmation",
        f"run {run_id} is {run.state}",
        state=run.state,
    )


RETRYABLE = ("failed", "limit_exceeded", "skipped", "declined")  # final, and nothing was ever debited


async def retry_run(session: AsyncSession, run_id: int, now: dt.datetime | None = None) -> Run:
    """Run a final run that never debited anything again (the back office's failed-runs queue):
    ``failed``, ``limit_exceeded``, ``skipped`` or ``declined`` go back to ``due`` (``checking`` for a
    threshold/debt run whose amount is not known), due at once, under a new debit key (the old key's
    refusal is final at the bank). Limits are checked again. 409 Problem (``cannot-retry``) for any
    other run, 404 for an unknown one. The caller commits."""
    run = await locked(session, Run, run_id)
    if run is None:
        raise Problem(404, "not-found", "Not found", f"run {run_id} not found")
    if run.state not in RETRYABLE or run.payment_id is not None or run.debit_reference is not None:
        raise Problem(
            409,
            "cannot-retry",
            "The run cannot be retried",
            f"run {run_id} is {run.state}: only a final run that debited nothing can be run again",
            state=run.state,
        )
    now = now or utcnow()
    base, _, n = run.debit_key.partition(".r")
    run.debit_key = f"{base}.r{int(n) + 1 if n.isdigit() else 1}"
    run.state = "due" if run.amount else "checking"
    run.status = "pending"
    run.due_at = now
    run.lease_owner = None
    run.attempts = 0
    run.final_at = None
    run.error_code = None
    run.error_message = None
    run.updated_at = now
    await session.flush()
    return run


class RunWorker(PollingWorker):
    """Schedules due subscriptions and executes claimed runs (``paymux serve`` / ``paymux worker``)."""

    table = Run
    name = "recurring runs"
    job_noun = "recurring run"
    owner_prefix = "r"

    def __init__(
        self, hub: Hub, settings: EngineSettings | None = None, observer: Observer | None = None
    ) -> None:
        self.settings = settings or EngineSettings()
        self.executor = Executor(hub, self.settings, observer)
        super().__init__(
            hub,
            poll_seconds=self.settings.poll_seconds,
            schedule_seconds=self.settings.schedule_seconds,
            lease_seconds=self.settings.lease_seconds,
            claim_limit=self.settings.claim_limit,
            log=log,
        )

    async def schedule(self, now: dt.datetime | None = None) -> Any:
        return await schedule_due(self.hub, now, self.settings)

    async def run_jobs(self, ids: list[int], now: dt.datetime | None) -> dict[int, str]:
        await self._preload(ids, self.owner)
        return await super().run_jobs(ids, now)

    async def run_job(self, job_id: int, now: dt.datetime | None) -> str:
        return await self.execute_claimed(job_id, self.owner, now)

    async def _preload(self, ids: list[int], owner: str) -> None:
        try:
            await self.executor.preload(ids, owner)
        except Exception:  # each run loads itself then
            self.log.exception("%s: loading the claimed runs failed", self.name)

    async def execute_claimed(self, run_id: int, owner: str, now: dt.datetime | None) -> str:
        """Carry run ``run_id`` claimed under lease ``owner`` as far as it goes now."""
        return await self.executor.execute(run_id, owner, now)

    async def run(self) -> None:
        """Keep up to ``claim_limit`` runs in flight: a finished run's place is taken by the next due
        one at once (a round of :meth:`run_round` waits for its slowest run before claiming more, and
        a run waits on HTTP calls to the bank and on the hub's delivery). Each claim has its own lease
        (fencing token), as in rounds."""
        flying: dict[asyncio.Task[str], int] = {}
        while not self._stop.is_set():
            free = self.claim_limit - len(flying)
            claimed = 0
            if free > 0:
                try:
                    if time.monotonic() >= self._next_schedule:
                        self._next_schedule = time.monotonic() + self.schedule_seconds
                        await self.schedule(None)
                    self._rounds += 1
                    owner = f"{self.worker_id}.{self._rounds}"
                    ids = await claim_due(self.hub, self.table, owner, free, self.lease_seconds)
                except Exception:
                    self.log.exception("%s: claiming failed", self.name)
                    ids, owner = [], ""
                await self._preload(ids, owner)
                for run_id in ids:
                    task = asyncio.create_task(self.execute_claimed(run_id, owner, None))
                    flying[task] = run_id
                claimed = len(ids)
            if not flying:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=self.poll_seconds)
                continue
            # every place taken: wait for one to free up; else (nothing more due) look again soon
            timeout = None if claimed >= free else self.poll_seconds
            done, _ = await asyncio.wait(flying, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                run_id = flying.pop(task)
                exc = task.exception()
                if exc is not None:
                    self.log.error("%s %s: %r", self.job_noun, run_id, exc)
                    self.finished[run_id] = "error"
                else:
                    self.finished[run_id] = task.result()
            if len(self.finished) > FINISHED_KEPT:
                for k in list(self.finished)[: FINISHED_KEPT // 2]:
                    del self.finished[k]
        if flying:
            await asyncio.gather(*flying, return_exceptions=True)


class _Disabled:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def running_recurring_worker(hub: Hub, settings: EngineSettings | None = None) -> Any:
    """Run a :class:`RunWorker` in the background for the block (nothing when disabled)."""
    settings = settings or EngineSettings()
    if not settings.enabled:
        return _Disabled()
    return running(RunWorker(hub, settings))
