"""Shared fixtures: a clean database per test, built through the migrations.

SQLite (default): the migrations run once into a template file, each test gets a copy.
PostgreSQL (``PAYMUX_TEST_DATABASE_URL`` set): the schema is rebuilt through the migrations once
per session and every table is truncated before each test. Under pytest-xdist each worker has a
database of its own, named after the given one and the worker (``test_gw0``, ``test_gw1``...),
created on first use.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from paymux.db.engine import create_engine, session_factory
from paymux.db.migrate import upgrade
from paymux.db.models import Base

BASE_PG_URL = os.environ.get("PAYMUX_TEST_DATABASE_URL", "")


def _worker_url(url: str) -> str:
    """The database of this xdist worker (the given one when not under xdist)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not url or not worker:
        return url
    u = make_url(url)
    return u.set(database=f"{u.database}_{worker}").render_as_string(hide_password=False)


PG_URL = _worker_url(BASE_PG_URL)
if PG_URL:
    os.environ["PAYMUX_TEST_DATABASE_URL"] = PG_URL  # what subprocesses started by the tests see
    # two xdist workers, each with hubs, API nodes and worker processes of its own, share the
    # server's 100 connections: smaller pools per process (also inherited by subprocesses)
    os.environ.setdefault("PAYMUX_DB_POOL_SIZE", "4")
    os.environ.setdefault("PAYMUX_DB_MAX_OVERFLOW", "3")

requires_postgres = pytest.mark.skipif(not PG_URL, reason="PAYMUX_TEST_DATABASE_URL is not set")


def _reset_postgres(url: str) -> None:
    async def create_database() -> None:
        name = make_url(url).database
        engine = create_engine(BASE_PG_URL, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            exists = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if not exists:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()

    async def run() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    if url != BASE_PG_URL:
        asyncio.run(create_database())
    asyncio.run(run())
    upgrade(url)


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if PG_URL:
        _reset_postgres(PG_URL)
        yield PG_URL
        return
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    yield str(path)


@pytest.fixture
def db_url(_template: str, tmp_path: Path) -> str:
    """URL of a clean, migrated database for this test."""
    if PG_URL:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)

        async def truncate() -> None:
            engine = create_engine(PG_URL)
            async with engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            await engine.dispose()

        asyncio.run(truncate())
        return PG_URL
    path = tmp_path / "paymux.db"
    shutil.copyfile(_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
async def session(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessions() as s:
        yield s


def _needs_database(item: pytest.Item) -> bool:
    """Whether a test touches a database: a database fixture, or marked as needing PostgreSQL. The
    browser tests (``*_browser.py``) check what Chromium shows and does; what the pages read and write
    is tested on both databases by the page tests, so they run on the SQLite pass only."""
    if item.path.name.endswith("_browser.py"):
        return False
    if "_template" in getattr(item, "fixturenames", ()):
        return True
    return any(
        "PAYMUX_TEST_DATABASE_URL" in str(m.kwargs.get("reason", "")) for m in item.iter_markers("skipif")
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL pass runs only the tests that touch a database: the others (money, calendars,
    file formats, QR codes, browsers...) ran on the SQLite pass already and would run the same again
    (``PAYMUX_TEST_ALL_ON_POSTGRES=1`` runs them all)."""
    if not PG_URL or os.environ.get("PAYMUX_TEST_ALL_ON_POSTGRES"):
        return
    keep = [i for i in items if _needs_database(i)]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if not _needs_database(i)])
        items[:] = keep
