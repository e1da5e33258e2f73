"""Transaction ids of account checks: digits only, unique for ever, never a payment's id.

Every request to a provider carries a transaction id. A pay's is the payment's id (the same on
every retry). An account check (``POST /api/v1/checks``, an inbound gateway's check) has no payment,
so it needs an id of its own, and that id must be safe wherever a protocol puts it:

* OSMP takes ``txn_id`` as a whole number of at most 20 digits, and a provider *registers* a
  payment under the ``txn_id`` of a check: a check id that equals a payment's id could make the
  provider refuse (or confuse) that payment later;
* Cyberplat makes the SESSION from it.

The scheme: a check id is ``10**19 + n`` — 20 digits, starting with ``1``. Payment ids are 64-bit
signed integers (below ``2**63``, about ``9.22 * 10**18``: at most 19 digits), so no check id can ever
be a payment's id, whatever the number of payments. ``n`` is unique across processes, nodes and
restarts: a process takes a block of :data:`BLOCK` numbers at a time by inserting a row into
``check_id_blocks`` (block ``k`` is ``k * BLOCK .. k * BLOCK + BLOCK - 1``); rows are only ever
added, so no block is given out twice. A restarted process takes a new block (the rest of its last
one is never used). One insert per :data:`BLOCK` checks, in a short transaction of its own: like a
database sequence, a number once taken is never given back.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import TYPE_CHECKING

from sqlalchemy import insert

from paymux.db.base import utcnow
from paymux.payments.models import CheckIdBlock

if TYPE_CHECKING:
    from paymux.runtime import Hub

CHECK_ID_BASE = 10**19  # above every 64-bit payment id; 10**19 + n has 20 digits for n < 9 * 10**19
BLOCK = 1000
MAX_DIGITS = 20


def check_id(n: int) -> str:
    """The check id of number ``n``."""
    value = CHECK_ID_BASE + n
    if n < 0 or len(str(value)) > MAX_DIGITS:
        raise ValueError(f"check number {n} is out of range")
    return str(value)


def is_check_id(txn_id: str) -> bool:
    """Whether ``txn_id`` is of the check id form (and so never a payment's id)."""
    return txn_id.isascii() and txn_id.isdigit() and len(txn_id) == MAX_DIGITS and txn_id[0] == "1"


class CheckIds:
    """One process's source of check ids (``Hub.check_ids``)."""

    def __init__(self) -> None:
        self._next = 0
        self._end = 0  # the current block is used up when _next reaches _end
        self._lock = asyncio.Lock()
        self.blocks_taken = 0

    async def next(self, hub: Hub) -> str:
        """A new check id (takes a new block from the database when this one is used up)."""
        if self._next >= self._end:
            async with self._lock:
                if self._next >= self._end:  # another task may have taken a block meanwhile
                    block = await self._take_block(hub)
                    self._next, self._end = block * BLOCK, (block + 1) * BLOCK
        n = self._next
        self._next += 1
        return check_id(n)

    async def _take_block(self, hub: Hub) -> int:
        taken_by = f"{socket.gethostname()}:{os.getpid()}"[:100]
        async with hub.sessions(urgent=True) as session:
            block = await session.scalar(
                insert(CheckIdBlock).values(taken_at=utcnow(), taken_by=taken_by).returning(CheckIdBlock.id)
            )
            await session.commit()
        if block is None:  # pragma: no cover - INSERT ... RETURNING always returns the row
            raise RuntimeError("no check id block was returned")
        self.blocks_taken += 1
        return int(block)
