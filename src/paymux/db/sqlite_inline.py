"""SQLite's writer connection run on the event loop's own thread.

aiosqlite runs every call (cursor, execute, fetch, close) in a thread of its own and hands the
result back through the event loop: about four round trips through a busy loop per statement, a
few dozen per group-commit batch, and each waits its turn among the loop's other callbacks. The one
writer connection of a process instead runs its statements directly on the loop's thread: a write
statement takes microseconds, and the batches of the group committers then take as long as SQLite
needs, not as long as the loop needs to come round.

What could block the loop for long is handled here:

* the database lock held by another process (a ``paymux worker``, a CLI command): the connection's
  busy timeout is 0 and a ``BEGIN`` that finds the database locked is retried with ``asyncio.sleep``
  (growing pauses, up to ``lock_timeout`` seconds), so the loop keeps serving meanwhile;
* commits: a commit waits for fsync (``synchronous=FULL``). While commits are quick (a moving
  average under :data:`INLINE_COMMIT_UNDER` seconds) they run on the loop's thread: handing one to
  a thread and back costs more than that, since the thread's return waits for the interpreter lock
  and for the loop to come round (3.3 ms per commit measured against a 0.16 ms fsync, and 20 % fewer
  accepted payments/s). On a slower disk they run in a thread of their own (the writer is not used
  meanwhile), and the time measured there keeps the average current;
* WAL checkpoints: the writer does not checkpoint at commit (``wal_autocheckpoint=0``); after every
  :data:`CHECKPOINT_EVERY` commits a passive checkpoint runs in a thread on a connection of its own,
  and the writer's next ``BEGIN`` waits for it (with ``await``: the loop keeps serving). Writing
  while it runs would leave it behind for ever: the WAL restarts from its beginning only when a
  writer finds every frame checkpointed, so it would grow without end (13 GB in a 1,000,000-payment
  run before this gate) and its index, mapped into memory, with it. ``journal_size_limit`` trims the
  file after a restart.

Readers stay on aiosqlite (threads): a long back-office query must not hold up the loop.

The classes implement the small async connection/cursor surface that SQLAlchemy's aiosqlite
dialect uses, and are plugged in with ``create_async_engine(..., async_creator=...)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from paymux.db.uncancellable import wait_through_cancellation

log = logging.getLogger("paymux.sqlite")

CHECKPOINT_EVERY = 100  # commits between passive WAL checkpoints (in a thread)
INLINE_COMMIT_UNDER = 0.002  # seconds: commits quicker than this on average run on the loop's thread
JOURNAL_SIZE_LIMIT = 64 * 2**20  # bytes the WAL file is trimmed to after it restarts


class InlineCursor:
    def __init__(self, owner: InlineConnection) -> None:
        self._owner = owner
        self._cursor = owner.raw.cursor()

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(
        self, sql: str, parameters: Sequence[Any] | dict[str, Any] | None = None
    ) -> InlineCursor:
        args = () if parameters is None else parameters
        if sql.lstrip()[:5].upper() != "BEGIN":
            self._cursor.execute(sql, args)
            return self
        await self._owner.begin(self._cursor, sql, args)
        return self

    async def executemany(self, sql: str, seq: Iterable[Sequence[Any] | dict[str, Any]]) -> InlineCursor:
        self._cursor.executemany(sql, seq)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size) if size is not None else self._cursor.fetchmany()

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *sizes: Any) -> None:
        return None


class InlineConnection:
    """An sqlite3 connection with the async surface SQLAlchemy's aiosqlite dialect expects."""

    def __init__(self, raw: sqlite3.Connection, path: str, lock_timeout: float) -> None:
        self.raw = raw
        self.path = path
        self.lock_timeout = lock_timeout
        self._commits = 0
        self.commit_seconds = 0.0  # moving average of a commit's own duration
        self._checkpointing: asyncio.Future[None] | None = None

    # aiosqlite's attribute for the underlying connection (the dialect tests it before commit/rollback)
    @property
    def _connection(self) -> sqlite3.Connection:
        return self.raw

    @property
    def isolation_level(self) -> str | None:
        return self.raw.isolation_level

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def cursor(self) -> InlineCursor:
        return InlineCursor(self)

    async def begin(self, cursor: sqlite3.Cursor, sql: str, args: Any) -> None:
        """BEGIN, after a running checkpoint, waiting for another process's write lock without
        blocking the loop."""
        if self._checkpointing is not None and not self._checkpointing.done():
            await self._wait_for_checkpoint()
        deadline = time.monotonic() + self.lock_timeout
        pause = 0.001
        while True:
            try:
                cursor.execute(sql, args)
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def commit(self) -> None:
        if self.raw.in_transaction:
            if self.commit_seconds < INLINE_COMMIT_UNDER:
                self._timed_commit()
            else:
                await _off_the_loop(self._timed_commit)
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0:
            self._checkpoint_soon()

    async def rollback(self) -> None:
        if self.raw.in_transaction:
            self.raw.rollback()

    def _timed_commit(self) -> None:
        started = time.perf_counter()
        self.raw.commit()
        self.commit_seconds += (time.perf_counter() - started - self.commit_seconds) / 8

    async def _wait_for_checkpoint(self) -> None:
        assert self._checkpointing is not None
        # a failed checkpoint must not fail the write (it is logged; the next one tries again)
        await asyncio.wait([self._checkpointing])

    async def close(self) -> None:
        if self._checkpointing is not None:
            await self._wait_for_checkpoint()
        self.raw.close()

    def stop(self) -> None:
        self.raw.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self.raw.create_function(*args, **kwargs)

    def _checkpoint_soon(self) -> None:
        if self._checkpointing is not None and not self._checkpointing.done():
            return
        loop = asyncio.get_running_loop()
        self._checkpointing = loop.run_in_executor(None, _checkpoint, self.path)
        self._checkpointing.add_done_callback(_log_failure)


# Commits on a slow disk wait for fsync here, while the loop serves others. One thread, so commits
# stay in order.
_COMMITS = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="paymux-sqlite-commit")


async def _off_the_loop(fn: Callable[[], None]) -> None:
    """Run ``fn`` in the commit thread and wait for it to end, even when cancelled meanwhile: the
    connection must not be used again while the thread still holds it."""
    await wait_through_cancellation(asyncio.get_running_loop().run_in_executor(_COMMITS, fn))


def _log_failure(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.warning("WAL checkpoint failed: %s", done.exception())


def _checkpoint(path: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        conn.close()


def inline_creator(path: str, lock_timeout: float = 30.0) -> Any:
    """An ``async_creator`` for ``create_async_engine``: writer connections on the loop's thread."""

    async def connect() -> InlineConnection:
        raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
        raw.execute("PRAGMA wal_autocheckpoint=0")
        raw.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        return InlineConnection(raw, path, lock_timeout)

    return connect
