"""Group commit of journal entries and delivery outcomes, and the hand-over of accepted payments."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from harness import hub_env
from paymux.db.base import utcnow
from paymux.db.group_commit import GroupCommitter, next_may_start
from paymux.ledger.batch import JournalBatch
from paymux.ledger.models import Account, JournalEntry, Posting
from paymux.ledger.service import (
    SYSTEM,
    AccountCache,
    AccountKey,
    LedgerError,
    Line,
    post_entry,
    verify_ledger,
)
from paymux.payments.models import Payment, PaymentAttempt
from paymux.payments.processing import Worker, claim_due, process

KEYS = [
    AccountKey("bank", SYSTEM, "RUB"),
    AccountKey("provider_deposit", 1, "RUB"),
    AccountKey("channel_collected", 7, "RUB"),
    AccountKey("fees_unearned", SYSTEM, "RUB"),
    AccountKey("bank", SYSTEM, "EUR"),
    AccountKey("provider_deposit", 2, "EUR"),
]


@st.composite
def entries(draw: st.DrawFn) -> list[Line]:
    """A balanced entry: per currency, amounts over 2-3 accounts of that currency summing to zero."""
    lines: list[Line] = []
    for cur in draw(st.sets(st.sampled_from(["RUB", "EUR"]), min_size=1)):
        keys = draw(st.lists(st.sampled_from([k for k in KEYS if k.currency == cur]), min_size=1, max_size=3))
        amounts = [draw(st.integers(-(10**9), 10**9).filter(bool)) for _ in keys]
        lines += [Line(k, a) for k, a in zip(keys, amounts, strict=True)]
        lines.append(Line(KEYS[0] if cur == "RUB" else KEYS[4], -sum(amounts)))
    return lines


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batch=st.lists(entries(), min_size=1, max_size=12),
    singles=st.lists(entries(), max_size=3),
)
async def test_a_journal_batch_writes_what_posting_one_by_one_would(
    session: AsyncSession, batch: list[list[Line]], singles: list[list[Line]]
) -> None:
    accounts = AccountCache()
    model: dict[AccountKey, int] = defaultdict(int)
    try:
        for lines in singles:  # entries posted one by one in the same transaction mix with the batch
            if any(ln.amount for ln in lines):
                await post_entry(session, accounts, "single", lines)
                for ln in lines:
                    model[ln.key] += ln.amount
        journal = JournalBatch()
        added: list[int] = []
        for n, lines in enumerate(batch):
            if not any(ln.amount for ln in lines):
                with pytest.raises(LedgerError):
                    journal.add("batched", lines, at=utcnow(), payment_id=n)
                continue
            journal.add("batched", lines, at=utcnow(), payment_id=n)
            added.append(n)
            for ln in lines:
                model[ln.key] += ln.amount
        ids = await journal.write(session, accounts)
        assert len(ids) == len(added) and ids == sorted(ids) and len(journal) == 0
        kinds = (
            await session.execute(select(JournalEntry.id, JournalEntry.kind, JournalEntry.payment_id))
        ).all()
        # the ids come back in the order the entries were added, each its own entry's
        assert [(i, p) for i, k, p in sorted(kinds) if k == "batched"] == list(zip(ids, added, strict=True))
        check = await verify_ledger(session)
        assert check.balanced, check
        rows = await session.execute(
            select(Account.kind, Account.owner_id, Account.currency, Account.balance)
        )
        got = {AccountKey(k, o, c): b for k, o, c, b in rows.all() if b}
        assert got == {k: v for k, v in model.items() if v}
    finally:
        await session.rollback()


def test_a_journal_batch_refuses_an_unbalanced_entry_when_it_is_added() -> None:
    journal = JournalBatch()
    with pytest.raises(LedgerError, match="does not balance"):
        journal.add("x", [Line(KEYS[0], 5), Line(KEYS[1], -4)], at=utcnow())
    assert len(journal) == 0


# -- the group committer ---------------------------------------------------------------------------


class Doubler(GroupCommitter[int, int]):
    def __init__(self) -> None:
        super().__init__(max_batch=4)
        self.writes: list[list[int]] = []

    async def write(self, batch: list[int]) -> list[int]:
        self.writes.append(list(batch))
        await asyncio.sleep(0.01)
        if 13 in batch and len(batch) > 1:
            raise RuntimeError("the batch fails as a whole")
        if batch == [13]:
            raise ValueError("13 is bad on its own too")
        return [2 * x for x in batch]


async def test_group_committer_batches_and_isolates_a_bad_item() -> None:
    c = Doubler()
    results = await asyncio.gather(*(c.submit(x) for x in range(10)), return_exceptions=True)
    assert results == [2 * x for x in range(10)]
    assert len(c.writes) < 10 and max(len(w) for w in c.writes) <= 4  # batched, and capped
    results = await asyncio.gather(*(c.submit(x) for x in (11, 12, 13, 14)), return_exceptions=True)
    assert results[:2] == [22, 24] and results[3] == 28
    assert isinstance(results[2], ValueError)  # only the bad item fails
    assert c.failed_batches == 1
    await c.close()


async def test_group_committer_close_drains_what_is_queued() -> None:
    c = Doubler()
    pending = [asyncio.ensure_future(c.submit(x)) for x in range(9)]
    await asyncio.sleep(0)
    await c.close()
    assert [p.result() for p in pending] == [2 * x for x in range(9)]


async def _trickle(c: Doubler, items: list[int], gap: float) -> list[int]:
    """Submit ``items`` one every ``gap`` seconds; their results."""
    waiting = []
    for x in items:
        waiting.append(asyncio.ensure_future(c.submit(x)))
        await asyncio.sleep(gap)
    return list(await asyncio.gather(*waiting))


async def test_a_lingering_committer_waits_for_company_only_when_the_batch_is_small() -> None:
    eager = Doubler()
    assert await _trickle(eager, [1, 2, 3], 0.002) == [2, 4, 6]
    assert eager.writes[0] == [1]  # written at once, alone
    lingering = Doubler()
    lingering.linger_seconds, lingering.linger_below = 0.2, 3
    assert await _trickle(lingering, [1, 2, 3], 0.002) == [2, 4, 6]
    assert lingering.writes == [[1, 2, 3]]  # the first waited for the other two
    lingering.writes.clear()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.gather(*(lingering.submit(x) for x in (4, 5, 6, 7))) == [8, 10, 12, 14]
    assert lingering.writes == [[4, 5, 6, 7]] and loop.time() - started < 0.15  # large enough: no wait
    await eager.close()
    await lingering.close()


class Pipelined(GroupCommitter[int, int]):
    """Each batch "takes its locks" (a short sleep), lets the next batch start, then "commits"."""

    pipeline = True

    def __init__(self) -> None:
        super().__init__(max_batch=3)
        self.writing = 0
        self.most_at_once = 0
        self.locked: list[list[int]] = []  # batches in the order they took their locks

    async def write(self, batch: list[int]) -> list[int]:
        self.writing += 1
        self.most_at_once = max(self.most_at_once, self.writing)
        try:
            await asyncio.sleep(0.005)
            if 13 in batch:
                raise RuntimeError("fails before it lets the next batch start")
            self.locked.append(list(batch))
            next_may_start()
            next_may_start()  # a second call changes nothing
            await asyncio.sleep(0.02)
            return [2 * x for x in batch]
        finally:
            self.writing -= 1


async def test_a_pipelined_committer_starts_the_next_batch_once_the_running_one_lets_it() -> None:
    c = Pipelined()
    results = await asyncio.gather(*(c.submit(x) for x in range(9)), return_exceptions=True)
    assert results == [2 * x for x in range(9)]
    assert c.locked == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]  # in order, each after the last let it
    assert c.most_at_once == 2  # the next overlapped the running one, never a third
    # a batch that fails before letting the next start still lets it (its transaction is over)
    results = await asyncio.gather(*(c.submit(x) for x in (12, 13, 14, 15)), return_exceptions=True)
    assert results[0] == 24 and isinstance(results[1], RuntimeError) and results[2:] == [28, 30]
    assert c.failed_batches == 1
    # close drains the batches in flight and what is queued
    pending = [asyncio.ensure_future(c.submit(x)) for x in range(20, 27)]
    await asyncio.sleep(0)
    await c.close()
    assert [p.result() for p in pending] == [2 * x for x in range(20, 27)]


async def test_a_committer_that_does_not_pipeline_writes_one_batch_at_a_time() -> None:
    c = Pipelined()
    c.pipeline = False
    assert await asyncio.gather(*(c.submit(x) for x in range(7))) == [2 * x for x in range(7)]
    assert c.most_at_once == 1
    await c.close()


# -- delivery outcomes ------------------------------------------------------------------------------


async def test_outcomes_finishing_together_share_a_transaction_and_a_lost_lease_spoils_nothing(
    db_url: str,
) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        ids = [(await env.pay(external_id=f"g-{i}")).json()["id"] for i in range(6)]
        claimed = await claim_due(env.hub, "w-test", 10)
        assert sorted(c.payment.id for c in claimed) == sorted(ids)
        stolen = claimed[0]
        async with env.hub.sessions() as s:  # another worker took this one over (its lease ran out)
            await s.execute(
                text("UPDATE payments SET lease_owner = 'w-other' WHERE id = :i"), {"i": stolen.payment.id}
            )
            await s.commit()
        before = env.hub.recorder.batches
        await asyncio.gather(*(process(env.hub, c) for c in claimed))
        assert env.hub.recorder.batches - before < len(claimed)  # grouped
        async with env.hub.read_sessions() as r:
            rows = {p.id: p for p in (await r.scalars(select(Payment))).all()}
            attempts = (await r.scalars(select(PaymentAttempt.payment_id))).all()
            assert (await verify_ledger(r)).balanced
        assert rows[stolen.payment.id].status == "processing" and rows[stolen.payment.id].in_doubt
        assert stolen.payment.id not in attempts  # the stale worker's outcome wrote nothing
        assert {rows[c.payment.id].status for c in claimed[1:]} == {"succeeded"}
        assert sorted(attempts) == sorted(c.payment.id for c in claimed[1:])


# -- hand-over at acceptance ----------------------------------------------------------------------


async def test_payments_accepted_next_to_a_worker_are_inserted_claimed_and_handed_over(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        worker = Worker(env.hub, concurrency=2)
        env.hub.local_worker = worker  # registered, not running: what it is handed stays in its inbox
        ids = [(await env.pay(external_id=f"h-{i}")).json()["id"] for i in range(3)]
        async with env.hub.read_sessions() as r:
            rows = {p.id: p for p in (await r.scalars(select(Payment))).all()}
        handed = [i for i in ids if (rows[i].lease_owner or "").startswith(worker.lease + ".")]
        assert len(handed) == 2 and [c.payment.id for c in worker._inbox] == handed
        for i in handed:  # leased and in doubt in the acceptance transaction itself
            assert rows[i].in_doubt and rows[i].status == "processing" and rows[i].next_attempt_at > utcnow()
        (left,) = set(ids) - set(handed)
        assert rows[left].lease_owner is None and rows[left].status == "accepted" and worker._claim_soon
        # only the payment without room is due for any worker
        assert [c.payment.id for c in await claim_due(env.hub, "w-other", 10)] == [left]
        # a worker stopping gives back what it was handed and never started
        await worker._release_inbox()
        again = await claim_due(env.hub, "w-other", 10)
        assert sorted(c.payment.id for c in again) == sorted(handed)
        assert not any(c.was_in_doubt for c in again)  # never sent: no status request needed


async def test_a_running_worker_delivers_handed_over_payments_without_claiming_them(db_url: str) -> None:
    async with hub_env(db_url, poll_interval_ms=60_000) as env:  # no timer claims during the test
        await asyncio.sleep(0.2)
        worker = env.hub.local_worker
        assert worker is not None
        claims = worker.claims
        ids = [(await env.pay(external_id=f"r-{i}")).json()["id"] for i in range(5)]
        finals = [await env.wait_final(i, within=10) for i in ids]
        assert {f["status"] for f in finals} == {"succeeded"}
        assert worker.claims == claims
        async with env.hub.read_sessions() as r:
            assert (await verify_ledger(r)).balanced
            n = await r.scalar(select(func.count()).select_from(PaymentAttempt))
        assert n == 5


async def test_one_batch_may_hand_over_some_payments_and_leave_the_rest_due(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        worker = Worker(env.hub, concurrency=3)
        env.hub.local_worker = worker
        before = env.hub.acceptor.batches
        replies = await asyncio.gather(*(env.pay(external_id=f"m-{i}") for i in range(12)))
        assert {r.status_code for r in replies} == {201}
        assert env.hub.acceptor.batches - before < 12  # some payments shared a batch
        assert env.hub.acceptor.failed_batches == 0
        assert len(worker._inbox) == 3
        due = await claim_due(env.hub, "w-other", 20)
        assert len(due) == 9
        assert {c.payment.id for c in due}.isdisjoint(c.payment.id for c in worker._inbox)


async def test_a_batch_of_new_payments_and_repeats_posts_only_the_new_ones(db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Repeats (of committed payments, and inside the batch) insert nothing and post nothing; the
    new payments of the same batch get one acceptance entry each, and the balances add up."""
    async with hub_env(db_url, run_workers=False) as env:
        first = [await env.pay(external_id=f"old-{i}", amount="10.00") for i in range(3)]
        assert {r.status_code for r in first} == {201}
        acceptor = env.hub.acceptor
        write = acceptor.write

        async def slowly(batch):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.1)  # the others queue meanwhile: they share the next batch
            return await write(batch)

        monkeypatch.setattr(acceptor, "write", slowly)
        before = acceptor.batches
        bodies = [("old-0", "10.00"), ("new-0", "20.00"), ("old-1", "10.00"), ("new-1", "30.00")]
        bodies += [("new-0", "20.00"), ("old-2", "10.00"), ("new-2", "40.00")]
        replies = await asyncio.gather(*(env.pay(external_id=e, amount=a) for e, a in bodies))
        assert acceptor.batches - before <= 2  # the first alone, perhaps; the rest together
        assert sorted(r.status_code for r in replies) == [200] * 4 + [201] * 3
        async with env.hub.read_sessions() as s:
            payments = {p.external_id: p for p in (await s.scalars(select(Payment))).all()}
            assert sorted(payments) == ["new-0", "new-1", "new-2", "old-0", "old-1", "old-2"]
            entries = (
                await s.execute(select(JournalEntry.payment_id).where(JournalEntry.kind == "payment_accept"))
            ).scalars()
            assert sorted(entries) == sorted(p.id for p in payments.values())  # one entry each
            # and each entry carries its own payment's postings (what the channel collected for it)
            collected_by_entry = (
                await s.execute(
                    select(JournalEntry.payment_id, Posting.amount)
                    .join(Posting, Posting.entry_id == JournalEntry.id)
                    .join(Account, Account.id == Posting.account_id)
                    .where(JournalEntry.kind == "payment_accept", Account.kind == "channel_collected")
                )
            ).all()
            assert sorted(collected_by_entry) == sorted((p.id, p.total) for p in payments.values())
            assert (await verify_ledger(s)).balanced
            collected = await s.scalar(select(Account.balance).where(Account.kind == "channel_collected"))
            assert collected == sum(p.total for p in payments.values())


