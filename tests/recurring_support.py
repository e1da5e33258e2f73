"""The recurring engine against real emulators: a hub serving on loopback (payment worker running,
providers emulated over HTTP), the bank emulator over HTTP, and recurring rounds driven by the test
with an injected clock."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from harness import Env, hub_env
from paymux.catalog.models import Agent, Channel, Service
from paymux.funding.emulator import BankApp, BankConfig, create_app
from paymux.ledger.service import verify_ledger
from paymux.notifications.models import Notification
from paymux.payments.models import Payment
from paymux.providers.emulators.server import run_emulator
from paymux.recurring.engine_settings import EngineSettings
from paymux.recurring.executor import Observer, RunWorker
from paymux.recurring.models import Customer, RecurringAgent, Run, Subscription, Template
from paymux.recurring.planning import first_look
from paymux.recurring.verify import verify_runs

ACCOUNT = "40817810000000000001"
PHONE_ACCOUNT = "9001234567"
T0 = dt.datetime(2026, 12, 7, 5, 0, tzinfo=dt.UTC)  # 08:00 in Moscow, an hour before 09:00 charges


def engine_settings(**overrides: Any) -> EngineSettings:
    values: dict[str, Any] = {
        "poll_seconds": 0.05,
        "schedule_seconds": 0.05,
        "lease_seconds": 30,
        "payment_poll_seconds": 0.5,
        "retry_base_seconds": 1,
        "retry_max_seconds": 5,
        "claim_limit": 50,
    }
    values.update(overrides)
    return EngineSettings(**values)


@dataclass
class Observed:
    value: int
    currency: str = "RUB"


@dataclass(frozen=True)
class Sent:
    event: str
    key: str
    data: dict[str, Any]
    actions: tuple[str, ...]
    body: str


@dataclass
class FakeObserver:
    """Balances and debts by account, for threshold and debt runs (unit level)."""

    values: dict[tuple[str, str], int] = field(default_factory=dict)
    calls: int = 0
    fail: bool = False
    temporary: bool = True

    async def __call__(self, hub: Any, *, service_id: int, account: str, kind: str, **_: Any) -> Observed:
        self.calls += 1
        if self.fail:
            exc = RuntimeError("provider check failed")
            exc.temporary = self.temporary  # type: ignore[attr-defined]  # as ObserveError
            raise exc
        return Observed(self.values.get((kind, account), 0))


@dataclass
class RecEnv:
    env: Env
    bank: BankApp
    bank_url: str
    agent_id: int
    channel_id: int
    service_id: int
    now: dt.datetime = T0
    observer: FakeObserver = field(default_factory=FakeObserver)
    counter: int = 0

    @property
    def hub(self) -> Any:
        return self.env.hub

    def worker(self, observer: Observer | None = None, *, real: bool = False, **settings: Any) -> RunWorker:
        """A worker; ``real``: with the real observer (paymux.recurring.observe), else the fake one."""
        return RunWorker(self.hub, engine_settings(**settings), None if real else observer or self.observer)

    def balance(self, account: str = ACCOUNT) -> int:
        return self.bank.bank.accounts[account].balance

    def debits(self) -> list[Any]:
        return [op for op in self.bank.bank.operations.values() if op.kind == "debit" and op.status == "done"]

    def refunds(self) -> list[Any]:
        return [
            op for op in self.bank.bank.operations.values() if op.kind == "refund" and op.status == "done"
        ]

    async def customer(
        self,
        *,
        timezone: str = "Europe/Moscow",
        funding_account: str | None = ACCOUNT,
        month_limit: int | None = None,
    ) -> int:
        self.counter += 1
        async with self.hub.sessions() as s:
            c = Customer(
                agent_id=self.agent_id,
                reference=f"cust-{self.counter}",
                name="Ivan",
                phone="+79001234567",
                email="ivan@example.com",
                timezone=timezone,
                funding_account=funding_account,
                currency="RUB",
                month_limit=month_limit,
            )
            s.add(c)
            await s.commit()
            return c.id

    async def subscription(
        self,
        customer_id: int,
        *,
        kind: str = "scheduled",
        amount: int | None = 15000,
        period: str | None = "monthly",
        day_of_month: int | None = 7,
        weekday: int | None = None,
        every_days: int | None = None,
        time_of_day: str = "09:00",
        start_date: dt.date = dt.date(2026, 12, 1),
        account: str = PHONE_ACCOUNT,
        now: dt.datetime | None = None,
        **extra: Any,
    ) -> int:
        self.counter += 1
        async with self.hub.sessions() as s:
            t = Template(
                customer_id=customer_id,
                key=f"t-{self.counter}",
                name="Mobile",
                service_id=self.service_id,
                account=account,
                amount=amount,
                currency="RUB",
            )
            s.add(t)
            await s.flush()
            sub = Subscription(
                customer_id=customer_id,
                template_id=t.id,
                key=f"s-{self.counter}",
                kind=kind,
                currency="RUB",
                amount=amount,
                period=period if kind != "threshold" else None,
                day_of_month=day_of_month if period == "monthly" else None,
                weekday=weekday,
                every_days=every_days,
                time_of_day=time_of_day,
                start_date=start_date,
                runs_paid=0,
                **extra,
            )
            customer = await s.get(Customer, customer_id)
            assert customer is not None
            sub.next_due_at = first_look(sub, customer, now or self.now)
            s.add(sub)
            await s.commit()
            return sub.id

    async def runs(self, subscription_id: int | None = None) -> list[Run]:
        async with self.hub.read_sessions() as s:
            stmt = select(Run).order_by(Run.id)
            if subscription_id is not None:
                stmt = stmt.where(Run.subscription_id == subscription_id)
            return list((await s.scalars(stmt)).all())

    async def sub(self, subscription_id: int) -> Subscription:
        async with self.hub.read_sessions() as s:
            sub = await s.get(Subscription, subscription_id)
            assert sub is not None
            return sub

    async def payment(self, payment_id: int) -> Payment:
        async with self.hub.read_sessions() as s:
            p = await s.get(Payment, payment_id)
            assert p is not None
            return p

    async def payments_count(self) -> int:
        async with self.hub.read_sessions() as s:
            return int(await s.scalar(select(func.count()).select_from(Payment)) or 0)

    async def drive(
        self,
        worker: RunWorker | None = None,
        *,
        step: dt.timedelta = dt.timedelta(seconds=1),
        within: float = 20,
        until: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """Rounds of ``worker`` at the injected clock, moving it on by ``step`` each round, until no
        run is in flight (or ``until`` holds)."""
        worker = worker or self.worker()
        deadline = asyncio.get_running_loop().time() + within
        while True:
            await worker.run_round(self.now)
            if until is not None:
                if await until():
                    return
            elif not [r for r in await self.runs() if r.status in ("pending", "running")]:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"runs not final: {[(r.id, r.state, r.status) for r in await self.runs()]}"
                )
            self.now += step
            await asyncio.sleep(0.02)

    async def notices(self, event: str | None = None) -> list[Sent]:
        """The notices queued (one per key: the e-mail copy, every test customer has an address)."""
        async with self.hub.read_sessions() as s:
            stmt = select(Notification).where(Notification.channel == "email").order_by(Notification.id)
            if event is not None:
                stmt = stmt.where(Notification.event == event)
            rows = (await s.scalars(stmt)).all()
        return [
            Sent(
                n.event,
                n.key,
                n.payload.get("data", {}),
                tuple(a["name"] for a in n.payload.get("actions", [])),
                n.body,
            )
            for n in rows
        ]

    async def check_books(self) -> None:
        async with self.hub.read_sessions() as s:
            check = await verify_ledger(s)
        assert check.balanced, check
        report = await verify_runs(self.hub, grace=dt.timedelta(0), now=self.now, bank=True)
        assert report.ok, report.problems


@contextlib.asynccontextmanager
async def rec_env(
    db_url: str,
    *,
    accounts: dict[str, dict[str, Any]] | None = None,
    emulators: dict[str, dict[str, Any]] | None = None,
    catch_up_hours: int = 72,
    upcoming_lead_hours: int = 24,
    background: bool = False,
    catalog: dict[str, Any] | None = None,
) -> AsyncIterator[RecEnv]:
    """``background``: the hub runs its own recurring worker (as ``paymux serve`` does), fast; else
    the test drives the rounds."""
    names = ("ENABLED", "POLL_SECONDS", "SCHEDULE_SECONDS", "PAYMENT_POLL_SECONDS")
    if background:
        os.environ.update(
            {f"PAYMUX_RECURRING_{n}": v for n, v in zip(names, ("true", "0.1", "0.1", "0.1"), strict=True)}
        )
    else:
        os.environ["PAYMUX_RECURRING_ENABLED"] = "false"
    bank_accounts = accounts or {ACCOUNT: {"currency": "RUB", "balance": "1000.00"}}
    bank = create_app(BankConfig.model_validate({"accounts": bank_accounts}))
    try:
        async with (
            run_emulator(bank) as bank_url,
            hub_env(db_url, emulators=emulators, catalog=catalog) as env,
        ):
            async with env.hub.sessions() as s:
                agent_id = await s.scalar(select(Agent.id).where(Agent.code == "dealer"))
                channel_id = await s.scalar(select(Channel.id).where(Channel.code == "term"))
                service_id = await s.scalar(select(Service.id).where(Service.code == "topup"))
                assert agent_id and channel_id and service_id
                s.add(
                    RecurringAgent(
                        agent_id=agent_id,
                        channel_id=channel_id,
                        funding_protocol="jsonhttp",
                        funding_config={"url": bank_url, "timeout": "1"},
                        catch_up_hours=catch_up_hours,
                        upcoming_lead_hours=upcoming_lead_hours,
                    )
                )
                await s.commit()
            yield RecEnv(env, bank, bank_url, agent_id, channel_id, service_id)
    finally:
        for n in names:
            os.environ.pop(f"PAYMUX_RECURRING_{n}", None)
