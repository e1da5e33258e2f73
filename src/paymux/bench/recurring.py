"""``paymux bench --recurring N``: the recurring engine over N subscriptions, next to the hub's payment
rate measured in the same run.

In-process, on a scratch database (a SQLite file, or a PostgreSQL database whose schema is recreated):

1. the demo catalog (its internet bank ``ibank`` of the agent ``bank`` is the recurring channel), the
   demo's provider emulators (JSON/HTTP, OSMP, Cyberplat on loopback, their faults kept, holds short)
   and the bank emulator (``paymux.funding.emulator``) on loopback as the funding source;
2. N customers, N templates and N subscriptions (every 30 days, in UTC) loaded with Core ``INSERT``s in
   chunks (explicit ids, nothing kept in memory but the chunk), their first charges spread over the
   coming 29 days;
3. a slice of M of them (``--recurring-due``; every (N/M)-th) is released: its charge moved to the
   current minute in one ``UPDATE``. From that moment (the *release*) the scheduler and
   ``--recurring-workers`` :class:`~paymux.recurring.executor.RunWorker` s (each scheduling and
   executing, as in ``paymux serve``) work in real time, with the hub's own payment workers delivering
   the payments, until every run of the slice is final;
4. the hub's plain payment rate: as many plain payments (``--recurring-payments``, default M) accepted
   through the same pipeline (:func:`paymux.payments.service.accept`, the same channel and service)
   by as many concurrent callers as the run workers execute at once, until all are final;
5. checks: ``recurring verify`` (every debit matched or refunded), the bank's own books (a done debit
   per subscription period at most: *doubled*), the ledger balanced.

Figures: runs settled per second (from the release to the last final run), plain payments final per
second, scheduling lateness (the moment a worker first started the run minus the moment it was due,
the release for a charge that was already due then) p50/p99, a run's time to final p50/p99, resident
memory (peak, and at 10 % and 90 % of the load and of the run: flat means the 90 % figure is within a
few MiB of the 10 % one).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, text, update

FINAL_PAYMENT = ("succeeded", "failed", "cancelled")
CHUNK = 5_000  # rows per INSERT transaction
BANK_ACCOUNTS = 16  # customers share the bank's accounts (the bank's books stay small)
EVERY_DAYS = 30
SERVICE = "mts-topup"  # the demo's mobile top-up: cheapest of fastpay and flakypay (faults and all)
MIB = 2**20


@dataclass
class RecurringBenchOptions:
    subscriptions: int = 1_000_000
    due: int | None = None  # default min(20,000, N // 30), at least 1
    workers: int = 2  # RunWorkers (each schedules and executes)
    claim_limit: int = 25  # runs each worker executes at once
    payments: int | None = None  # plain payments for the hub's rate; default = due
    timeout: float | None = None  # seconds for the runs to settle; default 120 + due / 5
    progress: bool = True

    def resolve(self) -> None:
        if self.subscriptions < 1:
            raise ValueError("--recurring must be the number of subscriptions (at least 1)")
        if self.due is None:
            self.due = max(1, min(20_000, self.subscriptions // 30))
        if not 1 <= self.due <= self.subscriptions:
            raise ValueError("--recurring-due must be between 1 and the number of subscriptions")
        if self.workers < 1 or not 1 <= self.claim_limit <= 1000:
            raise ValueError("--recurring-workers must be >= 1 and the claim limit 1..1000")
        if self.payments is None:
            self.payments = self.due
        if self.payments < 0:
            raise ValueError("--recurring-payments must be >= 0")
        if self.timeout is None:
            self.timeout = 120.0 + self.due / 5


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rss() -> int:
    """This process's resident memory in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Memory:
    """Resident memory: the peak (sampled in the background) and named marks."""

    def __init__(self) -> None:
        self.peak = rss()
        self.marks: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def mark(self, name: str) -> None:
        now = rss()
        self.peak = max(self.peak, now)
        self.marks.setdefault(name, round(now / MIB, 1))

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss())
            await asyncio.sleep(0.1)

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Bar:
    """A progress bar on stderr (one line per 10 % when stderr is not a terminal)."""

    def __init__(self, label: str, total: int, enabled: bool = True) -> None:
        self.label, self.total, self.enabled = label, max(total, 1), enabled
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()
        self._tenth = -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        frac = min(done / self.total, 1.0)
        rate = done / max(time.monotonic() - self.t0, 1e-9)
        if self.tty:
            filled = int(frac * 30)
            bar = "#" * filled + "." * (30 - filled)
            sys.stderr.write(f"\r{self.label} [{bar}] {done:,}/{self.total:,} ({rate:,.0f}/s)")
            sys.stderr.flush()
        elif int(frac * 10) > self._tenth:
            self._tenth = int(frac * 10)
            say(f"{self.label}: {done:,}/{self.total:,} ({rate:,.0f}/s)")

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _ms(values: list[float], p: float) -> float:
    """Nearest-rank percentile ``p`` (0..100) of sorted seconds, in milliseconds."""
    if not values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(values)))
    return round(values[min(rank, len(values)) - 1] * 1000, 1)


