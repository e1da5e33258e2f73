"""Group commit of payment acceptances.

Concurrent ``POST /api/v1/payments`` requests are validated, priced and routed on their own
(no database), then queued here. One committer task per process writes everything queued so far
in ONE transaction: the payment rows (``ON CONFLICT DO NOTHING`` on the idempotency key), their
acceptance entries, postings and the summed balance updates. Every request is answered only after
that transaction committed, so an accepted payment is durable when the client hears of it, and
one fsync serves a whole batch.

Prepaid deposits: every account the batch may touch is locked first, in ascending id order
(``FOR UPDATE`` on PostgreSQL; SQLite has one writer), the deposits' balances are read, and the
batch's payments take them in queue order; a payment whose first choice cannot be covered takes
its next candidate, exactly as one by one.

If a batch fails as a whole (a database error), its payments are retried one by one, each in its
own transaction, so one bad payment cannot fail the others.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from paymux.catalog.snapshot import ChannelView
from paymux.errors import Problem
from paymux.ledger.models import Account, JournalEntry, Posting
from paymux.ledger.service import AccountKey
from paymux.money import format_amount
from paymux.payments.models import Payment
from paymux.payments.postings import accept_lines, provider_account
from paymux.payments.schemas import PaymentIn
from paymux.routing.engine import Option, Plan
from paymux.runtime import Hub

log = logging.getLogger("paymux.acceptor")

_payments = cast(Table, Payment.__table__)
_entries = cast(Table, JournalEntry.__table__)
_postings = cast(Table, Posting.__table__)
_accounts = cast(Table, Account.__table__)


@dataclass(slots=True)
class Pending:
    """One validated, priced and routed payment waiting for its batch."""

    channel: ChannelView
    body: PaymentIn
    values: dict[str, Any]  # the payment row, without the provider-specific columns
    plan: Plan
    now: dt.datetime
    future: asyncio.Future[Accepted] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def key(self) -> tuple[int, str]:
        return (self.channel.id, self.body.external_id)


class NewPayment:
    """A payment row just inserted, built from the values written (nothing is read back)."""

    provider_txn_id = None
    error_code = None
    error_message = None
    final_at = None
    # the columns the ledger lines and the API view read (all set from the written values)
    channel_id: int
    currency: str
    amount: int
    fee: int
    total: int
    remuneration: int
    commission: int

    def __init__(self, id: int, **values: Any) -> None:
        self.id = id
        self.__dict__.update(values)


@dataclass(slots=True)
class Accepted:
    """What became of a pending payment: its row, or None when its external_id was taken."""

    row: Any | None
    problem: Problem | None = None


class Acceptor:
    """Batches pending payments into as few transactions as the database allows."""

    def __init__(self, hub: Hub, max_batch: int = 256) -> None:
        self.hub = hub
        self.max_batch = max_batch
        self._queue: list[Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.accepted = 0

    async def submit(self, item: Pending) -> Accepted:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="paymux acceptor")
        self._queue.append(item)
        self._wake.set()
        return await item.future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                await self._commit(batch)

    async def _commit(self, batch: list[Pending]) -> None:
        try:
            results = await write_batch(self.hub, batch)
        except Exception:
            log.exception("group commit of %d payments failed; accepting them one by one", len(batch))
            results = {}
            for item in batch:
                try:
                    results[id(item)] = (await write_batch(self.hub, [item]))[id(item)]
                except Exception as e:
                    if not item.future.done():
                        item.future.set_exception(e)
        self.batches += 1
        for item in batch:
            res = results.get(id(item))
            if res is not None and not item.future.done():
                item.future.set_result(res)
                if res.row is not None:
                    self.accepted += 1
        self.hub.wakeup.set()


def _choose(
    item: Pending, balances: dict[int, int], ids: dict[AccountKey, int]
) -> tuple[Option, AccountKey, str] | Problem:
    """The first candidate whose deposit (if prepaid) covers the amount; takes it from the balance."""
    amount = item.values["amount"]
    cur = item.values["currency"]
    uncovered: list[str] = []
    for option in item.plan.options:
        p = option.provider
        key = provider_account(p.id, p.settlement, cur)
        if p.settlement == "prepaid":
            aid = ids[key]
            if balances[aid] - amount < -int(p.overdraft.get(cur, 0)):
                uncovered.append(f"{p.code}: deposit cannot cover {format_amount(amount, cur)}")
                continue
            balances[aid] -= amount
        return option, key, item.plan.reason(option, uncovered)
    reasons = "; ".join(item.plan.skipped + uncovered) or "the service has no route"
    return Problem(
        503,
        "no-provider-available",
        "No provider can take this payment now",
        f"no provider of service {item.body.service} can take this payment ({reasons})",
    )


async def write_batch(hub: Hub, batch: list[Pending]) -> dict[int, Accepted]:
    """Accept ``batch`` in one transaction; results by ``id(item)``."""
    out: dict[int, Accepted] = {}
    first: dict[tuple[int, str], Pending] = {}
    primaries: list[Pending] = []
    for item in batch:  # a repeat inside the batch waits for the first of its key
        if item.key in first:
            continue
        first[item.key] = item
        primaries.append(item)
    keys: set[AccountKey] = set()
    for item in primaries:
        cur = item.values["currency"]
        keys.add(AccountKey("channel_collected", item.channel.id, cur))
        keys.add(AccountKey("fees_unearned", 0, cur))
        for o in item.plan.options:
            keys.add(provider_account(o.provider.id, o.provider.settlement, cur))
    async with hub.sessions() as session:
        ids = await hub.accounts.ids(session, sorted(keys))
        conn = await session.connection()
        prepaid = sorted({ids[k] for k in keys if k.kind == "provider_deposit"})
        locked = select(_accounts.c.id, _accounts.c.balance).where(_accounts.c.id.in_(sorted(ids.values())))
        if not hub.sqlite:
            locked = locked.order_by(_accounts.c.id).with_for_update()
        balances = {aid: bal for aid, bal in (await conn.execute(locked)).all() if aid in prepaid}
        rows: list[dict[str, Any]] = []
        chosen: dict[tuple[int, str], tuple[Pending, AccountKey]] = {}
        for item in primaries:
            pick = _choose(item, balances, ids)
            if isinstance(pick, Problem):
                out[id(item)] = Accepted(None, pick)
                continue
            option, key, reason = pick
            rows.append(
                {
                    **item.values,
                    "provider_id": option.provider.id,
                    "provider_service_code": option.candidate.provider_service_code,
                    "remuneration": option.remuneration,
                    "remuneration_tariff_id": option.remuneration_tariff_id,
                    "route_reason": reason,
                }
            )
            chosen[item.key] = (item, key)
        inserted: dict[tuple[int, str], NewPayment] = {}
        if rows:
            ins = (
                sqlite.insert(_payments) if hub.sqlite else postgresql.insert(_payments)
            ).on_conflict_do_nothing(index_elements=["channel_id", "external_id"])
            by_key = {(r["channel_id"], r["external_id"]): r for r in rows}
            returned = ins.returning(_payments.c.id, _payments.c.channel_id, _payments.c.external_id)
            inserted = {
                (ch, ext): NewPayment(id=pid, **by_key[(ch, ext)])
                for pid, ch, ext in (await conn.execute(returned, rows)).all()
            }
        if inserted:
            entry_rows = await conn.execute(
                insert(_entries).returning(_entries.c.id, _entries.c.payment_id),
                [
                    {
                        "kind": "payment_accept",
                        "payment_id": r.id,
                        "memo": None,
                        "created_at": chosen[k][0].now,
                    }
                    for k, r in inserted.items()
                ],
            )
            entry_of = {pid: eid for eid, pid in entry_rows.all()}
            postings: list[dict[str, Any]] = []
            deltas: dict[int, int] = defaultdict(int)
            for k, r in inserted.items():
                item, key = chosen[k]
                for ln in accept_lines(r, key):
                    if ln.amount == 0:
                        continue
                    aid = ids[ln.key]
                    deltas[aid] += ln.amount
                    postings.append(
                        {
                            "entry_id": entry_of[r.id],
                            "account_id": aid,
                            "amount": ln.amount,
                            "currency": ln.key.currency,
                            "created_at": item.now,
                        }
                    )
            await conn.execute(insert(_postings), postings)
            now = batch[-1].now
            for aid in sorted(deltas):
                await conn.execute(
                    update(_accounts)
                    .where(_accounts.c.id == aid)
                    .values(balance=_accounts.c.balance + deltas[aid], updated_at=now)
                )
        await session.commit()
    for k, r in inserted.items():
        out[id(chosen[k][0])] = Accepted(r)
    for item in batch:
        if id(item) not in out:  # its external_id was taken (before or in this batch)
            out[id(item)] = Accepted(None)
    return out