async def test_acceptance_batches_overlap_on_postgresql_and_each_payment_is_accepted_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the next acceptance batch starts while the running one still writes (it waits
    for the accounts' locks in the database); repeats across overlapping batches still insert and
    post nothing. SQLite writes one batch at a time."""
    async with hub_env(db_url, run_workers=False) as env:
        acceptor = env.hub.acceptor
        acceptor.max_batch = 5
        write = acceptor.write
        at_once = [0, 0]

        async def counted(batch):  # type: ignore[no-untyped-def]
            at_once[0] += 1
            at_once[1] = max(at_once[1], at_once[0])
            try:
                return await write(batch)
            finally:
                at_once[0] -= 1

        monkeypatch.setattr(acceptor, "write", counted)
        keys = [f"ov-{i % 30}" for i in range(40)]  # ten repeats, some in other batches
        replies = await asyncio.gather(*(env.pay(external_id=k, amount="10.00") for k in keys))
        assert sorted(r.status_code for r in replies) == [200] * 10 + [201] * 30
        assert {r.json()["id"] for r in replies} == {r.json()["id"] for r in replies if r.status_code == 201}
        assert at_once[1] == (1 if env.hub.sqlite else 2)
        async with env.hub.read_sessions() as s:
            payments = (await s.scalars(select(Payment))).all()
            assert len(payments) == 30
            entries = (
                await s.execute(select(JournalEntry.payment_id).where(JournalEntry.kind == "payment_accept"))
            ).scalars()
            assert sorted(entries) == sorted(p.id for p in payments)
            assert (await verify_ledger(s)).balanced
            collected = await s.scalar(select(Account.balance).where(Account.kind == "channel_collected"))
            assert collected == sum(p.total for p in payments)


async def test_overlapping_acceptance_batches_never_take_a_deposit_below_its_floor(db_url: str) -> None:
    """Batches of four, two in flight on PostgreSQL, take from the same deposit: together they
    never take it below its floor; the payments it cannot cover go to the next provider."""
    async with hub_env(db_url, run_workers=False, deposits={"p1": 1000_00}) as env:
        env.hub.acceptor.max_batch = 4
        replies = await asyncio.gather(*(env.pay(external_id=f"d-{i}", amount="100.00") for i in range(40)))
        assert {r.status_code for r in replies} == {201}
        on_p1 = [r for r in replies if r.json()["provider"] == "p1"]
        assert len(on_p1) == 10  # 1,000.00 covers exactly ten
        assert {r.json()["provider"] for r in replies} - {"p1"} == {"p2"}
        async with env.hub.read_sessions() as s:
            deposit = await s.scalar(select(Account.balance).where(Account.kind == "provider_deposit"))
            assert deposit == 0
            assert (await verify_ledger(s)).balanced