async def run_recurring_bench(url: str, opts: RecurringBenchOptions, backend: str) -> dict[str, Any]:
    """The whole recurring benchmark on the (scratch) database at ``url``; returns its figures."""
    from paymux.db.migrate import upgrade
    from paymux.runtime import Hub
    from paymux.settings import Settings

    opts.resolve()
    assert opts.due is not None and opts.payments is not None and opts.timeout is not None
    result: dict[str, Any] = {
        "backend": backend,
        "subscriptions": opts.subscriptions,
        "due": opts.due,
        "workers": opts.workers,
        "claim_limit": opts.claim_limit,
    }
    saved = os.environ.get("PAYMUX_RECURRING_ENABLED")
    os.environ["PAYMUX_RECURRING_ENABLED"] = "false"  # the hub's own engine stays out: the bench runs it
    quiet = ("paymux.notifications", "paymux.recurring.executor", "paymux.providers", "paymux.worker")
    levels = {name: logging.getLogger(name).level for name in quiet}
    for name in quiet:  # faults of the emulators are expected; notices have nowhere to go
        logging.getLogger(name).setLevel(logging.CRITICAL)
    memory = Memory()
    memory.start()
    try:
        await asyncio.to_thread(upgrade, url)
        settings = Settings().model_copy(update={"database_url": url})
        hub = Hub(settings)
        try:
            await _bench(hub, opts, result, memory)
        finally:
            await hub.close()
    finally:
        await memory.stop()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if saved is None:
            os.environ.pop("PAYMUX_RECURRING_ENABLED", None)
        else:
            os.environ["PAYMUX_RECURRING_ENABLED"] = saved
    result["rss_mib"] = {"peak": round(memory.peak / MIB, 1), **memory.marks}
    marks = memory.marks
    if "load_10" in marks and "load_90" in marks:
        result["rss_growth_load_mib"] = round(marks["load_90"] - marks["load_10"], 1)
    if "run_10" in marks and "run_90" in marks:
        result["rss_growth_run_mib"] = round(marks["run_90"] - marks["run_10"], 1)
    return result


async def _bench(hub: Any, opts: RecurringBenchOptions, result: dict[str, Any], memory: Memory) -> None:
    from paymux.demo.recurring import AGENT, BANK_TOKEN, CHANNEL
    from paymux.demo.run import EMULATOR_APPS, EMULATORS, first_provider_txn_number, seed
    from paymux.funding.emulator import BankAccount, BankApp, BankConfig
    from paymux.funding.emulator import create_app as bank_app
    from paymux.providers.emulators.jsonhttp import create_app as jsonhttp_app
    from paymux.providers.emulators.server import run_emulator
    from paymux.server import running_hub

    assert opts.due is not None and opts.payments is not None
    async with contextlib.AsyncExitStack() as stack:
        urls: dict[str, str] = {}
        txn_start = await first_provider_txn_number(hub)
        for code in EMULATORS:
            app = EMULATOR_APPS.get(code, jsonhttp_app)(engine=_engine(code, txn_start))
            urls[code] = await stack.enter_async_context(run_emulator(app))
        accounts = {
            _bank_account(i): BankAccount(currency="RUB", balance="1000000000.00")
            for i in range(BANK_ACCOUNTS)
        }
        bank: BankApp = bank_app(BankConfig(accounts=accounts, token=BANK_TOKEN, reference_prefix="CORE-"))
        bank_url = await stack.enter_async_context(run_emulator(bank))
        await seed(hub, urls, keys=False)
        ids = await _prepare(hub, AGENT, CHANNEL, bank_url, BANK_TOKEN)
        say(f"recurring ({result['backend']}): loading {opts.subscriptions:,} customers and subscriptions")
        t0 = time.monotonic()
        bases = await _load(hub, opts, ids, memory)
        result["load_seconds"] = round(time.monotonic() - t0, 1)
        result["load_subscriptions_per_s"] = round(opts.subscriptions / max(result["load_seconds"], 1e-9))
        await stack.enter_async_context(running_hub(hub, run_workers=True))
        await _run(hub, opts, bases, result, memory)
        await _plain(hub, opts, ids, result)
        await _check(hub, bank, bases["subscriptions"], result)


