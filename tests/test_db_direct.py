"""Rows written straight to the driver (paymux.db.direct) are stored exactly as SQLAlchemy Core stores
them, on SQLite and on PostgreSQL; conflicts, generated ids, updates and defaults behave as Core's."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, Boolean, Column, MetaData, String, Table, Text, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from paymux.db import direct
from paymux.db.base import BigId, Json, UTCDateTime, utcnow

meta = MetaData()
probe = Table(
    "direct_probe",
    meta,
    Column("id", BigId, primary_key=True),
    Column("code", String(40), unique=True, nullable=False),
    Column("n", BigInteger, nullable=False),
    Column("flag", Boolean, nullable=False, default=False),
    Column("doc", Json, nullable=False, default=dict),
    Column("at", UTCDateTime, nullable=True),
    Column("note", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)
VALUES = ("n", "flag", "doc", "at", "note", "created_at")

zones = st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30))])
datetimes = st.datetimes(
    min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2200, 1, 1), timezones=zones
)
# PostgreSQL holds no NUL character in text or jsonb (it refuses them whichever way they are written)
chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(chars, max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(chars, max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
rows_st = st.lists(
    st.fixed_dictionaries(
        {
            "n": st.integers(-(2**62), 2**62),
            "flag": st.booleans(),
            "doc": st.dictionaries(st.text(chars, max_size=5), json_values, max_size=3),
            "at": st.none() | datetimes,
            "note": st.none() | st.text(chars, max_size=30),
            "created_at": datetimes,
        }
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture
async def conn(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as c:
        await c.run_sync(meta.create_all)
        await c.commit()
    try:
        async with engine.connect() as c:
            yield c
    finally:
        async with engine.connect() as c:
            await c.run_sync(meta.drop_all)
            await c.commit()


async def _stored(conn: AsyncConnection, prefix: str) -> list[tuple[Any, ...]]:
    """The values as the database holds them (raw driver rows, no SQLAlchemy result processing)."""
    cols = ", ".join(VALUES)
    q = f"SELECT {cols} FROM direct_probe WHERE code LIKE '{prefix}%' ORDER BY code"
    return [tuple(r) for r in (await conn.exec_driver_sql(q)).all()]


_seq = iter(range(10**9))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_st)
async def test_direct_rows_are_stored_as_core_stores_them(
    conn: AsyncConnection, rows: list[dict[str, Any]]
) -> None:
    run = next(_seq)
    core = [{**r, "code": f"core-{run}-{i:03d}"} for i, r in enumerate(rows)]
    mine = [{**r, "code": f"mine-{run}-{i:03d}"} for i, r in enumerate(rows)]
    try:
        await conn.execute(insert(probe), core)
        await direct.insert(conn, probe, mine)
        assert await _stored(conn, f"mine-{run}-") == await _stored(conn, f"core-{run}-")
    finally:
        await conn.rollback()


async def test_conflicting_rows_are_skipped_and_only_new_ones_return(conn: AsyncConnection) -> None:
    now = utcnow()
    first = [
        {"code": f"c{i}", "n": i, "flag": True, "doc": {}, "at": now, "note": None, "created_at": now}
        for i in range(3)
    ]
    got = await direct.insert(conn, probe, first, returning=("id", "code"), on_conflict_do_nothing=("code",))
    assert sorted(c for _, c in got) == ["c0", "c1", "c2"]
    again = [{**r, "n": 99} for r in first[1:]] + [{**first[0], "code": "c3"}]
    got = await direct.insert(conn, probe, again, returning=("code", "n"), on_conflict_do_nothing=("code",))
    assert got == [("c3", 0)]
    rows = (await conn.execute(select(probe.c.code, probe.c.n).order_by(probe.c.code))).all()
    assert [tuple(r) for r in rows] == [("c0", 0), ("c1", 1), ("c2", 2), ("c3", 0)]  # nothing overwritten


async def test_ordered_ids_follow_the_rows_and_sqlite_chunks_by_its_parameter_limit(
    conn: AsyncConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(direct, "SQLITE_MAX_PARAMS", 20)  # 3 rows per statement on SQLite
    now = utcnow()
    codes = [f"o{(i * 7) % 10:02d}-{i}" for i in range(10)]  # not in sorted order
    rows = [
        {"code": c, "n": i, "flag": False, "doc": {"i": i}, "at": None, "note": c, "created_at": now}
        for i, c in enumerate(codes)
    ]
    ids = [r[0] for r in await direct.insert(conn, probe, rows, returning=("id",), ordered=True)]
    assert len(ids) == 10
    by_id = dict((await conn.execute(select(probe.c.id, probe.c.code))).all())
    assert [by_id[i] for i in ids] == codes
    with pytest.raises(ValueError, match="ordered"):
        await direct.insert(conn, probe, rows, returning=("id", "code"), ordered=True)


async def test_updates_and_hand_written_statements(conn: AsyncConnection) -> None:
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {"code": f"d{i}", "n": i, "flag": False, "doc": {}, "created_at": now} for i in (1, 2)
    ]
    ids = [r[0] for r in await direct.insert(conn, probe, rows, returning=("id",), ordered=True)]
    later = utcnow() + dt.timedelta(hours=1)
    await direct.update(
        conn, probe, [{"id": ids[1], "note": "two", "at": later}, {"id": ids[0], "note": "one", "at": None}]
    )
    await direct.execute_many(
        conn,
        "UPDATE direct_probe SET n = n + ? WHERE id = ?",
        "UPDATE direct_probe SET n = n + $1 WHERE id = $2",
        probe,
        ("n", "id"),
        [(10, ids[0]), (20, ids[1])],
    )
    got = (
        await conn.execute(select(probe.c.code, probe.c.n, probe.c.note, probe.c.at).order_by(probe.c.code))
    ).all()
    assert [tuple(r) for r in got] == [("d1", 11, "one", None), ("d2", 22, "two", later)]


async def test_rows_must_give_the_same_known_columns(conn: AsyncConnection) -> None:
    now = utcnow()
    base = {"code": "x", "n": 1, "flag": False, "doc": {}, "created_at": now}
    with pytest.raises(ValueError, match="different columns"):
        await direct.insert(conn, probe, [base, {**base, "code": "y", "note": "extra"}])
    with pytest.raises(ValueError, match="no column"):
        await direct.insert(conn, probe, [{**base, "colour": "red"}])
    with pytest.raises(ValueError, match="key"):
        await direct.update(conn, probe, [{"note": "no id"}])
    assert await direct.insert(conn, probe, []) == []
