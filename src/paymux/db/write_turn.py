"""Turns on SQLite's single writer, in arrival order, with acceptances first.

SQLite admits one writer at a time, so the writers of a process take turns on an asyncio lock
instead of queueing on the database lock. An urgent writer (the group commit of acceptances: a
client waits for its answer) goes before every waiting ordinary one (delivery outcomes, claims,
back-office changes); within a class, first come, first served. The turn is handed straight to the
next waiter on release, and a waiter cancelled after it was handed the turn passes it on.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator


class WriteTurn:
    def __init__(self) -> None:
        self._held = False
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    @property
    def held(self) -> bool:
        return self._held

    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiting if not f.done())

    async def acquire(self, urgent: bool = False) -> None:
        if not self._held:  # free: nobody live is waiting (release hands the turn to a live waiter)
            self._held = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (0 if urgent else 1, next(self._seq), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # handed the turn, then cancelled: pass it on
                self.release()
            raise

    def release(self) -> None:
        while self._waiting:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)  # the turn goes to this waiter; still held
                return
        self._held = False

    @contextlib.asynccontextmanager
    async def turn(self, urgent: bool = False) -> AsyncIterator[None]:
        await self.acquire(urgent)
        try:
            yield
        finally:
            self.release()
