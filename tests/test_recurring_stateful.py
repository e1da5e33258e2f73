"""A Hypothesis state machine over the recurring engine, against the real emulators over HTTP.

Random scheduled subscriptions (monthly on days 28..31, weekly, every N days; customers in zones with
DST changes and without), clock jumps (to month ends, 29 February 2028, DST changes, days, months),
and faults: the worker killed at a random step of a run (a failpoint raises; a fresh worker resumes
after the lease), the bank's answer to a debit lost, providers refusing an account. After every
step, once the runs settle: at most one charge per subscription and period (and per calendar month
for monthly ones), every debit matched by a succeeded payment or refunded (``recurring verify``,
with the bank asked), the bank's money equal to what the paid runs took, the ledger balanced.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import text

from conftest import PG_URL
from paymux import failpoints
from paymux.db.engine import create_engine
from paymux.db.models import Base
from paymux.recurring.schedule import zone
from recurring_support import RecEnv, rec_env

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/Moscow")
TIMES = ("00:30", "02:30", "09:00", "23:30")
FAILING = "9009999999"  # every provider refuses this account for good
EMULATORS = {p: {"accounts": {FAILING: {"pay": "fatal:7:payment forbidden"}}} for p in ("p1", "p2", "p3")}
POINTS = (
    "recurring.before_debit",
    "recurring.after_debit",
    "recurring.before_accept",
    "recurring.after_accept",
    "recurring.before_final",
    "recurring.before_refund",
    "recurring.after_refund",
)
START = dt.datetime(2026, 1, 25, 12, 0, tzinfo=dt.UTC)
# instants worth landing on: month ends, 29 February 2028, DST changes in Europe and America
MARKS = sorted(
    [dt.datetime(2026, m, 1, 0, 30, tzinfo=dt.UTC) - dt.timedelta(hours=1) for m in range(2, 13)]
    + [
        dt.datetime(2026, 3, 8, 7, 30, tzinfo=dt.UTC),  # New York springs forward
        dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC),  # Berlin springs forward
        dt.datetime(2026, 10, 25, 1, 30, tzinfo=dt.UTC),  # Berlin falls back
        dt.datetime(2026, 11, 1, 6, 30, tzinfo=dt.UTC),  # New York falls back
        dt.datetime(2027, 2, 28, 23, 0, tzinfo=dt.UTC),
        dt.datetime(2028, 2, 29, 8, 0, tzinfo=dt.UTC),
        dt.datetime(2028, 3, 1, 8, 0, tzinfo=dt.UTC),
    ]
)
JUMPS = (
    dt.timedelta(hours=1),
    dt.timedelta(hours=7),
    dt.timedelta(hours=20),
    dt.timedelta(days=1),
    dt.timedelta(days=2),
    dt.timedelta(days=6),
    dt.timedelta(days=31),  # past the catch-up window: skipped runs
)


async def _fresh(template: str, path: Path) -> str:
    if PG_URL:
        engine = create_engine(PG_URL)
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        await engine.dispose()
        return PG_URL
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"


class RecurringMachine(RuleBasedStateMachine):
    template: str = ""
    tmp: Path = Path()
    examples = 0

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.stack = contextlib.AsyncExitStack()
        RecurringMachine.examples += 1
        url = self.loop.run_until_complete(_fresh(self.template, self.tmp / f"m{self.examples}.db"))
        self.r: RecEnv = self.loop.run_until_complete(
            self.stack.enter_async_context(rec_env(url, emulators=EMULATORS, catch_up_hours=72))
        )
        self.r.bank.bank.accounts["40817810000000000001"].balance = 10**9
        self.r.now = START
        self.subs: dict[int, tuple[str, str]] = {}  # id -> (period, timezone)
        self.worker = self.r.worker()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        failpoints.configure("")
        if os.environ.get("RECURRING_MACHINE_STATS"):
            runs = self.run(self.r.runs())
            print("states:", sorted(Counter(x.state for x in runs).items()), "lost:", self.r.bank.bank.lost)
        self.run(self.stack.aclose())
        self.loop.close()

    @initialize(
        period=st.sampled_from(("monthly", "weekly", "days")),
        day=st.sampled_from((1, 28, 29, 30, 31)),
        tz=st.sampled_from(ZONES),
        at=st.sampled_from(TIMES),
        failing=st.booleans(),
    )
    def first(self, period: str, day: int, tz: str, at: str, failing: bool) -> None:
        self.add("days", 1, tz, at, failing=failing, amount=1000)
        self.add(period, day, tz, at, failing=False, amount=2000)

    @rule(
        period=st.sampled_from(("monthly", "weekly", "days")),
        day=st.sampled_from((1, 15, 28, 29, 30, 31)),
        tz=st.sampled_from(ZONES),
        at=st.sampled_from(TIMES),
        failing=st.sampled_from((False, False, True)),
        amount=st.integers(100, 50000),
    )
    def add(self, period: str, day: int, tz: str, at: str, failing: bool, amount: int) -> None:
        async def go() -> None:
            cid = await self.r.customer(timezone=tz)
            sid = await self.r.subscription(
                cid,
                period=period,
                day_of_month=day,
                weekday=day % 7 if period == "weekly" else None,
                every_days=1 + day % 3 if period == "days" else None,
                time_of_day=at,
                start_date=self.r.now.date(),
                amount=amount,
                account=FAILING if failing else "9001234567",
            )
            self.subs[sid] = (period, tz)

        self.run(go())

    @rule(jump=st.sampled_from(JUMPS))
    def wait(self, jump: dt.timedelta) -> None:
        self.r.now += jump
        self.settle()

    @rule(mark=st.integers(0, len(MARKS) - 1))
    def to_mark(self, mark: int) -> None:
        later = [m for m in MARKS[mark:] if m > self.r.now]
        self.r.now = later[0] if later else self.r.now + dt.timedelta(days=29)
        self.settle()

    @rule(jump=st.sampled_from(JUMPS))
    def lose_a_debit_answer(self, jump: dt.timedelta) -> None:
        """The bank applies the next debit and its answer is lost; the clock moves on."""
        self.r.bank.bank.lose_next = 1
        self.r.now += jump
        self.settle()

    @precondition(lambda self: len(self.subs) > 0)
    @rule(point=st.sampled_from(POINTS), jump=st.sampled_from(JUMPS))
    def kill_worker(self, point: str, jump: dt.timedelta) -> None:
        """The clock moves on and the worker dies at ``point`` of a run (if any run gets there)."""
        self.r.now += jump
        failpoints.configure(f"{point}=raise")
        try:
            for _ in range(15):
                done = self.run(self.worker.run_round(self.r.now))
                if "error" in done.values() or not done:
                    break
                self.r.now += dt.timedelta(seconds=1)
        finally:
            failpoints.configure("")
        self.worker = self.r.worker()  # a fresh worker: the dead one's leases run out
        self.r.now += dt.timedelta(seconds=31)
        self.settle()

    def settle(self) -> None:
        self.run(self.r.drive(self.worker, within=30))

    @invariant()
    def one_charge_per_period_and_books_agree(self) -> None:
        async def check() -> None:
            runs = await self.r.runs()
            if any(x.status in ("pending", "running") for x in runs):
                return  # checked once they settle (every rule settles)
            paid: dict[int, list[Any]] = {}
            for x in runs:
                if x.state == "paid":
                    paid.setdefault(x.subscription_id, []).append(x)
            for sid, xs in paid.items():
                keys = [x.period_key for x in xs]
                assert len(keys) == len(set(keys)), (sid, keys)
                period, tz = self.subs[sid]
                if period == "monthly":
                    months = [x.scheduled_at.astimezone(zone(tz)).strftime("%Y-%m") for x in xs]
                    assert len(months) == len(set(months)), (sid, months)
            taken = sum(op.amount for op in self.r.debits()) - sum(op.amount for op in self.r.refunds())
            assert taken == sum(x.amount or 0 for xs in paid.values() for x in xs)
            assert all(op.calls == 1 for op in self.r.debits()), [
                (op.key, op.calls) for op in self.r.debits()
            ]
            await self.r.check_books()

        self.run(check())


def test_recurring_state_machine(_template: str, tmp_path: Path) -> None:
    RecurringMachine.template = _template
    RecurringMachine.tmp = tmp_path
    RecurringMachine.TestCase.settings = settings(
        max_examples=8,
        stateful_step_count=10,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=False,
    )
    RecurringMachine.TestCase().runTest()
