"""``paymux recurring verify``: every debit ends matched by a succeeded payment or refunded.

Checks, over every run:

- a ``paid`` run has a debit (its reference) and a payment that succeeded, for the run's amount;
- a ``refunded`` run has a debit and a refund, and its payment (if any) did not succeed;
- a run that never debited (``failed``, ``limit_exceeded``, ``skipped``, ``not_needed``,
  ``declined``) has no debit reference and no payment;
- a run in flight (``debiting``, ``paying``, ``refunding``) is younger than the grace period;
- no two runs with a debit for one (subscription, period), and no payment ``rec-<run id>`` whose run
  does not know it;
- with ``bank``: the funding source agrees, where it can tell (``status`` of each key): the debit of a
  paid or refunded run is done, the refund of a refunded run is done, the debit of a failed run is not.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import httpx
from sqlalchemy import func, select

from paymux.db.base import utcnow
from paymux.funding.base import FundingSource, source_class
from paymux.payments.models import Payment
from paymux.recurring.models import Customer, RecurringAgent, Run, Subscription
from paymux.runtime import Hub

IN_FLIGHT = ("debiting", "paying", "refunding")
NEVER_DEBITED = ("failed", "limit_exceeded", "skipped", "not_needed", "declined")
CHUNK = 1000


@dataclass
class VerifyReport:
    runs: int = 0
    states: Counter[str] = field(default_factory=Counter)
    debits: int = 0  # runs whose debit was taken
    bank_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_runs(
    hub: Hub,
    *,
    grace: dt.timedelta = dt.timedelta(hours=1),
    now: dt.datetime | None = None,
    bank: bool = True,
    bank_limit: int = 100_000,
) -> VerifyReport:
    now = now or utcnow()
    report = VerifyReport()
    sources: dict[int, FundingSource | None] = {}
    async with hub.read_sessions() as s:
        dup = (
            await s.execute(
                select(Run.subscription_id, Run.period_key, func.count())
                .where(Run.debit_reference.is_not(None))
                .group_by(Run.subscription_id, Run.period_key)
                .having(func.count() > 1)
            )
        ).all()
        for sub_id, key, n in dup:
            report.problems.append(f"subscription {sub_id} period {key}: {n} runs with a debit")
        agents = {a.agent_id: a for a in (await s.scalars(select(RecurringAgent))).all()}
    last_id = 0
    async with httpx.AsyncClient(timeout=10) as http:
        while True:
            async with hub.read_sessions() as s:
                rows = (
                    await s.execute(
                        select(Run, Customer.agent_id)
                        .join(Subscription, Subscription.id == Run.subscription_id)
                        .join(Customer, Customer.id == Subscription.customer_id)
                        .where(Run.id > last_id)
                        .order_by(Run.id)
                        .limit(CHUNK)
                    )
                ).all()
                if not rows:
                    break
                last_id = rows[-1][0].id
                pay_ids = [r.payment_id for r, _ in rows if r.payment_id is not None]
                payments = {
                    p.id: p for p in (await s.scalars(select(Payment).where(Payment.id.in_(pay_ids)))).all()
                }
                ext = {
                    p.external_id: p
                    for p in (
                        await s.scalars(
                            select(Payment).where(Payment.external_id.in_([f"rec-{r.id}" for r, _ in rows]))
                        )
                    ).all()
                }
            for run, agent_id in rows:
                _check_run(run, payments, ext, now, grace, report)
                if bank and report.bank_checked < bank_limit and run.state in ("paid", "refunded", "failed"):
                    if agent_id not in sources:
                        agent = agents.get(agent_id)
                        sources[agent_id] = (
                            source_class(agent.funding_protocol)(dict(agent.funding_config), http)
                            if agent
                            else None
                        )
                    source = sources[agent_id]
                    if source is not None:
                        await _check_bank(source, run, report)
    return report


def _check_run(
    run: Run,
    payments: dict[int, Payment],
    by_external: dict[str, Payment],
    now: dt.datetime,
    grace: dt.timedelta,
    report: VerifyReport,
) -> None:
    report.runs += 1
    report.states[run.state] += 1
    name = f"run {run.id} ({run.state})"
    if run.debit_reference is not None:
        report.debits += 1
    payment = payments.get(run.payment_id) if run.payment_id is not None else None
    stray = by_external.get(f"rec-{run.id}")
    if stray is not None and (payment is None or stray.id != payment.id) and run.state != "paying":
        report.problems.append(f"{name}: payment {stray.id} rec-{run.id} is not recorded on the run")
    if run.state == "paid":
        if run.debit_reference is None:
            report.problems.append(f"{name}: paid without a debit")
        if payment is None or payment.status != "succeeded":
            report.problems.append(f"{name}: its payment {run.payment_id} did not succeed")
        elif payment.amount != run.amount:
            report.problems.append(f"{name}: paid {payment.amount}, debited {run.amount}")
    elif run.state == "refunded":
        if run.debit_reference is None or run.refund_reference is None:
            report.problems.append(f"{name}: refunded without a debit and a refund")
        if payment is not None and payment.status == "succeeded":
            report.problems.append(f"{name}: refunded although payment {payment.id} succeeded")
    elif run.state in NEVER_DEBITED:
        if run.debit_reference is not None:
            report.problems.append(f"{name}: debited ({run.debit_reference}) but ended without a payment")
        if payment is not None:
            report.problems.append(f"{name}: has payment {payment.id}")
    elif run.state in IN_FLIGHT and run.created_at < now - grace:
        report.problems.append(f"{name}: still {run.state} since {run.created_at.isoformat()}")


async def _check_bank(source: FundingSource, run: Run, report: VerifyReport) -> None:
    report.bank_checked += 1
    name = f"run {run.id} ({run.state})"
    answer = await source.status(run.debit_key)
    if answer.outcome in ("unknown", "unreachable"):
        report.problems.append(f"{name}: the bank could not tell about debit {run.debit_key}")
        return
    if run.state in ("paid", "refunded"):
        if answer.outcome != "done" or answer.kind not in (None, "debit"):
            report.problems.append(f"{name}: the bank has no done debit {run.debit_key} ({answer.outcome})")
    elif answer.outcome == "done":
        report.problems.append(f"{name}: the bank took debit {run.debit_key} of a run that failed")
    if run.state == "refunded" and run.refund_key:
        refund = await source.status(run.refund_key)
        if refund.outcome != "done" or refund.kind not in (None, "refund"):
            report.problems.append(f"{name}: the bank has no done refund {run.refund_key} ({refund.outcome})")
