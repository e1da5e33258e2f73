"""Group commit of delivery outcomes.

A delivery step ends with an outcome to record: the attempt row, the payment's new state and, for a
final outcome, its journal entry, all only if the worker still holds the payment's lease.
Deliveries finishing at the same time hand their outcomes to one committer task per process, which
records everything queued so far in ONE transaction:

* the first statement is the fence: ONE ``SELECT id FROM payments WHERE (id, lease_owner) IN (...)
  FOR NO KEY UPDATE`` over the batch's (payment, lease) pairs checks that each claim still holds its
  payment and locks the row until the commit (SQLite: this transaction is the only writer); an
  outcome whose lease was taken over (or that an earlier outcome of the same claim released) writes
  nothing. A batch never holds two outcomes of one payment (a later one waits for the next batch),
  so the ids that come back say which outcomes hold their lease. Each outcome's payment update
  releases the lease (``lease_owner = NULL``);
* journal entries and postings are inserted together and balances updated once each, in id
  order; then payment updates with the same columns go out as one ``executemany``, then the
  attempt rows.

If a batch fails as a whole (a database error), its outcomes are recorded one by one; one that still
fails is left to the lease: the payment is claimed again when it runs out, in doubt, and settled by
a status request. Alone, an outcome is checked for a provider transaction id that another payment of
the same provider already has (a provider that reuses its ids breaks the unique constraint): the
outcome is recorded without it, the payment flagged for attention; the attempt row keeps the id.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, and_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import failpoints
from paymux.db import direct
from paymux.db.group_commit import GroupCommitter
from paymux.ledger.batch import JournalBatch
from paymux.payments.models import Payment, PaymentAttempt
from paymux.runtime import Hub

log = logging.getLogger("paymux.recorder")

_attempts = cast(Table, PaymentAttempt.__table__)
_payments = cast(Table, Payment.__table__)


@dataclass(slots=True)
class Writes:
    """What the outcomes of one batch write, gathered to be written together."""

    session: AsyncSession
    journal: JournalBatch = field(default_factory=JournalBatch)
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)  # payment id -> its new values
    check_txn_ids: bool = False  # look for provider transaction ids other payments already have

    def update_payment(self, payment_id: int, values: dict[str, Any]) -> None:
        self.rows.setdefault(payment_id, {"id": payment_id}).update(values)

    async def flush_updates(self) -> None:
        """The payments' updates, in id order; those with the same columns in one ``executemany``."""
        conn = await self.session.connection()
        if self.check_txn_ids:
            await self._drop_taken_txn_ids()
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for pid in sorted(self.rows):
            row = self.rows[pid]
            shapes[tuple(sorted(row))].append(row)
        for rows in shapes.values():
            await direct.update(conn, _payments, rows)
        self.rows.clear()

    async def _drop_taken_txn_ids(self) -> None:
        conn = await self.session.connection()
        for row in self.rows.values():
            txn_id = row.get("provider_txn_id")
            if txn_id is None:
                continue
            this = _payments.alias("this")
            provider = row["provider_id"] if "provider_id" in row else this.c.provider_id
            taken = await conn.scalar(
                select(_payments.c.id)
                .select_from(
                    this.join(
                        _payments, and_(_payments.c.provider_id == provider, _payments.c.id != this.c.id)
                    )
                )
                .where(this.c.id == row["id"], _payments.c.provider_txn_id == txn_id)
                .limit(1)
            )
            if taken is None:
                continue
            log.warning(
                "payment %s: its provider gave transaction id %r, which payment %s already has; "
                "recorded without it and flagged for attention",
                row["id"],
                txn_id,
                taken,
            )
            row.update(
                provider_txn_id=None,
                needs_attention=True,
                error_message=f"the provider gave transaction id {txn_id}, which payment {taken} already has",
            )


Apply = Callable[[Writes], Awaitable[None]]


