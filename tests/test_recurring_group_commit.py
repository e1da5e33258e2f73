"""The steps of the runs in flight are group-committed (paymux.recurring.steps): one transaction serves
many runs' fenced writes, a step whose claim was taken over writes nothing, and a final state commits
with its notice and the subscription's count."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event, select, update

from paymux.recurring import notices
from paymux.recurring.models import Customer, Run, Subscription, Template
from paymux.recurring.steps import Step
from paymux.worker.jobs import claim_due
from recurring_support import T0, RecEnv, rec_env

RUNS = 20


@contextlib.contextmanager
def run_transactions(r: RecEnv) -> Iterator[list[int]]:
    """Counts the committed transactions that updated a recurring run (``[n]``)."""
    count = [0]
    engine = r.hub.engine.sync_engine

    def executed(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE RECURRING_RUNS"):
            conn.info["updated_runs"] = True

    def committed(conn: Any) -> None:
        if conn.info.pop("updated_runs", False):
            count[0] += 1

    def rolled_back(conn: Any) -> None:
        conn.info.pop("updated_runs", None)

    event.listen(engine, "before_cursor_execute", executed)
    event.listen(engine, "commit", committed)
    event.listen(engine, "rollback", rolled_back)
    try:
        yield count
    finally:
        event.remove(engine, "before_cursor_execute", executed)
        event.remove(engine, "commit", committed)
        event.remove(engine, "rollback", rolled_back)


async def test_the_steps_of_runs_in_flight_share_transactions(db_url: str) -> None:
    """20 runs carried together: each goes debiting, paying, back to the queue with its payment, paid
    (4 fenced writes, 80 transactions one by one); group-committed, far fewer transactions than runs."""
    async with rec_env(db_url) as r:
        r.bank.bank.accounts["40817810000000000001"].balance = 10**9
        cid = await r.customer()
        subs = [await r.subscription(cid, amount=1000 + i) for i in range(RUNS)]
        r.now = T0 + dt.timedelta(hours=2)
        with run_transactions(r) as count:
            await r.drive(r.worker(claim_limit=RUNS))
        runs = await r.runs()
        assert sorted(x.subscription_id for x in runs) == subs
        assert [x.state for x in runs] == ["paid"] * RUNS
        assert len(await r.notices("run.paid")) == RUNS
        # claims and steps together: one by one this is at least 4 per run
        assert count[0] < RUNS, count[0]
        writer = r.hub.run_steps
        assert writer.items >= 4 * RUNS and writer.batches < RUNS, (writer.batches, writer.items)
        await r.check_books()


async def test_a_step_whose_claim_was_taken_over_writes_nothing_and_the_others_commit(db_url: str) -> None:
    async with rec_env(db_url) as r:
        cid = await r.customer()
        subs = [await r.subscription(cid, amount=1000 + i) for i in range(3)]
        r.now = T0 + dt.timedelta(hours=2)
        await r.worker().schedule(r.now)
        ids = await claim_due(r.hub, Run, "a.1", 10, 60, now=r.now)
        assert len(ids) == 3
        lost, kept, paid = sorted(ids)
        async with r.hub.sessions() as s:  # another worker took this one over after a pause
            await s.execute(update(Run).where(Run.id == lost).values(lease_owner="b.1"))
            await s.commit()
        async with r.hub.read_sessions() as s:
            run = await s.get(Run, paid)
            sub = await s.get(Subscription, run.subscription_id if run else 0)
            assert run is not None and sub is not None
            customer = await s.get(Customer, sub.customer_id)
            template = await s.get(Template, sub.template_id)
            assert customer is not None and template is not None
        run.state, run.final_at = "paid", r.now
        notice = notices.about_run("run.paid", run, sub, customer, template, r.agent_id)
        writer = r.hub.run_steps
        before = writer.batches
        final = {"state": "paid", "status": "done", "lease_owner": None, "final_at": r.now}
        answers = await asyncio.gather(
            writer.record(Step(lost, "a.1", {"state": "debiting", "error_code": "debit_sent"})),
            writer.record(Step(kept, "a.1", {"state": "debiting", "error_code": "debit_sent"})),
            writer.record(Step(paid, "a.1", final, paid=(sub.id, r.now), notice=notice)),
        )
        assert answers == [False, True, True]
        assert writer.batches == before + 1  # one transaction for the three
        async with r.hub.read_sessions() as s:
            rows = {x.id: x for x in (await s.scalars(select(Run).where(Run.id.in_(ids)))).all()}
            counted = await s.get(Subscription, sub.id)
        assert (rows[lost].state, rows[lost].lease_owner, rows[lost].error_code) == ("due", "b.1", None)
        assert (rows[kept].state, rows[kept].error_code) == ("debiting", "debit_sent")
        assert (rows[paid].state, rows[paid].status, rows[paid].lease_owner) == ("paid", "done", None)
        assert counted is not None and counted.runs_paid == 1 and counted.last_topup_at is not None
        assert [n.key for n in await r.notices("run.paid")] == [f"run.paid:{paid}"]
        assert sorted(subs) == sorted(x.subscription_id for x in rows.values())
        # the same step again: its claim ended with the final state, nothing is written twice
        assert await writer.record(Step(paid, "a.1", final, paid=(sub.id, r.now), notice=notice)) is False
        assert (await r.sub(sub.id)).runs_paid == 1
