"""Group commit: many concurrent writers' items written by one task in as few transactions as possible.

Callers :meth:`GroupCommitter.submit` an item and wait; one committer task per process takes
everything queued so far (up to ``max_batch``) and writes it in one transaction. Every caller is
answered only after that transaction committed. If a batch fails as a whole, its items are written
one by one, so one bad item cannot fail the others; an item that still fails gets the exception.

A committer whose callers can wait a little (nobody's answer depends on it) may *linger*: a batch
smaller than ``linger_below`` waits ``linger_seconds`` for company before it is written. A batch
costs about as much for one item as for twenty (the transaction, its statements and the commit),
so lingering spends less of the process's time per item when items trickle in.

A committer may *pipeline* (``pipeline = True``): its :meth:`write` calls :func:`next_may_start`
once the batch holds what the next batch would wait for (its row locks, on PostgreSQL), and the
next batch starts then, in a transaction of its own, instead of after the commit. The next batch's
first round trips (``BEGIN``, its lock request) then overlap the running batch's last ones, and its
locks are granted inside the database the moment the running batch commits. At most two batches
are in flight: the next starts once the newest has called :func:`next_may_start` (or ended) and
the oldest has ended.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import logging
from typing import Generic, TypeVar

from paymux import request_id

log = logging.getLogger("paymux.group_commit")

T = TypeVar("T")
R = TypeVar("R")

# the gate of the batch whose write() runs in this task (set by GroupCommitter._commit)
_gate: contextvars.ContextVar[asyncio.Event | None] = contextvars.ContextVar(
    "paymux_batch_gate", default=None
)


def next_may_start() -> None:
    """In a pipelining committer's :meth:`GroupCommitter.write`: the next batch may start now.
    Elsewhere (or called twice) it does nothing."""
    gate = _gate.get()
    if gate is not None:
        gate.set()


class GroupCommitter(abc.ABC, Generic[T, R]):
    name = "group commit"
    linger_seconds = 0.0  # how long a small batch waits for more items (0: written at once)
    linger_below = 0  # batches of at least this many items never wait
    pipeline = False  # may the next batch start before this one commits (see next_may_start)?

    def __init__(self, max_batch: int = 256) -> None:
        self.max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._inflight: list[tuple[T, asyncio.Future[R]]] = []  # items of the batches being written
        self._writing: set[asyncio.Task[None]] = set()  # pipelined batches' tasks
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0
        self.failed_batches = 0  # batches that failed as a whole and were written item by item

    @abc.abstractmethod
    async def write(self, batch: list[T]) -> list[R]:
        """Write ``batch`` in one transaction and commit; one result per item, in order."""

    async def write_alone(self, item: T) -> R:
        """Write one item of a batch that failed as a whole (a subclass may write it more carefully)."""
        (result,) = await self.write([item])
        return result

    async def submit(self, item: T) -> R:
        if self._task is None or self._task.done():
            # the committer outlives the request that starts it: its log lines name no request
            self._task = asyncio.create_task(
                self._run(), name=f"paymux {self.name}", context=request_id.detached_context()
            )
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._wake.set()
        return await future

    async def close(self, drain_seconds: float = 5.0) -> None:
        """Write what is queued (for up to ``drain_seconds``), then stop; anything left is cancelled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_seconds
        while (self._queue or self._inflight) and self._task is not None and not self._task.done():
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.005)
        for task in [*self._writing, *([self._task] if self._task is not None else [])]:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._task = None
        for _, future in self._inflight + self._queue:
            if not future.done():
                future.cancel()
        self._inflight = []
        self._queue.clear()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.linger_seconds and 0 < len(self._queue) < self.linger_below:
                await asyncio.sleep(self.linger_seconds)
            while self._queue:
                if len(self._writing) >= 2:  # the oldest must end before a third starts
                    await asyncio.wait(self._writing, return_when=asyncio.FIRST_COMPLETED)
                    continue
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                self._inflight += batch
                gate = asyncio.Event()
                if not self.pipeline:
                    await self._commit(batch, gate)
                    continue
                task = asyncio.create_task(self._commit(batch, gate), name=f"paymux {self.name} batch")
                self._writing.add(task)
                task.add_done_callback(self._writing.discard)
                await gate.wait()

    async def _commit(self, batch: list[tuple[T, asyncio.Future[R]]], gate: asyncio.Event) -> None:
        _gate.set(gate)
        try:
            await self._write_batch(batch)
        finally:
            gate.set()
            done = {id(f) for _, f in batch}
            self._inflight = [x for x in self._inflight if id(x[1]) not in done]

    async def _write_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await self.write(items)
        except Exception:
            next_may_start()  # its transaction is over
            self.failed_batches += 1
            log.exception("%s of %d items failed; writing them one by one", self.name, len(batch))
            for item, future in batch:
                try:
                    result = await self.write_alone(item)
                except Exception as e:
                    if not future.done():
                        future.set_exception(e)
                else:
                    if not future.done():
                        future.set_result(result)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        self.batches += 1
        self.items += len(batch)
