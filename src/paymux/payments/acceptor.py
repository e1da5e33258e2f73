"""Group commit of payment acceptances.

Concurrent ``POST /api/v1/payments`` requests are validated, priced and routed on their own
(no database), then queued here. One committer task per process writes everything queued so far
in ONE transaction: the payment rows (``ON CONFLICT DO NOTHING`` on the idempotency key), their
acceptance entries, postings and the summed balance updates. Every request is answered only after
that transaction committed, so an accepted payment is durable when the client hears of it, and
one fsync serves a whole batch.

Prepaid deposits: every account the batch may touch is locked first, in ascending id order
(``FOR NO KEY UPDATE`` on PostgreSQL: balances change, keys never do, so other transactions'
foreign-key checks on these accounts are not held up; SQLite has one writer), the deposits'
balances are read, and the batch's payments take them in queue order; a payment whose first choice
cannot be covered takes its next candidate, exactly as one by one.

If a batch fails as a whole (a database error), its payments are retried one by one, each in its
own transaction, so one bad payment cannot fail the others.

When this process runs a worker with room, the batch's payments are inserted already claimed by
it (leased, in doubt) and handed to it after the commit: the acceptance and the job it causes
commit together, and delivery starts without a claim transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.snapshot import ChannelView
from paymux.db import direct
from paymux.db.group_commit import GroupCommitter, next_may_start
from paymux.errors import Problem
from paymux.ledger.batch import JournalBatch
from paymux.ledger.models import Account, Posting
from paymux.ledger.service import AccountKey, balanced_lines, posting_rows
from paymux.money import format_amount
from paymux.payments.models import Payment, PaymentValues
from paymux.payments.postings import accept_lines, provider_account
from paymux.payments.schemas import PaymentIn
from paymux.routing.engine import Option, Plan
from paymux.runtime import Hub

log = logging.getLogger("paymux.acceptor")

_payments = cast(Table, Payment.__table__)
_accounts = cast(Table, Account.__table__)
_postings = cast(Table, Posting.__table__)


@dataclass(slots=True)
class Pending:
    """One validated, priced and routed payment waiting for its batch."""

    channel: ChannelView
    body: PaymentIn
    values: dict[str, Any]  # the payment row, without the provider-specific columns
    plan: Plan
    now: dt.datetime

    @property
    def key(self) -> tuple[int, str]:
        return (self.channel.id, self.body.external_id)


@dataclass(slots=True)
class Accepted:
    """What became of a pending payment: its row, or None when its external_id was taken."""

    row: Any | None
    problem: Problem | None = None


class Acceptor(GroupCommitter[Pending, "Accepted"]):
    """Batches pending payments into as few transactions as the database allows."""

    name = "group commit of acceptances"

    def __init__(self, hub: Hub, max_batch: int = 256) -> None:
        super().__init__(max_batch)
        self.hub = hub
        # PostgreSQL: the next batch starts once this one holds its accounts' locks (SQLite has
        # one writer: a second batch would only wait for the writer's turn)
        self.pipeline = not hub.sqlite

    async def write(self, batch: list[Pending]) -> list[Accepted]:
        results = await write_batch(self.hub, batch)
        return [results[id(item)] for item in batch]


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
    async with hub.sessions(urgent=True) as session:
        ids = await hub.accounts.ids(session, sorted(keys))
        conn = await session.connection()
        prepaid = sorted({ids[k] for k in keys if k.kind == "provider_deposit"})
        balances: dict[int, int] = {}
        if hub.sqlite:  # the only writer: only the deposits' balances need reading
            if prepaid:
                read = select(_accounts.c.id, _accounts.c.balance).where(_accounts.c.id.in_(prepaid))
                balances = {aid: bal for aid, bal in (await conn.execute(read)).all()}
        else:  # lock every account the batch may touch, in id order, before reading the deposits
            locked = (
                select(_accounts.c.id, _accounts.c.balance)
                .where(_accounts.c.id.in_(sorted(ids.values())))
                .order_by(_accounts.c.id)
                .with_for_update(key_share=True)
            )
            balances = {aid: bal for aid, bal in (await conn.execute(locked)).all() if aid in prepaid}
            next_may_start()  # the next batch waits for these locks in the database
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
                    "lease_owner": None,
                }
            )
            chosen[item.key] = (item, key)
        worker = hub.local_worker
        slots = worker.take_slots(len(rows)) if worker is not None else 0
        lease = None
        if slots:
            assert worker is not None
            lease = worker.new_lease()
            for r in rows[:slots]:
                r.update(
                    status="processing", in_doubt=True, lease_owner=lease.token, next_attempt_at=lease.until
                )
        try:
            inserted = await _insert(hub, session, conn, rows, chosen, ids)
            await session.commit()
        except BaseException:
            if worker is not None and slots:
                worker.hand_over((), reserved=slots)
            raise
    if worker is not None and lease is not None:
        worker.hand_over((r for r in inserted.values() if r.lease_owner == lease.token), slots, lease)
    if len(rows) > slots:  # due now, for whichever worker claims first
        hub.work_due()
    for k, new in inserted.items():
        out[id(chosen[k][0])] = Accepted(new)
    for item in batch:
        if id(item) not in out:  # its external_id was taken (before or in this batch)
            out[id(item)] = Accepted(None)
    return out


async def _insert(
    hub: Hub,
    session: AsyncSession,
    conn: Any,
    rows: list[dict[str, Any]],
    chosen: dict[tuple[int, str], tuple[Pending, AccountKey]],
    ids: dict[AccountKey, int],
) -> dict[tuple[int, str], PaymentValues]:
    """Insert the payments (skipping taken external ids) and their acceptance entries."""
    inserted: dict[tuple[int, str], PaymentValues] = {}
    if not rows:
        return inserted
    if not hub.sqlite:
        return await _insert_pg(conn, rows, chosen, ids)
    by_key = {(r["channel_id"], r["external_id"]): r for r in rows}
    returned = await direct.insert(
        conn,
        _payments,
        rows,
        returning=("id", "channel_id", "external_id"),
        on_conflict_do_nothing=("channel_id", "external_id"),
    )
    inserted = {(ch, ext): PaymentValues(id=pid, **by_key[(ch, ext)]) for pid, ch, ext in returned}
    journal = JournalBatch()
    for k, r in inserted.items():
        item, key = chosen[k]
        journal.add("payment_accept", accept_lines(r, key), payment_id=r.id, at=item.now)
    await journal.write(session, hub.accounts)
    return inserted


async def _insert_pg(
    conn: Any,
    rows: list[dict[str, Any]],
    chosen: dict[tuple[int, str], tuple[Pending, AccountKey]],
    ids: dict[AccountKey, int],
) -> dict[tuple[int, str], PaymentValues]:
    """PostgreSQL: the payments, their acceptance entries and postings and the balance updates in
    ONE statement (one round trip). Entries, postings and balances count only the payments
    inserted (an external id taken already inserts nothing). The batch holds the locks of every
    account touched (taken in id order in :func:`write_batch`), so the update's order is free."""
    dialect = conn.dialect
    new = {(r["channel_id"], r["external_id"]): PaymentValues(id=0, **r) for r in rows}  # ids: below
    lines: list[dict[str, Any]] = []
    for place, r in enumerate(rows, 1):
        k = (r["channel_id"], r["external_id"])
        item, key = chosen[k]
        accepted = balanced_lines("payment_accept", accept_lines(new[k], key))
        lines += posting_rows(place, accepted, ids, item.now)  # entry_id: the payment's place
    p = direct.pg_unnest(_payments, rows, dialect)
    po = direct.pg_unnest(_postings, lines, dialect, 1 + len(p.args))
    sql = (
        f"WITH x AS ({p.select}),"
        f" pin AS (INSERT INTO payments ({p.names}) SELECT {p.names} FROM x ORDER BY ord"
        " ON CONFLICT (channel_id, external_id) DO NOTHING RETURNING id, channel_id, external_id),"
        " k AS (SELECT pin.id, x.ord, x.created_at FROM pin JOIN x USING (channel_id, external_id)),"
        " e AS (INSERT INTO journal_entries (kind, payment_id, created_at)"
        " SELECT 'payment_accept', k.id, k.created_at FROM k ORDER BY k.ord RETURNING id, payment_id),"
        f" l AS ({po.select}),"
        f" po AS (INSERT INTO postings ({po.names}) SELECT {po.pick('l', entry_id='e.id')}"
        " FROM l JOIN k ON k.ord = l.entry_id JOIN e ON e.payment_id = k.id),"
        " b AS (UPDATE accounts AS a SET balance = a.balance + d.delta, updated_at = d.at"
        " FROM (SELECT l.account_id, sum(l.amount) AS delta, max(l.created_at) AS at"
        " FROM l JOIN k ON k.ord = l.entry_id GROUP BY l.account_id) AS d"
        " WHERE a.id = d.account_id AND d.delta <> 0)"
        " SELECT id, channel_id, external_id FROM pin"
    )
    inserted: dict[tuple[int, str], PaymentValues] = {}
    for pid, ch, ext in (await conn.exec_driver_sql(sql, (*p.args, *po.args))).all():
        payment = inserted[(ch, ext)] = new[(ch, ext)]
        payment.id = pid
    return inserted
