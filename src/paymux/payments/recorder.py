"""Group commit of delivery outcomes.

A delivery step ends with an outcome to record: the attempt row, the payment's new state and, for a
final outcome, its journal entry, all only if the worker still holds the payment's lease.
Deliveries finishing at the same time hand their outcomes to one committer task per process, which
records everything queued so far in ONE transaction:

* the leases of the batch's payments are read at once (locked, on PostgreSQL); an outcome whose
  lease was taken over writes nothing;
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

from sqlalchemy import Table, and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

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
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    check_txn_ids: bool = False  # look for provider transaction ids other payments already have

    def update_payment(self, payment_id: int, values: dict[str, Any]) -> None:
        self.updates[tuple(sorted(values))].append({"id": payment_id, **values})

    async def flush_updates(self) -> None:
        conn = await self.session.connection()
        if self.check_txn_ids:
            await self._drop_taken_txn_ids()
        for rows in self.updates.values():
            await direct.update(conn, _payments, rows)
        self.updates.clear()

    async def _drop_taken_txn_ids(self) -> None:
        conn = await self.session.connection()
        rows = [row for rows in self.updates.values() for row in rows]
        for row in rows:
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
        self.updates = defaultdict(list)
        for row in rows:
            self.updates[tuple(sorted(k for k in row if k != "id"))].append(row)


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
        return await self._write(batch, check_txn_ids=False)

    async def write_alone(self, item: Outcome) -> bool:
        try:
            return (await self._write([item], check_txn_ids=False))[0]
        except IntegrityError:
            return (await self._write([item], check_txn_ids=True))[0]

    async def _write(self, batch: list[Outcome], *, check_txn_ids: bool) -> list[bool]:
        results: list[bool] = []
        async with self.hub.sessions() as session:
            held = select(_payments.c.id, _payments.c.lease_owner).where(
                _payments.c.id.in_(sorted({o.payment_id for o in batch}))
            )
            if not self.hub.sqlite:  # SQLite: this transaction is the only writer already
                held = held.order_by(_payments.c.id).with_for_update(key_share=True)  # FOR NO KEY UPDATE
            conn = await session.connection()
            owners = dict((await conn.execute(held)).all())
            w = Writes(session, check_txn_ids=check_txn_ids)
            attempts: list[dict[str, Any]] = []
            for item in batch:
                ok = owners.get(item.payment_id) == item.lease
                results.append(ok)
                if not ok:
                    continue
                await item.apply(w)
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
            await w.flush_updates()
            await session.commit()
        return results
