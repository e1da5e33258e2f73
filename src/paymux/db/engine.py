"""Engines and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from paymux.db.sqlite_inline import InlineConnection, inline_creator
from paymux.settings import Settings, get_settings

READONLY = "paymux_readonly"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


class TextWithNul(ValueError):
    """A statement's text value holds a NUL: refused on SQLite as PostgreSQL refuses it, so both
    databases store (and answer) alike."""


def _has_nul(params: Any) -> bool:
    """Whether a statement's parameters (a row, or a list of rows for executemany, as tuples or dicts)
    hold a text value with a NUL."""
    if isinstance(params, list):
        return any(_has_nul(row) for row in params)
    for v in params.values() if isinstance(params, dict) else params:
        if type(v) is str:
            if "\x00" in v:
                return True
        elif isinstance(v, list | tuple) and _has_nul(list(v)):
            return True
    return False


def create_engine(
    url: str,
    *,
    readonly: bool = False,
    timeouts: bool = True,
    settings: Settings | None = None,
    **kwargs: Any,
) -> AsyncEngine:
    """An async engine with the pragmas and transaction mode paymux relies on.

    SQLite: WAL, synchronous=FULL (an accepted payment is durable when answered), foreign keys,
    a busy timeout, and ``BEGIN IMMEDIATE`` for every writing transaction so that writers queue
    on the database lock instead of failing on a lock upgrade. A writing engine keeps one connection
    and ``Hub.sessions`` lets the process's writers take turns on it (SQLite admits one writer at
    a time anyway) instead of polling the lock; its statements run on the event loop's thread
    (:mod:`paymux.db.sqlite_inline`). A ``readonly`` engine has several connections (aiosqlite
    threads) that read beside the writer (WAL) with deferred transactions.

    PostgreSQL: every session gets the ``PAYMUX_DB_*_TIMEOUT_MS`` limits of ``settings`` (the
    environment's by default; ``timeouts=False``: none, for migrations and benchmark loaders), so
    a process paused inside a transaction cannot hold its locks for longer than the idle timeout.
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

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _no_nul(_c: Any, _cur: Any, _stmt: str, params: Any, _ctx: Any, _many: bool) -> None:
            if params and _has_nul(params):
                raise TextWithNul("a text value holds a NUL character, which PostgreSQL cannot store")

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            readonly = conn.get_execution_options().get(READONLY)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine.execution_options(**{READONLY: True}) if readonly else engine
    # few connections suffice (acceptances are group-committed); several API nodes and workers on
    # one server must stay under PostgreSQL's max_connections (100 by default)
    s = settings or get_settings()
    kwargs.setdefault("pool_size", s.db_pool_size)
    kwargs.setdefault("max_overflow", s.db_max_overflow)
    if timeouts and make_url(url).get_backend_name() == "postgresql":
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args["server_settings"] = {
            **pg_limits(s, readonly),
            **connect_args.get("server_settings", {}),
        }
        kwargs["connect_args"] = connect_args
    return create_async_engine(url, **kwargs)


def pg_limits(s: Settings, readonly: bool = False) -> dict[str, str]:
    """The PostgreSQL session settings that bound transactions, from the ``PAYMUX_DB_*`` settings."""
    statement = s.db_read_statement_timeout_ms if readonly else s.db_statement_timeout_ms
    return {
        "idle_in_transaction_session_timeout": str(s.db_idle_in_transaction_timeout_ms),
        "lock_timeout": str(s.db_lock_timeout_ms),
        "statement_timeout": str(statement),
    }


def session_factory(engine: AsyncEngine, *, readonly: bool = False) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``. Read-only ones start a deferred transaction on SQLite, so they run
    beside a writer instead of queueing for the write lock."""
    bind = engine.execution_options(**{READONLY: True}) if readonly else engine
    return async_sessionmaker(bind, expire_on_commit=False, autoflush=False)