def _engine(code: str, txn_start: int) -> Any:
    from paymux.demo.run import emulator_config
    from paymux.providers.emulators.behaviour import BehaviourEngine

    cfg = emulator_config(code, txn_start)
    # faults stay (failover, refunds), latencies short: a run's time is the hub's, not the emulator's
    return BehaviourEngine(cfg.model_copy(update={"lost_hold_ms": 200, "latency_ms": 1, "jitter_ms": 5}))


def _bank_account(i: int) -> str:
    return f"4081781099{i:010d}"


def _phone_account(i: int) -> str:
    return f"9{i % 1_000_000_000:09d}"


def _amount(i: int) -> int:
    return 10_000 + (i % 50) * 100  # 100.00 .. 149.00 RUB


async def _prepare(hub: Any, agent_code: str, channel_code: str, bank_url: str, token: str) -> dict[str, int]:
    """The agent's recurring settings (the bank emulator; no upcoming notices); the demo's own
    subscriptions paused (only the loaded ones run)."""
    from paymux.catalog.models import Agent, Channel, Service
    from paymux.recurring.models import RecurringAgent, Subscription

    async with hub.sessions() as session:
        agent_id = await session.scalar(select(Agent.id).where(Agent.code == agent_code))
        channel_id = await session.scalar(select(Channel.id).where(Channel.code == channel_code))
        service_id = await session.scalar(select(Service.id).where(Service.code == SERVICE))
        assert agent_id is not None and channel_id is not None and service_id is not None
        settings = await session.get(RecurringAgent, agent_id)
        if settings is None:
            settings = RecurringAgent(agent_id=agent_id, channel_id=channel_id, funding_protocol="jsonhttp")
            session.add(settings)
        settings.channel_id = channel_id
        settings.funding_config = {"url": bank_url, "token": token}
        settings.upcoming_lead_hours = 0
        settings.catch_up_hours = 72
        settings.enabled = True
        await session.execute(update(Subscription).values(status="paused", next_due_at=None))
        await session.commit()
    return {"agent": int(agent_id), "channel": int(channel_id), "service": int(service_id)}


async def _next_id(session: Any, table: Any) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(table.c.id), 0)))) + 1


