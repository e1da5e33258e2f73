"""Engines and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from paymux.db.sqlite_inline import InlineConnection, inline_creator

READONLY = "paymux_readonly"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, readonly: bool = False, **kwargs: Any) -> AsyncEngine:
    """An async engine with the pragmas and transaction mode paymux relies on.

    SQLite: WAL, synchronous=FULL (an accepted payment is durable when answered), foreign keys,
    a busy timeout, and ``BEGIN IMMEDIATE`` for every writing transaction so that writers queue
    on the database lock instead of failing on a lock upgrade. A writing engine keeps one connection
    and ``Hub.sessions`` lets the process's writers take turns on it (SQLite admits one writer at
    a time anyway) instead of polling the lock; its statements run on the event loop's thread
    (:mod:`paymux.db.sqlite_inline`). A ``readonly`` engine has several connections (aiosqlite
    threads) that read beside the writer (WAL) with deferred transactions.
    """
    if is_sqlite(url):
        if readonly:
            kwargs.setdefault("pool_size", 8)
            kwargs.setdefault("max_overflow", 8)
        else:
            kwargs.setdefault("pool_size", 1)
            kwargs.setdefault("max_overflow", 1)  # a spare for when a connection is discarded
            path = make_url(url).database
            if path and path != ":memory:" and not path.startswith("file:"):
                kwargs.setdefault("async_creator", inline_creator(path))
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            inline = isinstance(dbapi_conn.driver_connection, InlineConnection)
            if not inline:
                dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            if not inline:  # the inline writer waits for other processes' locks without blocking
                cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            readonly = conn.get_execution_options().get(READONLY)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine.execution_options(**{READONLY: True}) if readonly else engine
    # few connections suffice (acceptances are group-committed); several API nodes and workers on
    # one server must stay under PostgreSQL's max_connections (100 by default)
    kwargs.setdefault("pool_size", 8)
    kwargs.setdefault("max_overflow", 4)
    return create_async_engine(url, **kwargs)


def session_factory(engine: AsyncEngine, *, readonly: bool = False) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``. Read-only ones start a deferred transaction on SQLite, so they run
    beside a writer instead of queueing for the write lock."""
    bind = engine.execution_options(**{READONLY: True}) if readonly else engine
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)
