"""An in-process cache whose values are read again ahead of their expiry, one read at a time.

Some values are used by every request: a channel's API key, the catalog snapshot. With a plain
time-to-live cache, every request in flight when a value expires waits for it to be read again (and,
without single-flight, reads it itself): under load that is every connection at once. On SQLite,
64 such reads behind the reader threads held all 64 requests for about 500 ms once every 5 s.

Here:

* a value younger than ``refresh_after`` is served as it is;
* a value older than that but younger than ``ttl`` is served too, and the first request that sees it
  starts one read in the background, which replaces the value when it ends;
* a missing or expired value is read once, and every request asking meanwhile waits for that read.

So a value is never served more than ``ttl`` after the read that produced it began, and under steady
use nobody waits for a read. :meth:`RefreshAhead.clear` (what is cached changed) drops every value
and keeps reads already running from storing theirs. ``None`` is never stored (an unknown key is
read again each time).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger("paymux.cache")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RefreshAhead(Generic[K, V]):
    def __init__(self, name: str, ttl_seconds: float, refresh_share: float = 0.8) -> None:
        self.name = name
        self.ttl_ns = int(ttl_seconds * 1e9)
        self.refresh_after_ns = int(self.ttl_ns * refresh_share)
        self._values: dict[K, tuple[V, int]] = {}  # key -> (value, when its read began)
        self._reads: dict[K, asyncio.Task[V | None]] = {}
        self._generation = 0
        self.reads = 0  # reads started (for tests and counters)

    def clear(self) -> None:
        """Forget every value; reads still running will not store theirs."""
        self._values.clear()
        self._reads.clear()
        self._generation += 1

    def peek(self, key: K) -> V | None:
        """The value held for ``key`` now, however old (no read)."""
        got = self._values.get(key)
        return None if got is None else got[0]

    def fresh(self, key: K) -> V | None:
        """The value held for ``key`` if it is still within its time to live (no read)."""
        got = self._values.get(key)
        if got is None or time.monotonic_ns() - got[1] >= self.ttl_ns:
            return None
        return got[0]

    async def get(self, key: K, load: Callable[[], Awaitable[V | None]]) -> V | None:
        """The value of ``key``; ``load`` reads it when it must be read."""
        if self.ttl_ns <= 0:  # caching is off: every request reads for itself
            return await load()
        got = self._values.get(key)
        if got is not None:
            value, began = got
            age = time.monotonic_ns() - began
            if age < self.ttl_ns:
                if age >= self.refresh_after_ns and key not in self._reads:
                    self._start(key, load)
                return value
        read = self._reads.get(key) or self._start(key, load)
        # a request cancelled meanwhile (its client went away) leaves the read to the others
        return await asyncio.shield(read)

    async def close(self) -> None:
        """Cancel the reads running (at shutdown)."""
        reads = list(self._reads.values())
        self.clear()
        for task in reads:
            task.cancel()
        await asyncio.gather(*reads, return_exceptions=True)

    def _start(self, key: K, load: Callable[[], Awaitable[V | None]]) -> asyncio.Task[V | None]:
        generation = self._generation
        began = time.monotonic_ns()

        async def read() -> V | None:
            try:
                value = await load()
            finally:
                if self._reads.get(key) is task:
                    del self._reads[key]
            if generation == self._generation:
                if value is None:
                    self._values.pop(key, None)
                else:
                    self._values[key] = (value, began)
            return value

        task = asyncio.create_task(read(), name=f"paymux {self.name} read")
        task.add_done_callback(self._log_failure)
        self._reads[key] = task
        self.reads += 1
        return task

    def _log_failure(self, task: asyncio.Task[V | None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # those waiting get the exception; a background read's failure is only logged, and
            # the value it would have replaced expires as usual
            log.warning("%s: read failed: %r", self.name, task.exception())
