"""The recurring engine end to end over real HTTP: the bank emulator, the hub's provider emulators."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from paymux import failpoints
from paymux.errors import Problem
from paymux.recurring.executor import retry_run
from paymux.recurring.models import Run
from recurring_support import ACCOUNT, T0, rec_env

FAIL_ALL = {p: {"accounts": {"9001234567": {"pay": "fatal:7:payment forbidden"}}} for p in ("p1", "p2", "p3")}


async def test_scheduled_run_paid_end_to_end(db_url: str) -> None:
    async with rec_env(db_url) as r:
        cid = await r.customer()
        sid = await r.subscription(cid)
        sub = await r.sub(sid)
        assert sub.next_due_at == dt.datetime(2026, 12, 7, 6, 0, tzinfo=dt.UTC)  # 09:00 Moscow
        worker = r.worker()
        await worker.run_round(r.now)  # 08:00: nothing due yet, the upcoming notice goes out
        assert await r.runs() == []
        assert [n.key for n in await r.notices("charge.upcoming")] == [f"charge.upcoming:{sid}:2026-12-07"]
        r.now = dt.datetime(2026, 12, 7, 6, 0, 30, tzinfo=dt.UTC)
        await r.drive(worker)
        [run] = await r.runs(sid)
        assert (run.state, run.period_key, run.amount, run.status) == ("paid", "2026-12-07", 15000, "done")
        assert run.debit_reference and run.payment_id
        payment = await r.payment(run.payment_id)
        assert (payment.status, payment.external_id, payment.amount) == ("succeeded", f"rec-{run.id}", 15000)
        assert r.balance() == 100000 - 15000
        assert [d.key for d in r.debits()] == [run.debit_key]
        assert r.env.pay_calls("p1") == {str(payment.id): 1}
        sub = await r.sub(sid)
        assert sub.runs_paid == 1 and sub.last_topup_at is not None
        assert sub.next_due_at == dt.datetime(2027, 1, 7, 6, 0, tzinfo=dt.UTC)
        assert [n.key for n in await r.notices("run.paid")] == [f"run.paid:{run.id}"]
        [paid] = await r.notices("run.paid")
        assert paid.data["amount"] == 15000 and "150.00 RUB paid for Mobile top-up" in paid.body
        # later rounds change nothing; the next upcoming notice comes a day before January's charge
        r.now = dt.datetime(2027, 1, 6, 7, 0, tzinfo=dt.UTC)
        await worker.run_round(r.now)
        await worker.run_round(r.now)
        assert len(await r.runs(sid)) == 1
        assert [n.key for n in await r.notices("charge.upcoming")][-1] == f"charge.upcoming:{sid}:2027-01-07"
        assert len(await r.notices("charge.upcoming")) == 2
        await r.check_books()


async def test_insufficient_funds_fails_without_payment(db_url: str) -> None:
    async with rec_env(db_url, accounts={ACCOUNT: {"currency": "RUB", "balance": "100.00"}}) as r:
        sid = await r.subscription(await r.customer())
        r.now = T0 + dt.timedelta(hours=2)
        await r.drive()
        [run] = await r.runs(sid)
        assert (run.state, run.error_code, run.payment_id) == ("failed", "insufficient_funds", None)
        assert r.balance() == 10000 and r.debits() == []
        assert await r.payments_count() == 0
        [notice] = await r.notices("run.failed")
        assert notice.data["error_code"] == "insufficient_funds"
        await r.check_books()


async def test_a_failed_run_retried_after_a_top_up_is_paid(db_url: str) -> None:
    async with rec_env(db_url, accounts={ACCOUNT: {"currency": "RUB", "balance": "100.00"}}) as r:
        sid = await r.subscription(await r.customer())
        r.now = T0 + dt.timedelta(hours=2)
        await r.drive()
        [run] = await r.runs(sid)
        assert run.state == "failed"
        async with r.hub.sessions() as s:
            with pytest.raises(Problem):  # a run that debited cannot be retried; this one can
                await s.execute(update(Run).where(Run.id == run.id).values(debit_reference="X"))
                await retry_run(s, run.id)
            await s.rollback()
        r.bank.bank.accounts[ACCOUNT].balance = 100000
        async with r.hub.sessions() as s:
            retried = await retry_run(s, run.id, now=r.now)
            assert retried.debit_key == f"{run.debit_key}.r1"
            await s.commit()
        await r.drive()
        [run] = await r.runs(sid)
        assert run.state == "paid" and r.balance() == 100000 - 15000
        await r.check_books()


async def test_provider_failure_is_refunded(db_url: str) -> None:
    async with rec_env(db_url, emulators=FAIL_ALL) as r:
        sid = await r.subscription(await r.customer())
        r.now = T0 + dt.timedelta(hours=2)
        await r.drive()
        [run] = await r.runs(sid)
        assert run.state == "refunded", (run.state, run.error_code, run.error_message)
        assert run.error_code == "payment_failed" and run.refund_reference
        assert (await r.payment(run.payment_id or 0)).status == "failed"
        assert r.balance() == 100000
        assert [x.debit_key for x in r.refunds()] == [run.debit_key]
        assert [n.key for n in await r.notices("run.failed")] == [f"run.failed:{run.id}"]
        assert (await r.sub(sid)).runs_paid == 0
        await r.check_books()


async def test_lost_debit_answer_is_settled_by_status(db_url: str) -> None:
    async with rec_env(db_url) as r:
        sid = await r.subscription(await r.customer())
        r.bank.bank.lose_next = 1
        r.now = T0 + dt.timedelta(hours=2)
        worker = r.worker()
        await worker.run_round(r.now)
        [run] = await r.runs(sid)
        assert (run.state, run.error_code, run.status) == ("debiting", "debit_unknown", "pending")
        assert len(r.debits()) == 1  # the bank took it; the answer was lost
        await r.drive(worker)
        [run] = await r.runs(sid)
        assert run.state == "paid"
        [op] = r.debits()
        assert op.calls == 1  # never sent again: settled by its status
        assert r.balance() == 100000 - 15000
        await r.check_books()


@pytest.mark.parametrize(
    "point",
    [
        "recurring.before_debit",
        "recurring.after_debit",
        "recurring.before_accept",
        "recurring.after_accept",
        "recurring.before_final",
    ],
)
async def test_crash_at_each_step_resumes_the_same_run(db_url: str, point: str) -> None:
    async with rec_env(db_url) as r:
        sid = await r.subscription(await r.customer())
        r.now = T0 + dt.timedelta(hours=2)
        failpoints.configure(f"{point}=raise")
        try:
            crashed = r.worker()
            for _ in range(40):
                done = await crashed.run_round(r.now)
                if "error" in done.values():
                    break
                r.now += dt.timedelta(seconds=1)
            else:
                raise AssertionError(f"{point} never reached")
        finally:
            failpoints.configure("")
        [run] = await r.runs(sid)
        assert run.status == "running"  # held by the dead worker's lease
        assert await r.worker().run_round(r.now) == {}  # nobody takes it before the lease runs out
        r.now += dt.timedelta(seconds=31)
        await r.drive(r.worker())  # a fresh worker
        [run] = await r.runs(sid)
        assert run.state == "paid"
        assert len(r.debits()) == 1 and r.balance() == 100000 - 15000
        assert await r.payments_count() == 1
        assert sum(r.env.pay_calls("p1").values()) == 1
        assert len(await r.notices("run.paid")) == 1
        await r.check_books()


@pytest.mark.parametrize("point", ["recurring.before_refund", "recurring.after_refund"])
async def test_crash_around_the_refund_refunds_once(db_url: str, point: str) -> None:
    async with rec_env(db_url, emulators=FAIL_ALL) as r:
        sid = await r.subscription(await r.customer())
        r.now = T0 + dt.timedelta(hours=2)
        failpoints.configure(f"{point}=raise")
        try:
            crashed = r.worker()
            for _ in range(60):
                done = await crashed.run_round(r.now)
                if "error" in done.values():
                    break
                r.now += dt.timedelta(seconds=1)
            else:
                raise AssertionError(f"{point} never reached")
        finally:
            failpoints.configure("")
        r.now += dt.timedelta(seconds=31)
        await r.drive(r.worker())
        [run] = await r.runs(sid)
        assert run.state == "refunded"
        [refund] = r.refunds()
        assert refund.calls == 1 and r.balance() == 100000
        await r.check_books()


async def test_catch_up_runs_only_the_latest_missed_charge_once(db_url: str) -> None:
    async with rec_env(db_url) as r:
        start = dt.datetime(2026, 8, 20, tzinfo=dt.UTC)
        sid = await r.subscription(
            await r.customer(), day_of_month=1, start_date=dt.date(2026, 9, 1), now=start
        )
        assert (await r.sub(sid)).next_due_at == dt.datetime(2026, 9, 1, 6, 0, tzinfo=dt.UTC)
        # the hub was down from August to 1 December, 10:00 UTC (an hour after the charge)
        r.now = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)
        await r.drive()
        [run] = await r.runs(sid)
        assert (run.period_key, run.state) == ("2026-12-01", "paid")
        assert len(r.debits()) == 1
        assert (await r.sub(sid)).next_due_at == dt.datetime(2027, 1, 1, 6, 0, tzinfo=dt.UTC)
        await r.check_books()


async def test_a_missed_charge_past_the_window_is_skipped_and_told(db_url: str) -> None:
    async with rec_env(db_url, catch_up_hours=48) as r:
        sid = await r.subscription(
            await r.customer(), day_of_month=1, now=dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
        )
        r.now = dt.datetime(2026, 12, 4, 7, 0, tzinfo=dt.UTC)  # 73 hours after 1 December, 09:00 Moscow
        await r.drive()
        [run] = await r.runs(sid)
        assert (run.period_key, run.state, run.error_code) == ("2026-12-01", "skipped", "too_late")
        assert r.debits() == [] and await r.payments_count() == 0
        [notice] = await r.notices("run.skipped")
        assert notice.data["period"] == "2026-12-01"
        assert (await r.sub(sid)).next_due_at == dt.datetime(2027, 1, 1, 6, 0, tzinfo=dt.UTC)
        await r.check_books()


async def test_per_payment_limit(db_url: str) -> None:
    async with rec_env(db_url) as r:
        sid = await r.subscription(await r.customer(), per_payment_limit=10000)
        r.now = T0 + dt.timedelta(hours=2)
        await r.drive()
        [run] = await r.runs(sid)
        assert (run.state, run.error_code) == ("limit_exceeded", "per_payment_limit")
        assert r.debits() == [] and len(await r.notices("run.limit_exceeded")) == 1


async def test_month_limit_in_the_customers_timezone(db_url: str) -> None:
    async with rec_env(db_url) as r:
        cid = await r.customer(month_limit=25000, timezone="Asia/Tokyo")
        made = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
        # two charges on 1 December in Tokyo (one at 00:30 local: still 30 November in UTC), one on the 31st
        a = await r.subscription(cid, day_of_month=1, time_of_day="00:30", now=made)
        b = await r.subscription(cid, day_of_month=1, time_of_day="10:00", now=made)
        c = await r.subscription(
            cid, day_of_month=31, time_of_day="10:00", amount=5000, start_date=dt.date(2026, 12, 1), now=made
        )
        r.now = dt.datetime(2026, 11, 30, 16, 0, tzinfo=dt.UTC)  # 1 December, 01:00 in Tokyo
        await r.drive()
        r.now = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)
        await r.drive()
        [ra] = await r.runs(a)
        [rb] = await r.runs(b)
        assert ra.state == "paid"
        assert (rb.state, rb.error_code) == ("limit_exceeded", "month_limit")
        assert "above the monthly limit of 250.00" in (rb.error_message or "")
        r.now = dt.datetime(2026, 12, 31, 2, 0, tzinfo=dt.UTC)
        await r.drive()
        [rc] = await r.runs(c)
        assert rc.state == "paid"  # 150 + 50 within 250
        assert len(r.debits()) == 2
        await r.check_books()


async def test_max_runs_finishes_the_subscription(db_url: str) -> None:
    async with rec_env(db_url) as r:
        sid = await r.subscription(
            await r.customer(), period="days", every_days=1, start_date=dt.date(2026, 12, 7), max_runs=2
        )
        for day in (7, 8, 9, 10):
            r.now = dt.datetime(2026, 12, day, 7, 0, tzinfo=dt.UTC)
            await r.drive()
        runs = await r.runs(sid)
        assert [x.period_key for x in runs] == ["2026-12-07", "2026-12-08"]
        assert all(x.state == "paid" for x in runs)
        sub = await r.sub(sid)
        assert (sub.status, sub.next_due_at, sub.runs_paid) == ("finished", None, 2)
        await r.check_books()
