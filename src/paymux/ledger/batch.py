"""Many journal entries written together: one insert of entries, one of postings, summed balances.

Used by the group committers (acceptances, delivery outcomes): each entry is checked to balance
when it is added; :meth:`JournalBatch.write` then writes them all in the caller's transaction and
updates every touched balance once, in ascending account id order (the ledger's lock order).
Entries with a floor (a deposit that may not go below its overdraft) are not for this class: post
them with :func:`paymux.ledger.service.post_entry`, which checks the floor.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from paymux.db import direct
from paymux.ledger.models import Account, JournalEntry, Posting
from paymux.ledger.service import AccountCache, AccountKey, Line, balanced_lines, posting_rows

_entries = cast(Table, JournalEntry.__table__)
_postings = cast(Table, Posting.__table__)
_accounts = cast(Table, Account.__table__)
_ADD_SQLITE = "UPDATE accounts SET balance = balance + ?, updated_at = ? WHERE id = ?"
_ADD_PG = "UPDATE accounts SET balance = balance + $1, updated_at = $2 WHERE id = $3"


@dataclass(slots=True)
class _Entry:
    kind: str
    lines: list[Line]
    payment_id: int | None
    memo: str | None
    at: dt.datetime


class JournalBatch:
    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def __len__(self) -> int:
        return len(self._entries)

    def add(
        self,
        kind: str,
        lines: Iterable[Line],
        *,
        at: dt.datetime,
        payment_id: int | None = None,
        memo: str | None = None,
    ) -> None:
        """Queue one entry (raises LedgerError now if it does not balance)."""
        self._entries.append(_Entry(kind, balanced_lines(kind, lines), payment_id, memo, at))

    async def write(self, session: AsyncSession, accounts: AccountCache) -> list[int]:
        """Write the queued entries in ``session``'s transaction; their ids, in the order added."""
        if not self._entries:
            return []
        ids = await accounts.ids(session, {ln.key for e in self._entries for ln in e.lines})
        conn = await session.connection()
        entry_rows = [
            {"kind": e.kind, "payment_id": e.payment_id, "memo": e.memo, "created_at": e.at}
            for e in self._entries
        ]
        if conn.dialect.name == "postgresql":
            entry_ids = await self._insert_pg(conn, entry_rows, ids)
        else:
            entry_ids = [
                int(r[0])
                for r in await direct.insert(conn, _entries, entry_rows, returning=("id",), ordered=True)
            ]
            postings = [
                row
                for eid, e in zip(entry_ids, self._entries, strict=True)
                for row in posting_rows(eid, e.lines, ids, e.at)
            ]
            await direct.insert(conn, _postings, postings)
        deltas: dict[int, int] = defaultdict(int)
        for e in self._entries:
            for ln in e.lines:
                deltas[ids[ln.key]] += ln.amount
        now = max(e.at for e in self._entries)
        changed = [(deltas[aid], now, aid) for aid in sorted(deltas) if deltas[aid]]
        # executed in this order (ascending ids): the lock order every writer follows
        await direct.execute_many(
            conn,
            _ADD_SQLITE,
            _ADD_PG,
            _accounts,
            ("balance", "updated_at", "id"),
            changed,
        )
        self._entries.clear()
        return entry_ids

    async def _insert_pg(
        self, conn: AsyncConnection, entry_rows: list[dict[str, Any]], ids: dict[AccountKey, int]
    ) -> list[int]:
        """PostgreSQL: the entries and their postings in one statement (one round trip): the
        entries' ids come back in the order inserted (they grow in that order), and each posting
        finds its entry by that ordinal."""
        postings = [
            row for place, e in enumerate(self._entries, 1) for row in posting_rows(place, e.lines, ids, e.at)
        ]
        ents = direct.pg_unnest(_entries, entry_rows, conn.dialect)
        posts = direct.pg_unnest(_postings, postings, conn.dialect, 1 + len(ents.args))
        sql = (
            f"WITH e AS (INSERT INTO journal_entries ({ents.names})"
            f" SELECT {ents.names} FROM ({ents.select}) AS u ORDER BY ord RETURNING id),"
            " m AS (SELECT id, row_number() OVER (ORDER BY id) AS ord FROM e),"
            f" p AS (INSERT INTO postings ({posts.names}) SELECT {posts.pick('v', entry_id='m.id')}"
            f" FROM ({posts.select}) AS v JOIN m ON m.ord = v.entry_id)"
            " SELECT id FROM m ORDER BY ord"
        )
        return [int(r[0]) for r in (await conn.exec_driver_sql(sql, (*ents.args, *posts.args))).all()]
