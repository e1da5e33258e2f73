"""``paymux recurring simulate``: a month (or any number of days) of simulated time against the
emulators, on a database of its own.

The demo is loaded (its customers' scheduled, threshold and debt subscriptions; the bank emulator as
their funding source) and a dozen more customers each make a one-off payment of a monthly service,
which the hub remembers (hidden subscriptions). Then the clock moves an hour at a time: each hour the
recurring engine schedules and executes what is due (debit, payment through the hub's own pipeline,
refund when it fails), the reminder worker sends the reminders due, and the simulated customers
answer: a debt above the limit is confirmed, and reminders are answered in turn with repeat,
subscribe, opt out or nothing. Payments themselves are delivered to the emulated providers in real
time by the hub's workers.

The report counts charges, refunds, reminders and their conversion, and checks the guarantees from
outside: charged twice (two debits at the bank for one subscription's period), every debit matched
or refunded (``recurring verify``), and the ledger balanced.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
from sqlalchemy import func, select

from paymux.db.base import utcnow
from paymux.db.migrate import upgrade
from paymux.demo.recurring import AGENT, CHANNEL, bank_config
from paymux.demo.run import EMULATOR_APPS, EMULATORS, emulator_config, first_provider_txn_number, seed
from paymux.funding.emulator import BankApp
from paymux.funding.emulator import create_app as bank_app
from paymux.ledger.service import verify_ledger
from paymux.notifications.models import Notification
from paymux.providers.emulators.behaviour import BehaviourEngine
from paymux.providers.emulators.jsonhttp import create_app as jsonhttp_app
from paymux.providers.emulators.server import run_emulator
from paymux.recurring.engine_settings import EngineSettings
from paymux.recurring.executor import RunWorker, confirm_debt
from paymux.recurring.models import Customer, Run, Subscription
from paymux.recurring.reminders import ReminderWorker, conversion, perform
from paymux.recurring.verify import verify_runs
from paymux.runtime import Hub
from paymux.server import running_hub
from paymux.settings import Settings

STEP = dt.timedelta(hours=1)
ONE_OFF_PAYERS = 12  # customers who pay a monthly service once (and are reminded a period later)
# monthly services of the demo catalog, with an account their patterns take (the payer's number added)
ONE_OFF_SERVICES = (("mosenergo", 7000000000), ("mosvodokanal", 70000000), ("rostelecom", 700000000000))
# how the simulated customers answer reminders, in turn
ANSWERS = ("repeat", "subscribe", "opt_out", None)


@dataclass
class SimulationReport:
    days: int
    subscriptions: Counter[str] = field(default_factory=Counter)  # by kind, at the end
    runs: Counter[str] = field(default_factory=Counter)  # by state
    charged: dict[str, int] = field(default_factory=dict)  # currency -> minor units paid
    refunded: int = 0
    confirmations: int = 0
    reminders_sent: int = 0
    repeated: int = 0
    subscribed: int = 0
    opted_out: int = 0
    charged_twice: int = 0
    verify_problems: list[str] = field(default_factory=list)
    ledger_balanced: bool = False
    elapsed: float = 0.0

    @property
    def conversion_percent(self) -> Decimal:
        if not self.reminders_sent:
            return Decimal(0)
        return (Decimal(100) * (self.repeated + self.subscribed) / self.reminders_sent).quantize(
            Decimal("0.1")
        )

    @property
    def ok(self) -> bool:
        return self.charged_twice == 0 and not self.verify_problems and self.ledger_balanced


async def simulate(
    settings: Settings, days: int, *, progress: Callable[[int, int], None] | None = None
) -> SimulationReport:
    """Simulate ``days`` days (see the module's note) on the database of ``settings``."""
    started = time.monotonic()
    report = SimulationReport(days)
    os.environ["PAYMUX_RECURRING_ENABLED"] = "false"  # the hub's own engine stays out: we drive it
    # no SMS gateway or SMTP server here: notices are recorded (and answered), their sending fails
    logging.getLogger("paymux.notifications").setLevel(logging.ERROR)
    await asyncio.to_thread(upgrade, settings.database_url)
    hub = Hub(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            urls: dict[str, str] = {}
            txn_start = await first_provider_txn_number(hub)
            for code in EMULATORS:
                app = EMULATOR_APPS.get(code, jsonhttp_app)(engine=_engine(code, txn_start))
                urls[code] = await stack.enter_async_context(run_emulator(app))
            bank: BankApp = bank_app(bank_config())
            bank_url = await stack.enter_async_context(run_emulator(bank))
            info = await seed(hub, urls, bank_url=bank_url)
            base = await stack.enter_async_context(running_hub(hub, run_workers=True))
            await _one_off_payments(hub, base, info.channel_keys[CHANNEL])
            engine = RunWorker(
                hub, EngineSettings(enabled=True, payment_poll_seconds=60, retry_base_seconds=60)
            )
            reminders = ReminderWorker(hub)
            now = utcnow()
            end = now + dt.timedelta(days=days)
            answered: set[int] = set()
            steps = int((end - now) / STEP)
            for i in range(steps):
                now += STEP
                await _hour(hub, engine, reminders, now, report, answered)
                if progress:
                    progress(i + 1, steps)
            await _settle(hub, engine, now)
            await _count(hub, bank, report, now)
    finally:
        await hub.close()
        os.environ.pop("PAYMUX_RECURRING_ENABLED", None)
    report.elapsed = time.monotonic() - started
    return report


def _engine(code: str, txn_start: int) -> BehaviourEngine:
    cfg = emulator_config(code, txn_start)
    # faults stay (failover, refunds), but no long holds: a simulated hour is a few real milliseconds
    return BehaviourEngine(cfg.model_copy(update={"lost_hold_ms": 200, "latency_ms": 1, "jitter_ms": 5}))


async def _one_off_payments(hub: Hub, base: str, key: str) -> None:
    """Customers known to the bank pay a monthly service once, naming themselves (the hub remembers
    the payment and reminds them a period later)."""
    from paymux.catalog.models import Agent

    async with hub.sessions() as session:
        agent = await session.scalar(select(Agent).where(Agent.code == AGENT))
        assert agent is not None
        for i in range(ONE_OFF_PAYERS):
            ref = f"P-{3001 + i}"
            if not await session.scalar(
                select(Customer.id).where(Customer.agent_id == agent.id, Customer.reference == ref)
            ):
                session.add(
                    Customer(
                        agent_id=agent.id,
                        reference=ref,
                        name=f"Payer {i + 1}",
                        phone=f"+7916000{3001 + i:04d}",
                        email=f"payer{i + 1}@example.org",
                        currency="RUB",
                    )
                )
        await session.commit()
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as http:
        ids = []
        for i in range(ONE_OFF_PAYERS):
            service, account = ONE_OFF_SERVICES[i % len(ONE_OFF_SERVICES)]
            body = {
                "external_id": f"sim-oneoff-{i}-{time.time_ns()}",
                "service": service,
                "account": str(account + i + 1),
                "amount": f"{300 + 25 * i}.00",
                "currency": "RUB",
                "customer": f"P-{3001 + i}",
            }
            r = await http.post("/api/v1/payments", json=body)
            if r.status_code >= 400:
                raise RuntimeError(f"one-off payment refused: {r.status_code} {r.text}")
            ids.append(r.json()["id"])
        for payment_id in ids:  # wait (real time) until each is final
            for _ in range(600):
                r = await http.get(f"/api/v1/payments/{payment_id}")
                if r.json().get("status") in ("succeeded", "failed", "cancelled"):
                    break
                await asyncio.sleep(0.05)


async def _hour(
    hub: Hub,
    engine: RunWorker,
    reminders: ReminderWorker,
    now: dt.datetime,
    report: SimulationReport,
    answered: set[int],
) -> None:
    await _drain(hub, engine, now)
    await reminders.run_once(now)
    async with hub.sessions() as session:
        waiting = (await session.scalars(select(Run.id).where(Run.state == "awaiting_confirmation"))).all()
        for run_id in waiting:  # the customer confirms (the notification carried the action)
            await confirm_debt(session, run_id, True, now)
            report.confirmations += 1
        await session.commit()
    if waiting:
        await _drain(hub, engine, now)
    await _answer_reminders(hub, now, answered)


async def _drain(hub: Hub, engine: RunWorker, now: dt.datetime, within: float = 30.0) -> None:
    """Rounds at ``now`` until no run is in flight except those waiting for later (a payment still
    being delivered in real time is waited for)."""
    deadline = time.monotonic() + within
    while True:
        await engine.run_round(now)
        async with hub.read_sessions() as session:
            busy = await session.scalar(
                select(func.count())
                .select_from(Run)
                .where(Run.status.in_(("pending", "running")), Run.due_at <= now)
            )
            paying = await session.scalar(
                select(func.count())
                .select_from(Run)
                .where(Run.state == "paying", Run.status.in_(("pending", "running")))
            )
        if not busy and not paying:
            return
        if time.monotonic() > deadline:
            return  # left for the next hour (a provider still holding an answer)
        if not busy:  # payments in flight: let the hub deliver them, then look again
            await asyncio.sleep(0.05)
            now_due = now + dt.timedelta(minutes=5)
            await engine.run_round(now_due)
        await asyncio.sleep(0.01)


async def _answer_reminders(hub: Hub, now: dt.datetime, answered: set[int]) -> None:
    async with hub.read_sessions() as session:
        sent = (
            await session.scalars(
                select(Notification)
                .where(Notification.event == "reminder.repeat", Notification.channel == "sms")
                .order_by(Notification.id)
            )
        ).all()
    for n in sent:
        if n.id in answered:
            continue
        answered.add(n.id)
        answer = ANSWERS[len(answered) % len(ANSWERS) - 1]
        tokens = [a.get("token") for a in (n.payload or {}).get("actions", []) if isinstance(a, dict)]
        token = next((t for t in tokens if t), None)
        if answer is None or token is None:
            continue
        await perform(hub, answer, token, agent_id=n.agent_id, now=now)  # type: ignore[arg-type]


async def _settle(hub: Hub, engine: RunWorker, now: dt.datetime) -> None:
    """After the last hour: let what is in flight finish (a few simulated hours more)."""
    for _ in range(12):
        now += dt.timedelta(minutes=10)
        await _drain(hub, engine, now)


async def _count(hub: Hub, bank: BankApp, report: SimulationReport, now: dt.datetime) -> None:
    async with hub.read_sessions() as session:
        report.subscriptions = Counter(
            {
                k: int(n)
                for k, n in (
                    await session.execute(select(Subscription.kind, func.count()).group_by(Subscription.kind))
                ).all()
            }
        )
        runs = (
            await session.execute(
                select(
                    Run.state, Run.currency, Run.amount, Run.debit_key, Run.subscription_id, Run.period_key
                )
            )
        ).all()
        check = await verify_ledger(session)
        report.ledger_balanced = check.balanced
        conv = await conversion(
            session, since=now - dt.timedelta(days=report.days + 40), until=now + dt.timedelta(days=1)
        )
    for state, currency, amount, _key, _sub, _period in runs:
        report.runs[state] += 1
        if state == "paid" and amount:
            report.charged[currency] = report.charged.get(currency, 0) + amount
        if state == "refunded":
            report.refunded += 1
    report.reminders_sent, report.repeated = conv.sent, conv.repeated
    report.subscribed, report.opted_out = conv.subscribed, conv.opted_out
    # charged twice, seen from the bank: debits (done, not given back) per subscription period
    period_of = {key: (sub, period) for _s, _c, _a, key, sub, period in runs}
    held: Counter[tuple[int, str]] = Counter()
    for op in bank.bank.operations.values():
        if op.kind == "debit" and op.status == "done" and op.refunded < op.amount:
            where = period_of.get(op.key)
            if where is not None:
                held[where] += 1
    report.charged_twice = sum(1 for n in held.values() if n > 1)
    verified = await verify_runs(
        hub, grace=dt.timedelta(minutes=0), now=now + dt.timedelta(days=1), bank=True
    )
    report.verify_problems = list(verified.problems)
