"""Threshold and debt subscriptions (a fake observer stands for the provider's balance/debt answer),
debt confirmations, `recurring verify`, and two workers sharing runs."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from conftest import requires_postgres
from paymux.db.base import utcnow
from paymux.errors import Problem
from paymux.recurring.executor import confirm_debt
from paymux.recurring.models import RecurringAgent, Run
from paymux.recurring.verify import verify_runs
from paymux.worker.jobs import running
from recurring_support import ACCOUNT, PHONE_ACCOUNT, T0, rec_env


async def test_threshold_tops_up_below_and_keeps_quiet(db_url: str) -> None:
    async with rec_env(db_url) as r:
        sid = await r.subscription(
            await r.customer(),
            kind="threshold",
            amount=20000,
            threshold=5000,
            poll_seconds=600,
            quiet_seconds=3600,
        )
        r.observer.values[("balance", PHONE_ACCOUNT)] = 9000  # above the threshold: nothing
        await r.drive()
        [look] = await r.runs(sid)
        assert (look.state, look.observed, look.period_key) == ("not_needed", 9000, "t20261207T050000Z")
        r.observer.values[("balance", PHONE_ACCOUNT)] = 3000  # below: a top-up
        r.now += dt.timedelta(minutes=10)
        await r.drive()
        paid = [x for x in await r.runs(sid) if x.state == "paid"]
        assert len(paid) == 1 and paid[0].amount == 20000 and paid[0].observed == 3000
        assert r.balance(ACCOUNT) == 100000 - 20000
        # still below (the provider has not caught up), but within the quiet period: no second top-up
        r.now += dt.timedelta(minutes=10)
        await r.drive()
        states = [x.state for x in await r.runs(sid)]
        assert states.count("paid") == 1 and states[-1] == "not_needed"
        # after the quiet period, a new top-up
        r.now += dt.timedelta(hours=1)
        await r.drive()
        assert [x.state for x in await r.runs(sid)].count("paid") == 2
        assert len(r.debits()) == 2
        await r.check_books()


async def test_threshold_look_waits_for_the_one_in_flight(db_url: str) -> None:
    async with rec_env(db_url) as r:
        sid = await r.subscription(
            await r.customer(), kind="threshold", amount=1000, threshold=5000, poll_seconds=60
        )
        r.observer.fail = True
        worker = r.worker(observe_attempts=3)
        await worker.run_round(r.now)
        [look] = await r.runs(sid)
        assert (look.state, look.status, look.error_code) == ("checking", "pending", "observe_failed")
        r.now += dt.timedelta(seconds=61)
        await worker.schedule(r.now)  # the look is still in flight: no second one
        assert len(await r.runs(sid)) == 1
        await r.drive(worker)
        [look] = await r.runs(sid)
        assert (look.state, look.error_code) == ("failed", "observe_failed")


async def test_a_look_the_provider_refuses_for_good_fails_at_once(db_url: str) -> None:
    async with rec_env(db_url) as r:
        sid = await r.subscription(await r.customer(), kind="debt", amount=None, debt_limit=100)
        r.observer.fail, r.observer.temporary = True, False
        r.now = T0 + dt.timedelta(hours=2)
        await r.drive()
        [run] = await r.runs(sid)
        assert (run.state, run.error_code, run.attempts) == ("failed", "observe_failed", 1)
        assert r.observer.calls == 1 and len(await r.notices("run.failed")) == 1


async def test_the_hubs_own_worker_runs_the_engine(db_url: str) -> None:
    """``paymux serve`` runs the recurring worker (paymux.worker.background.SERVICES), on real time."""
    async with rec_env(db_url, background=True) as r:
        made = utcnow() - dt.timedelta(minutes=2)
        sid = await r.subscription(
            await r.customer(timezone="UTC"),
            period="days",
            every_days=1,
            start_date=made.date(),
            time_of_day=made.strftime("%H:%M"),
            now=made - dt.timedelta(minutes=1),
        )
        for _ in range(300):
            runs = await r.runs(sid)
            if runs and runs[0].state == "paid":
                break
            await asyncio.sleep(0.05)
        [run] = await r.runs(sid)
        assert run.state == "paid" and len(r.debits()) == 1
        await r.check_books()


async def test_debt_zero_within_and_above_the_limit(db_url: str) -> None:
    async with rec_env(db_url) as r:
        cid = await r.customer()
        sid = await r.subscription(cid, kind="debt", amount=None, debt_limit=30000, account="9001234568")
        r.now = T0 + dt.timedelta(hours=2)
        await r.drive()  # no debt
        [run] = await r.runs(sid)
        assert run.state == "not_needed"
        r.observer.values[("debt", "9001234568")] = 12345
        r.now = dt.datetime(2027, 1, 7, 7, 0, tzinfo=dt.UTC)
        await r.drive()
        run = (await r.runs(sid))[-1]
        assert (run.state, run.amount, run.observed) == ("paid", 12345, 12345)
        r.observer.values[("debt", "9001234568")] = 45000  # above the customer's limit: asked
        r.now = dt.datetime(2027, 2, 7, 7, 0, tzinfo=dt.UTC)
        await r.drive(until=lambda: _states(r, "awaiting_confirmation", 1))
        run = (await r.runs(sid))[-1]
        assert (run.state, run.status) == ("awaiting_confirmation", "pending")
        [ask] = await r.notices("debt.confirm")
        assert (
            ask.actions == ("confirm", "decline")
            and ask.data["amount"] == 45000
            and ask.data["limit"] == 30000
        )
        async with r.hub.sessions() as s:
            await confirm_debt(s, run.id, True, now=r.now)
            await s.commit()
        async with r.hub.sessions() as s:  # the same answer again: the same run
            assert (await confirm_debt(s, run.id, True)).id == run.id
            with pytest.raises(Problem) as err:
                await confirm_debt(s, run.id, False)
            assert err.value.status == 409
        await r.drive()
        run = (await r.runs(sid))[-1]
        assert (run.state, run.amount) == ("paid", 45000)
        assert r.balance() == 100000 - 12345 - 45000
        await r.check_books()


async def test_debt_declined_or_not_answered(db_url: str) -> None:
    async with rec_env(db_url) as r:
        a = await r.subscription(
            await r.customer(), kind="debt", amount=None, debt_limit=100, account="9001234561"
        )
        b = await r.subscription(
            await r.customer(), kind="debt", amount=None, debt_limit=100, account="9001234562"
        )
        r.observer.values[("debt", "9001234561")] = 5000
        r.observer.values[("debt", "9001234562")] = 5000
        r.now = T0 + dt.timedelta(hours=2)
        await r.drive(until=lambda: _states(r, "awaiting_confirmation", 2))
        [ra] = await r.runs(a)
        async with r.hub.sessions() as s:
            assert (await confirm_debt(s, ra.id, False)).state == "declined"
            await s.commit()
        r.now += dt.timedelta(hours=73)  # nobody answered for b
        await r.drive()
        assert [x.state for x in await r.runs(a)] == ["declined"]
        [rb] = await r.runs(b)
        assert (rb.state, rb.error_code) == ("declined", "not_confirmed")
        assert r.debits() == []


async def _states(r, state: str, n: int) -> bool:  # type: ignore[no-untyped-def]
    return sum(x.state == state for x in await r.runs()) == n


async def test_paused_subscription_skips_its_pending_run(db_url: str) -> None:
    async with rec_env(db_url) as r:
        sid = await r.subscription(await r.customer())
        r.now = T0 + dt.timedelta(hours=2)
        await r.worker().schedule(r.now)
        async with r.hub.sessions() as s:
            from paymux.recurring.models import Subscription

            await s.execute(update(Subscription).where(Subscription.id == sid).values(status="paused"))
            await s.commit()
        await r.drive()
        [run] = await r.runs(sid)
        assert (run.state, run.error_code) == ("skipped", "subscription_paused")
        assert r.debits() == []


async def test_verify_finds_a_debit_left_unmatched(db_url: str) -> None:
    async with rec_env(db_url) as r:
        sid = await r.subscription(await r.customer())
        r.now = T0 + dt.timedelta(hours=2)
        await r.drive()
        [run] = await r.runs(sid)
        ok = await verify_runs(r.hub, grace=dt.timedelta(0), now=r.now)
        assert ok.ok and ok.debits == 1 and ok.bank_checked == 1
        # a run that says it failed although the bank took its debit
        async with r.hub.sessions() as s:
            await s.execute(update(Run).where(Run.id == run.id).values(state="failed", debit_reference=None))
            await s.commit()
        bad = await verify_runs(r.hub, grace=dt.timedelta(0), now=r.now)
        assert not bad.ok
        assert any("the bank took debit" in p for p in bad.problems), bad.problems
        assert any("has payment" in p for p in bad.problems), bad.problems


def test_verify_cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from paymux.cli import app
    from paymux.settings import get_settings

    monkeypatch.setenv("PAYMUX_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["recurring", "verify"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "0 runs" in result.output and "every debit matched or refunded: yes" in result.output


@requires_postgres
async def test_two_workers_share_runs_without_doubles(db_url: str) -> None:
    async with rec_env(db_url, accounts={ACCOUNT: {"currency": "RUB", "balance": "100000.00"}}) as r:
        cid = await r.customer()
        subs = [await r.subscription(cid, amount=1000 + i) for i in range(30)]
        r.now = T0 + dt.timedelta(hours=2)
        w1, w2 = r.worker(claim_limit=5, batch=7), r.worker(claim_limit=5, batch=7)
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            await asyncio.gather(w1.run_round(r.now), w2.run_round(r.now))
            runs = await r.runs()
            if len(runs) == 30 and all(x.status == "done" for x in runs):
                break
            assert asyncio.get_running_loop().time() < deadline, [(x.id, x.state) for x in runs]
            r.now += dt.timedelta(seconds=1)
        assert sorted(x.subscription_id for x in runs) == sorted(subs)
        assert all(x.state == "paid" for x in runs)
        assert w1.finished and w2.finished  # both did some
        assert len(r.debits()) == 30 and all(op.calls == 1 for op in r.debits())
        assert await r.payments_count() == 30
        await r.check_books()


async def test_a_slow_bank_answer_does_not_hold_up_the_other_runs(db_url: str) -> None:
    """The worker keeps ``claim_limit`` runs in flight: while one run waits 6 s for its bank, the others
    are claimed and finished through the free place (a round of runs would wait for the slowest)."""
    slow = "40817810000000000099"
    accounts = {
        ACCOUNT: {"currency": "RUB", "balance": "1000.00"},
        slow: {"currency": "RUB", "balance": "1000.00", "latency_ms": 6000},
    }
    async with rec_env(db_url, accounts=accounts) as r:
        async with r.hub.sessions() as s:
            await s.execute(
                update(RecurringAgent).values(funding_config={"url": r.bank_url, "timeout": "20"})
            )
            await s.commit()
        made = utcnow() - dt.timedelta(minutes=2)
        when = {
            "period": "days",
            "every_days": 1,
            "start_date": made.date(),
            "time_of_day": made.strftime("%H:%M"),
            "now": made - dt.timedelta(minutes=1),
        }
        slow_sub = await r.subscription(await r.customer(timezone="UTC", funding_account=slow), **when)
        fast = [await r.subscription(await r.customer(timezone="UTC"), **when) for _ in range(4)]
        worker = r.worker(claim_limit=2, poll_seconds=0.05, schedule_seconds=0.2, payment_poll_seconds=0.1)
        async with running(worker):
            for _ in range(400):
                runs = await r.runs()
                if len(runs) == 5 and all(x.state == "paid" for x in runs):
                    break
                await asyncio.sleep(0.05)
        runs = await r.runs()
        assert sorted(x.state for x in runs) == ["paid"] * 5, [(x.subscription_id, x.state) for x in runs]
        slow_done = next(x.updated_at for x in runs if x.subscription_id == slow_sub)
        assert all(x.updated_at < slow_done for x in runs if x.subscription_id in fast)
        await r.check_books()
