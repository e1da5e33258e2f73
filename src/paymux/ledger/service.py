"""Posting journal entries and reading balances.

Every entry must sum to zero per currency (checked before anything is written). Postings are
only ever inserted. Account balances are updated in ascending account id order, so concurrent
transactions lock them in one fixed order and cannot deadlock on each other.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from sqlalchemy import Select, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paymux.db.base import utcnow
from paymux.ledger.models import ACCOUNT_KINDS, Account, JournalEntry, Posting


class LedgerError(ValueError):
    pass


class InsufficientFunds(LedgerError):
    def __init__(self, key: AccountKey) -> None:
        super().__init__(f"account {key.kind}/{key.owner_id}/{key.currency} cannot cover the amount")
        self.key = key


class AccountKey(NamedTuple):
    kind: str
    owner_id: int
    currency: str


SYSTEM = 0


class AccountCache:
    """Account ids by key. Accounts are created on first use.

    Only ids read back through ``committed`` (a separate read-only session, which sees committed
    rows only) are cached, so a rolled-back transaction or savepoint can never leave an id here
    for an account that does not exist.
    """

    def __init__(self, committed: async_sessionmaker[AsyncSession] | None = None) -> None:
        self._ids: dict[AccountKey, int] = {}
        self._committed = committed

    def clear(self) -> None:
        self._ids.clear()

    async def ids(self, session: AsyncSession, keys: Iterable[AccountKey]) -> dict[AccountKey, int]:
        out: dict[AccountKey, int] = {}
        missing: list[AccountKey] = []
        for k in keys:
            i = self._ids.get(k)
            if i is None:
                missing.append(k)
            else:
                out[k] = i
        if missing and self._committed is not None:
            async with self._committed() as reader:
                for k in missing:
                    found = await reader.scalar(_account_query(k))
                    if found is not None:
                        out[k] = self._ids[k] = found
            missing = [k for k in missing if k not in out]
        # created in one order everywhere: two transactions creating the same new accounts (two
        # workers' first outcomes) then wait for each other in turn, never for each other at once
        for k in sorted(missing):
            out[k] = await _get_or_create(session, k)
        return out


def posting_rows(
    entry_id: int, lines: Iterable[Line], ids: dict[AccountKey, int], at: dt.datetime
) -> list[dict[str, Any]]:
    """The posting rows of one entry. ``entry_id`` is its id, or, in a PostgreSQL statement that
    inserts the entries too, its place among them (from 1): the id is known only inside."""
    return [
        {
            "entry_id": entry_id,
            "account_id": ids[ln.key],
            "amount": ln.amount,
            "currency": ln.key.currency,
            "created_at": at,
        }
        for ln in lines
    ]


def _account_query(key: AccountKey) -> Select[int]:
    return select(Account.id).where(
        Account.kind == key.kind, Account.owner_id == key.owner_id, Account.currency == key.currency
    )


async def _get_or_create(session: AsyncSession, key: AccountKey) -> int:
    if key.kind not in ACCOUNT_KINDS:
        raise LedgerError(f"unknown account kind {key.kind!r}")
    stmt = _account_query(key)
    found = await session.scalar(stmt)
    if found is not None:
        return found
    try:
        async with session.begin_nested():
            res = await session.execute(
                insert(Account)
                .values(
                    kind=key.kind,
                    owner_id=key.owner_id,
                    currency=key.currency,
                    balance=0,
                    updated_at=utcnow(),
                )
                .returning(Account.id)
            )
            return int(res.scalar_one())
    except IntegrityError:  # created concurrently by another transaction
        return int((await session.execute(stmt)).scalar_one())


@dataclass(slots=True)
class Line:
    key: AccountKey
    amount: int


def balanced_lines(kind: str, lines: Iterable[Line]) -> list[Line]:
    """The non-zero ``lines`` of an entry, checked to sum to zero per currency (else LedgerError)."""
    out = [ln for ln in lines if ln.amount != 0]
    sums: dict[str, int] = defaultdict(int)
    for ln in out:
        if ln.key.currency != ln.key.currency.upper() or len(ln.key.currency) != 3:
            raise LedgerError(f"bad currency {ln.key.currency!r}")
        sums[ln.key.currency] += ln.amount
    unbalanced = {c: s for c, s in sums.items() if s != 0}
    if unbalanced:
        raise LedgerError(f"journal entry {kind} does not balance: {unbalanced}")
    if not out:
        raise LedgerError(f"journal entry {kind} has no non-zero lines")
    return out


async def post_entry(
    session: AsyncSession,
    accounts: AccountCache,
    kind: str,
    lines: Sequence[Line],
    *,
    payment_id: int | None = None,
    memo: str | None = None,
    floors: dict[AccountKey, int] | None = None,
    at: dt.datetime | None = None,
) -> int:
    """Write one balanced journal entry and update balances; returns the entry id.

    ``floors`` maps an account to the lowest balance it may reach (e.g. minus the overdraft of a
    prepaid provider's deposit); crossing it raises :class:`InsufficientFunds` and the caller
    rolls back.
    """
    lines = balanced_lines(kind, lines)
    now = at or utcnow()
    ids = await accounts.ids(session, (ln.key for ln in lines))
    conn = await session.connection()  # Core statements: no ORM bookkeeping on the hot path
    entry_id = (
        await conn.execute(
            _INSERT_ENTRY, {"kind": kind, "payment_id": payment_id, "memo": memo, "created_at": now}
        )
    ).scalar_one()
    await conn.execute(_INSERT_POSTING, posting_rows(entry_id, lines, ids, now))
    deltas: dict[int, int] = defaultdict(int)
    key_of: dict[int, AccountKey] = {}
    for ln in lines:
        deltas[ids[ln.key]] += ln.amount
        key_of[ids[ln.key]] = ln.key
    floors = floors or {}
    for account_id in sorted(deltas):
        delta = deltas[account_id]
        key = key_of[account_id]
        floor = floors.get(key)
        params = {"aid": account_id, "delta": delta, "now": now}
        if floor is not None and delta < 0:
            res = await conn.execute(_UPDATE_BALANCE_FLOOR, {**params, "floor": floor})
        else:
            res = await conn.execute(_UPDATE_BALANCE, params)
        if res.first() is None:
            raise InsufficientFunds(key)
    return int(entry_id)


_entries = cast(Table, JournalEntry.__table__)
_postings = cast(Table, Posting.__table__)
_accounts = cast(Table, Account.__table__)
_INSERT_ENTRY = insert(_entries).returning(_entries.c.id)
_INSERT_POSTING = insert(_postings)
_UPDATE_BALANCE = (
    update(_accounts)
    .where(_accounts.c.id == bindparam("aid"))
    .values(balance=_accounts.c.balance + bindparam("delta"), updated_at=bindparam("now"))
    .returning(_accounts.c.id)
)
_UPDATE_BALANCE_FLOOR = _UPDATE_BALANCE.where(_accounts.c.balance + bindparam("delta") >= bindparam("floor"))


async def balance(session: AsyncSession, accounts: AccountCache, key: AccountKey) -> int:
    ids = await accounts.ids(session, [key])
    return int(await session.scalar(select(Account.balance).where(Account.id == ids[key])) or 0)


@dataclass(slots=True)
class LedgerCheck:
    entries: int
    postings: int
    unbalanced_entries: list[int]
    mismatched_accounts: list[int]
    totals: dict[str, int]

    @property
    def balanced(self) -> bool:
        return not self.unbalanced_entries and not self.mismatched_accounts and not any(self.totals.values())


async def verify_ledger(session: AsyncSession) -> LedgerCheck:
    """Check every entry sums to zero per currency and every balance equals its postings."""
    bad_entries = (
        await session.scalars(
            select(Posting.entry_id)
            .group_by(Posting.entry_id, Posting.currency)
            .having(func.sum(Posting.amount) != 0)
        )
    ).all()
    sums = (
        select(Posting.account_id, func.coalesce(func.sum(Posting.amount), 0).label("s"))
        .group_by(Posting.account_id)
        .subquery()
    )
    mismatched = (
        await session.scalars(
            select(Account.id)
            .outerjoin(sums, sums.c.account_id == Account.id)
            .where(Account.balance != func.coalesce(sums.c.s, 0))
        )
    ).all()
    totals = {
        cur: int(total)
        for cur, total in (
            await session.execute(
                select(Posting.currency, func.sum(Posting.amount)).group_by(Posting.currency)
            )
        ).all()
    }
    entries = int(await session.scalar(select(func.count()).select_from(JournalEntry)) or 0)
    postings = int(await session.scalar(select(func.count()).select_from(Posting)) or 0)
    return LedgerCheck(entries, postings, sorted(set(bad_entries)), list(mismatched), totals)
