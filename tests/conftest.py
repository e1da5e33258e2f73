"""Shared fixtures: a clean database per test, built through the migrations.

SQLite (default): the migrations run once into a template file, each test gets a copy.
PostgreSQL (``PAYMUX_TEST_DATABASE_URL`` set): the schema is rebuilt through the migrations once
per session and every table is truncated before each test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from paymux.db.engine import create_engine, session_factory
from paymux.db.migrate import upgrade
from paymux.db.models import Base

PG_URL = os.environ.get("PAYMUX_TEST_DATABASE_URL", "")

requires_postgres = pytest.mark.skipif(not PG_URL, reason="PAYMUX_TEST_DATABASE_URL is not set")


def _reset_postgres(url: str) -> None:
    async def run() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

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