@dataclass(slots=True)
class Outcome:
    """One delivery step to record: the attempt row and how it changes the payment."""

    payment_id: int
    lease: str
    attempt: dict[str, Any] | None
    apply: Apply


class Recorder(GroupCommitter[Outcome, bool]):
    """Batches delivery outcomes into as few transactions as the database allows."""

    name = "group commit of delivery outcomes"
    # nobody waits on an outcome's answer: a few milliseconds buy batches several times larger
    # (deliveries started together end a few milliseconds apart)
    linger_seconds = 0.005
    linger_below = 64

    def __init__(self, hub: Hub, max_batch: int = 256) -> None:
        super().__init__(max_batch)
        self.hub = hub

    async def record(self, payment_id: int, lease: str, attempt: dict[str, Any] | None, apply: Apply) -> bool:
        """Record one outcome; True when applied (False: the lease was taken over, nothing written)."""
        return await self.submit(Outcome(payment_id, lease, attempt, apply))

    async def write(self, batch: list[Outcome]) -> list[bool]:
        ids = {o.payment_id for o in batch}
        if len(ids) == len(batch):
            return await self._write(batch, check_txn_ids=False)
        # two claims' outcomes for one payment (a worker that claimed it again): one per transaction
        first: list[Outcome] = []
        later: list[Outcome] = []
        seen: set[int] = set()
        for o in batch:
            (later if o.payment_id in seen else first).append(o)
            seen.add(o.payment_id)
        done = dict(zip(map(id, first), await self._write(first, check_txn_ids=False), strict=True))
        for o in later:
            done[id(o)] = await self.write_alone(o)
        return [done[id(o)] for o in batch]

    async def write_alone(self, item: Outcome) -> bool:
        try:
            return (await self._write([item], check_txn_ids=False))[0]
        except IntegrityError:
            return (await self._write([item], check_txn_ids=True))[0]

    async def _write(self, batch: list[Outcome], *, check_txn_ids: bool) -> list[bool]:
        results: list[bool] = []
        async with self.hub.sessions() as session:
            conn = await session.connection()
            held = {
                int(r[0])
                for r in await conn.execute(
                    _fence(sorted((o.payment_id, o.lease) for o in batch), self.hub.sqlite)
                )
            }
            w = Writes(session, check_txn_ids=check_txn_ids)
            attempts: list[dict[str, Any]] = []
            for item in batch:
                ok = item.payment_id in held
                results.append(ok)
                if not ok:
                    continue
                await item.apply(w)
                w.update_payment(item.payment_id, {"lease_owner": None})  # the claim's lease ends here
                if item.attempt is not None:
                    attempts.append(item.attempt)
            # the attempts first: they take no lock an acceptance batch waits for, so the accounts'
            # locks (below) are held one round trip less
            if attempts:
                await direct.insert(conn, _attempts, attempts)
            # the entries (their balance updates take the accounts' locks) before the payments'
            # updates: an acceptance batch holding those accounts and inserting a repeat of one of
            # these payments would otherwise wait on the updated payment while this waits on it
            await w.journal.write(session, self.hub.accounts)
            failpoints.hit("in_outcome_transaction")
            await w.flush_updates()
            await session.commit()
        return results


def _fence(pairs: list[tuple[int, str]], sqlite: bool) -> Any:
    """ONE statement: the ids of the given (payment, lease) pairs whose lease is still held, locked
    until the commit (PostgreSQL, in id order: the order every writer of payments follows).

    Locked, not updated yet: an acceptance batch inserting a repeat of one of these payments would
    wait for an updated row (its unique check) while this batch waits for that batch's accounts."""
    held = select(_payments.c.id).where(tuple_(_payments.c.id, _payments.c.lease_owner).in_(pairs))
    if sqlite:  # this transaction is the only writer
        return held
    # FOR NO KEY UPDATE: the attempts' foreign-key checks do not wait for it
    return held.order_by(_payments.c.id).with_for_update(key_share=True)
