"""The SQLite writer connection on the event loop's thread: another process's write lock is waited
for without blocking the loop, a lock held too long fails readably, WAL checkpoints run in a thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from paymux.db import sqlite_inline
from paymux.db.engine import create_engine, session_factory
from paymux.db.sqlite_inline import InlineConnection, inline_creator


def _sqlite_file(db_url: str) -> str:
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    return db_url.split("///", 1)[1]


def _hold_write_lock(path: str, seconds: float, taken: threading.Event) -> None:
    """Another connection (as another process would) holds the write lock for ``seconds``."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    taken.set()
    threading.Event().wait(seconds)
    conn.execute("ROLLBACK")
    conn.close()


async def _raw(engine: AsyncEngine) -> object:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        return raw.driver_connection


async def test_writer_runs_inline_and_waits_for_a_foreign_lock_without_blocking_the_loop(db_url: str) -> None:
    path = _sqlite_file(db_url)
    engine = create_engine(db_url)
    try:
        assert isinstance(await _raw(engine), InlineConnection)
        taken = threading.Event()
        holder = threading.Thread(target=_hold_write_lock, args=(path, 0.4, taken))
        holder.start()
        await asyncio.to_thread(taken.wait)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.create_task(ticker())
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with session_factory(engine)() as s:
            await s.execute(text("CREATE TABLE IF NOT EXISTS inline_probe (x INTEGER)"))
            await s.execute(text("INSERT INTO inline_probe VALUES (1)"))
            await s.commit()
        waited = loop.time() - started
        t.cancel()
        holder.join()
        assert waited >= 0.3  # it really waited for the other connection's lock
        assert ticks >= 15  # and the loop kept running meanwhile
        async with session_factory(engine, readonly=True)() as s:
            assert (await s.execute(text("SELECT count(*) FROM inline_probe"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_a_lock_held_past_the_timeout_is_a_readable_error(db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = _sqlite_file(db_url)
    engine = create_engine(db_url, async_creator=inline_creator(path, lock_timeout=0.2))
    taken = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, 0.8, taken))
    holder.start()
    try:
        await asyncio.to_thread(taken.wait)
        with pytest.raises(OperationalError, match="locked"):
            async with session_factory(engine)() as s:
                await s.execute(text("SELECT 1"))
    finally:
        holder.join()
        await engine.dispose()


async def test_wal_is_checkpointed_in_a_thread(db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _sqlite_file(db_url)  # skips on PostgreSQL
    monkeypatch.setattr(sqlite_inline, "CHECKPOINT_EVERY", 5)
    calls: list[str] = []
    real = sqlite_inline._checkpoint

    def spy(p: str) -> None:
        calls.append(threading.current_thread().name)
        real(p)

    monkeypatch.setattr(sqlite_inline, "_checkpoint", spy)
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as s:
            await s.execute(text("CREATE TABLE IF NOT EXISTS inline_probe (x INTEGER)"))
            await s.commit()
        for i in range(12):
            async with session_factory(engine)() as s:
                await s.execute(text("INSERT INTO inline_probe VALUES (:x)"), {"x": i})
                await s.commit()
        raw = await _raw(engine)
        assert isinstance(raw, InlineConnection) and raw._checkpointing is not None
        await raw._checkpointing
        assert calls and all(name != threading.main_thread().name for name in calls)
        assert raw.raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # not at commit
    finally:
        await engine.dispose()


async def test_the_wal_restarts_instead_of_growing(db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Writes wait while a checkpoint runs, so it completes and the next writer restarts the WAL."""
    path = _sqlite_file(db_url)
    monkeypatch.setattr(sqlite_inline, "CHECKPOINT_EVERY", 20)

    def frames_in_wal() -> int:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
        finally:
            conn.close()

    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as s:
            await s.execute(text("CREATE TABLE IF NOT EXISTS inline_probe (x BLOB)"))
            await s.commit()
        for _ in range(400):  # one 4 KiB row (a page at least) per transaction
            async with session_factory(engine)() as s:
                await s.execute(text("INSERT INTO inline_probe VALUES (randomblob(4000))"))
                await s.commit()
        # measured while the writer is open (closing the last connection checkpoints everything)
        assert await asyncio.to_thread(frames_in_wal) < 200  # 400 transactions wrote 800 frames or more
    finally:
        await engine.dispose()


async def test_quick_commits_run_on_the_loop_and_slow_ones_in_the_commit_thread(  # type: ignore[no-untyped-def]
    db_url: str, monkeypatch
) -> None:
    _sqlite_file(db_url)
    threads: list[str] = []
    real = InlineConnection._timed_commit

    def spy(self: InlineConnection) -> None:
        threads.append(threading.current_thread().name)
        real(self)

    monkeypatch.setattr(InlineConnection, "_timed_commit", spy)
    engine = create_engine(db_url)
    try:
        async with session_factory(engine)() as s:
            await s.execute(text("CREATE TABLE IF NOT EXISTS inline_probe (x INTEGER)"))
            await s.commit()
        raw = await _raw(engine)
        assert isinstance(raw, InlineConnection)
        assert 0 < raw.commit_seconds  # measured
        assert threads == [threading.current_thread().name]  # the loop's own thread

        # a disk slower than the threshold: the commit goes to the thread, and still lands
        monkeypatch.setattr(sqlite_inline, "INLINE_COMMIT_UNDER", 0.0)
        async with session_factory(engine)() as s:
            await s.execute(text("INSERT INTO inline_probe VALUES (1)"))
            await s.commit()
        assert threads[-1].startswith("paymux-sqlite-commit")
        async with session_factory(engine)() as s:
            assert (await s.execute(text("SELECT count(*) FROM inline_probe"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_a_commit_in_the_thread_cancelled_meanwhile_still_lands(  # type: ignore[no-untyped-def]
    db_url: str, monkeypatch
) -> None:
    """The caller is cancelled while the thread commits: the commit finishes before the cancellation
    is raised, so the connection is never used by two threads at once and nothing is half done."""
    _sqlite_file(db_url)
    monkeypatch.setattr(sqlite_inline, "INLINE_COMMIT_UNDER", 0.0)
    real = InlineConnection._timed_commit
    in_thread = threading.Event()

    def slow(self: InlineConnection) -> None:
        in_thread.set()
        threading.Event().wait(0.2)
        real(self)

    monkeypatch.setattr(InlineConnection, "_timed_commit", slow)
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS inline_probe (x INTEGER)"))
            await conn.commit()
        raw = await _raw(engine)
        assert isinstance(raw, InlineConnection)
        raw.raw.execute("BEGIN")
        raw.raw.execute("INSERT INTO inline_probe VALUES (7)")
        task = asyncio.create_task(raw.commit())
        await asyncio.to_thread(in_thread.wait)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not raw.in_transaction  # the commit finished before the cancellation was raised
        assert raw.raw.execute("SELECT x FROM inline_probe").fetchall() == [(7,)]
    finally:
        await engine.dispose()