async def _load(hub: Any, opts: RecurringBenchOptions, ids: dict[str, int], memory: Memory) -> dict[str, int]:
    """Insert N customers, templates and subscriptions in chunks; release the due slice."""
    from paymux.recurring.models import Customer, Subscription, Template

    customers, templates, subscriptions = (
        cast(Table, Customer.__table__),
        cast(Table, Template.__table__),
        cast(Table, Subscription.__table__),
    )
    n = opts.subscriptions
    async with hub.sessions() as session:
        bases = {
            "customers": await _next_id(session, customers),
            "templates": await _next_id(session, templates),
            "subscriptions": await _next_id(session, subscriptions),
        }
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    today = now.date()
    bar = Bar("loading subscriptions", n, opts.progress)
    for lo in range(0, n, CHUNK):
        hi = min(lo + CHUNK, n)
        c_rows, t_rows, s_rows = [], [], []
        for i in range(lo, hi):
            cid, tid, sid = bases["customers"] + i, bases["templates"] + i, bases["subscriptions"] + i
            c_rows.append(
                {
                    "id": cid,
                    "agent_id": ids["agent"],
                    "reference": f"B-{i}",
                    "language": "en",
                    "timezone": "UTC",
                    "funding_account": _bank_account(i % BANK_ACCOUNTS),
                    "currency": "RUB",
                    "reminders": False,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            t_rows.append(
                {
                    "id": tid,
                    "customer_id": cid,
                    "key": "bench",
                    "name": "Phone",
                    "service_id": ids["service"],
                    "account": _phone_account(i),
                    "fields": {},
                    "amount": _amount(i),
                    "currency": "RUB",
                    "deleted": False,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            start = today + dt.timedelta(days=1 + i % (EVERY_DAYS - 1))
            s_rows.append(
                {
                    "id": sid,
                    "customer_id": cid,
                    "template_id": tid,
                    "key": "bench",
                    "kind": "scheduled",
                    "status": "active",
                    "currency": "RUB",
                    "amount": _amount(i),
                    "period": "days",
                    "every_days": EVERY_DAYS,
                    "time_of_day": "09:00",
                    "start_date": start,
                    "runs_paid": 0,
                    "next_due_at": dt.datetime.combine(start, dt.time(9, 0), dt.UTC),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        async with hub.sessions() as session:
            await session.execute(insert(customers), c_rows)
            await session.execute(insert(templates), t_rows)
            await session.execute(insert(subscriptions), s_rows)
            await session.commit()
        del c_rows, t_rows, s_rows
        bar.update(hi)
        if hi >= n * 0.1:
            memory.mark("load_10")
        if hi >= n * 0.9:
            memory.mark("load_90")
    bar.close()
    if not hub.sqlite:  # explicit ids: move the sequences past them
        async with hub.sessions() as session:
            for table in ("recurring_customers", "recurring_templates", "recurring_subscriptions"):
                await session.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
            await session.commit()
    return bases


async def _release(hub: Any, opts: RecurringBenchOptions, base: int) -> dt.datetime:
    """Move the charge of every (N/M)-th subscription to the current minute (due now); returns the
    moment they became due (the commit)."""
    from paymux.recurring.models import Subscription

    assert opts.due is not None
    stride = opts.subscriptions // opts.due
    at = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    async with hub.sessions() as session:
        await session.execute(
            update(Subscription)
            .where(
                Subscription.id >= base,
                Subscription.id < base + stride * opts.due,
                (Subscription.id - base) % stride == 0,
            )
            .values(start_date=at.date(), time_of_day=at.strftime("%H:%M"), next_due_at=at)
        )
        await session.commit()
    return dt.datetime.now(dt.UTC)


async def _run(
    hub: Any, opts: RecurringBenchOptions, bases: dict[str, int], result: dict[str, Any], memory: Memory
) -> None:
    from paymux.recurring.engine_settings import EngineSettings
    from paymux.recurring.executor import RunWorker
    from paymux.recurring.models import Run
    from paymux.worker.jobs import running

    assert opts.due is not None and opts.timeout is not None
    engine = EngineSettings(
        enabled=True,
        poll_seconds=0.05,
        schedule_seconds=0.5,
        claim_limit=opts.claim_limit,
        batch=500,
        payment_poll_seconds=0.25,
        retry_base_seconds=1.0,
        retry_max_seconds=10.0,
    )
    started: dict[int, dt.datetime] = {}  # run id -> first claimed by a worker (a run of the slice each)

    class TimedWorker(RunWorker):
        async def execute_claimed(self, run_id: int, owner: str, now: dt.datetime | None) -> str:
            started.setdefault(run_id, dt.datetime.now(dt.UTC))
            return await super().execute_claimed(run_id, owner, now)

    base = bases["subscriptions"]
    say(f"recurring ({result['backend']}): {opts.due:,} charges due now; {opts.workers} run workers")
    released = await _release(hub, opts, base)
    t0 = time.monotonic()
    bar = Bar("runs final", opts.due, opts.progress)
    done = 0
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(opts.workers):
            await stack.enter_async_context(running(TimedWorker(hub, engine)))
        while time.monotonic() - t0 < opts.timeout:
            await asyncio.sleep(0.5)
            async with hub.read_sessions() as session:
                done = int(
                    await session.scalar(
                        select(func.count())
                        .select_from(Run)
                        .where(Run.subscription_id >= base, Run.status == "done")
                    )
                    or 0
                )
            bar.update(done)
            if done >= opts.due * 0.1:
                memory.mark("run_10")
            if done >= opts.due * 0.9:
                memory.mark("run_90")
            if done >= opts.due:
                break
    bar.close()
    result["run_wall_seconds"] = round(time.monotonic() - t0, 1)
    # the figures, read back in pages (a float or two per run of the slice; nothing per subscription)
    states: Counter[str] = Counter()
    late: list[float] = []  # first start by a worker - due
    created_lag: list[float] = []  # created by the scheduler - due
    settle: list[float] = []
    last_final: dt.datetime | None = None
    last_id = 0
    while True:
        async with hub.read_sessions() as session:
            rows = (
                await session.execute(
                    select(Run.id, Run.state, Run.scheduled_at, Run.created_at, Run.final_at)
                    .where(Run.subscription_id >= base, Run.id > last_id)
                    .order_by(Run.id)
                    .limit(CHUNK)
                )
            ).all()
        if not rows:
            break
        last_id = rows[-1][0]
        for run_id, state, scheduled, created, final in rows:
            states[state] += 1
            due_from = max(scheduled, released)
            created_lag.append(max((created - due_from).total_seconds(), 0.0))
            if run_id in started:
                late.append(max((started[run_id] - due_from).total_seconds(), 0.0))
            if final is not None:
                settle.append(max((final - due_from).total_seconds(), 0.0))
                last_final = final if last_final is None or final > last_final else last_final
    late.sort()
    created_lag.sort()
    settle.sort()
    result["runs"] = dict(sorted(states.items()))
    result["runs_created"] = sum(states.values())
    result["runs_final"] = len(settle)
    span = (last_final - released).total_seconds() if last_final is not None else 0.0
    result["run_seconds"] = round(span, 2)
    result["runs_per_s"] = round(len(settle) / span, 1) if span > 0 else 0.0
    result["lateness_ms"] = {"p50": _ms(late, 50), "p99": _ms(late, 99), "max": _ms(late, 100)}
    result["created_lag_ms"] = {
        "p50": _ms(created_lag, 50),
        "p99": _ms(created_lag, 99),
        "max": _ms(created_lag, 100),
    }
    result["time_to_final_ms"] = {"p50": _ms(settle, 50), "p99": _ms(settle, 99), "max": _ms(settle, 100)}


async def _plain(hub: Any, opts: RecurringBenchOptions, ids: dict[str, int], result: dict[str, Any]) -> None:
    """The hub's plain payment rate: the same pipeline, channel and service, as many callers as the run
    workers execute runs at once."""
    from paymux.errors import Problem
    from paymux.money import format_amount
    from paymux.payments.models import Payment
    from paymux.payments.schemas import PaymentIn
    from paymux.payments.service import accept

    assert opts.payments is not None
    n = opts.payments
    if n == 0:
        return
    say(f"recurring ({result['backend']}): the hub's payment rate, {n:,} plain payments")
    async with hub.read_sessions() as session:
        first = int(await session.scalar(select(func.coalesce(func.max(Payment.id), 0))) or 0) + 1
    snap = await hub.catalog.get()
    channel = snap.channels[ids["channel"]]
    tag = time.time_ns()
    counter = iter(range(n))
    refused = 0

    async def caller() -> None:
        nonlocal refused
        for i in counter:
            body = PaymentIn(
                external_id=f"bench-plain-{tag}-{i}",
                service=SERVICE,
                account=_phone_account(i),
                amount=format_amount(_amount(i), "RUB"),
                currency="RUB",
            )
            try:
                await accept(hub, channel, body)
            except Problem:
                refused += 1

    start = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(opts.workers * opts.claim_limit)))
    accepted_s = time.monotonic() - t0
    bar = Bar("plain payments final", n, opts.progress)
    deadline = time.monotonic() + 120 + n / 5
    final = 0
    while time.monotonic() < deadline:
        async with hub.read_sessions() as session:
            final = int(
                await session.scalar(
                    select(func.count())
                    .select_from(Payment)
                    .where(Payment.id >= first, Payment.status.in_(FINAL_PAYMENT))
                )
                or 0
            )
        bar.update(final)
        if final >= n - refused:
            break
        await asyncio.sleep(0.25)
    bar.close()
    async with hub.read_sessions() as session:
        last = await session.scalar(select(func.max(Payment.final_at)).where(Payment.id >= first))
    span = (last - start).total_seconds() if last is not None else 0.0
    result["payments"] = {
        "payments": n,
        "refused": refused,
        "final": final,
        "accepted_per_s": round((n - refused) / accepted_s, 1) if accepted_s > 0 else 0.0,
        "final_per_s": round(final / span, 1) if span > 0 else 0.0,
        "seconds": round(span, 2),
    }
    rate = result["payments"]["final_per_s"]
    result["runs_vs_payments"] = round(result.get("runs_per_s", 0.0) / rate, 3) if rate else None


async def _check(hub: Any, bank: Any, base: int, result: dict[str, Any]) -> None:
    """Doubled charges from the bank's own books, ``recurring verify``, the ledger."""
    from paymux.ledger.service import verify_ledger
    from paymux.recurring.verify import verify_runs

    say(f"recurring ({result['backend']}): checking (bank, runs, ledger)")
    result["bank_debits"], result["doubled"] = doubled(list(bank.bank.operations.values()))
    report = await verify_runs(
        hub, grace=dt.timedelta(0), now=dt.datetime.now(dt.UTC) + dt.timedelta(days=1), bank=False
    )
    result["verify_problems"] = len(report.problems)
    result["verify_sample"] = report.problems[:10]
    async with hub.read_sessions() as session:
        ledger = await verify_ledger(session)
    result["ledger_balanced"] = bool(ledger.balanced)
    result["ok"] = (
        result["doubled"] == 0
        and not report.problems
        and result["ledger_balanced"]
        and result.get("runs_final") == result["due"]
    )


def doubled(operations: list[Any]) -> tuple[int, int]:
    """(done debits, subscription periods charged twice) in the bank's books: a period is charged twice
    when two debits under its keys (``rec-<subscription>-<period>``, ``.rN`` for a retry) are done and
    not given back in full."""
    held: Counter[str] = Counter()
    debits = 0
    for op in operations:
        if op.kind == "debit" and op.status == "done":
            debits += 1
            if op.refunded < op.amount:
                held[op.key.split(".r", 1)[0]] += 1
    return debits, sum(1 for k in held.values() if k > 1)


def table(r: dict[str, Any]) -> list[str]:
    """The recurring section of the bench's table."""
    pay = r.get("payments", {})
    mem = r.get("rss_mib", {})
    lines = [
        f"recurring ({r['backend']}, {r['subscriptions']:,} subscriptions, {r['due']:,} due at once,"
        f" {r['workers']} run workers x {r['claim_limit']}):",
        f"  load              {r.get('load_seconds', 0)} s ({r.get('load_subscriptions_per_s', 0):,}"
        " subscriptions/s with customer and template)",
        f"  runs              {r.get('runs_final', 0):,} final of {r.get('runs_created', 0):,} in"
        f" {r.get('run_seconds', 0)} s: {r.get('runs_per_s', 0)} runs/s  "
        + ", ".join(f"{k} {v:,}" for k, v in r.get("runs", {}).items()),
    ]
    if pay:
        lines.append(
            f"  payment rate      {pay['final_per_s']} final/s ({pay['accepted_per_s']} accepted/s) over"
            f" {pay['payments']:,} plain payments; runs/payments {r.get('runs_vs_payments')}"
        )
    lat, fin = r.get("lateness_ms", {}), r.get("time_to_final_ms", {})
    lines += [
        f"  lateness          p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms, max {lat.get('max')} ms"
        " (first started by a worker - due)",
        f"  created           p50 {r.get('created_lag_ms', {}).get('p50')} ms, p99"
        f" {r.get('created_lag_ms', {}).get('p99')} ms (the scheduler's batch began - due)",
        f"  time to final     p50 {fin.get('p50')} ms, p99 {fin.get('p99')} ms, max {fin.get('max')} ms",
        f"  memory (RSS)      peak {mem.get('peak')} MiB; load 10 % {mem.get('load_10')} -> 90 %"
        f" {mem.get('load_90')} MiB; runs 10 % {mem.get('run_10')} -> 90 % {mem.get('run_90')} MiB",
        f"  doubled           {r.get('doubled')} ({r.get('bank_debits', 0):,} debits at the bank);"
        f" verify problems {r.get('verify_problems')}; ledger balanced"
        f" {'yes' if r.get('ledger_balanced') else 'NO'}",
    ]
    for p in r.get("verify_sample", []):
        lines.append(f"    {p}")
    return lines


def bench_main(
    urls: list[tuple[str, str]], opts: RecurringBenchOptions, on_result: Callable[[str, dict[str, Any]], None]
) -> None:
    """Run on each (backend, URL) in turn (used by :func:`paymux.bench.runner.run_bench`)."""

    async def main() -> None:
        for backend, url in urls:
            on_result(backend, await run_recurring_bench(url, opts, backend))

    asyncio.run(main())
