"""Changing rows that another request may change at the same moment.

**Deciding from a row's state** (cancel a payment, approve an order, retry a task): read the row with
:func:`locked`, never with a plain read followed by a conditional ``UPDATE``. On PostgreSQL two such
requests at once otherwise both read the old state; the one that waited for the other's row lock
then finds its ``UPDATE`` matching nothing and answers from the state it read before waiting (a 409
that contradicts the row), or, with an unconditional write, acts a second time. With the lock taken
by the read, the second request waits there and decides from the state the first one committed: it
gets the answer a repeat gets.

**Creating a row once** (a top-up by its reference, a rate or tariff version by its time): a check
that it is not there yet does not see one being created at the same moment. Insert it with
:func:`inserted` and, when a unique key says it exists now, read the one committed and answer as a
repeat does.

``FOR UPDATE`` (or ``FOR NO KEY UPDATE`` with ``key_share``, for rows whose keys never change: other
transactions' foreign-key checks on them then do not wait) on PostgreSQL; SQLite has no row locks
and needs none, its writer runs one transaction at a time.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


async def locked(session: AsyncSession, model: type[T], ident: Any, *, key_share: bool = False) -> T | None:
    """The row of ``model`` with primary key ``ident`` as committed now, locked until the transaction
    ends (the session's copy is replaced by it); None if there is none."""
    return await session.get(
        model,
        ident,
        with_for_update={"key_share": True} if key_share else True,
        populate_existing=True,
    )


async def inserted(session: AsyncSession, row: object) -> bool:
    """Insert ``row`` in a savepoint; False, with nothing inserted, when the database refuses it (a row
    with the same unique key exists: on PostgreSQL one inserted at the same moment waits for that
    transaction to end). The caller then reads what is there."""
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        if row in session:
            session.expunge(row)
        return False
    return True
