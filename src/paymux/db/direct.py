"""The hot multi-row statements, written straight to the driver.

The group committers write a few statements of many rows each per transaction. Through SQLAlchemy
Core, every such statement builds its parameters row by row (a dict per row, every value looked up
and processed on its own, an execution context, insertmanyvalues batching): after the SQLite writer
moved onto the loop's thread, that per-row work was the largest single cost of the hub's main thread.

Here each statement's SQL text is built once per table, columns and dialect; each column's bind
processor is taken from SQLAlchemy once (so a value is stored exactly as Core would store it); rows
go to the driver as tuples through ``exec_driver_sql``, which keeps the caller's transaction, the
driver's error mapping and SQLAlchemy's connection handling.

* SQLite: a multi-row ``INSERT ... VALUES (...), (...)`` when rows come back (``RETURNING``), an
  ``executemany`` otherwise; updates are ``executemany``.
* PostgreSQL: one ``INSERT ... SELECT ... FROM unnest($1::type[], ...)`` per statement, so a whole
  batch is one round trip whatever its size, under one prepared statement; updates are asyncpg's
  pipelined ``executemany`` (executed in the order given: callers pass rows in lock order).

Generated ids come back in the order of the rows when asked (``ordered=True``): rows are inserted in
their order (``ORDER BY`` their ordinal on PostgreSQL) and an autoincrementing key grows in that order,
the same guarantee SQLAlchemy's ``sort_by_parameter_order`` relies on.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

Processor = Callable[[Any], Any] | None

# SQLite's default limit of host parameters in one statement (SQLITE_MAX_VARIABLE_NUMBER, 3.32+)
SQLITE_MAX_PARAMS = 32_766
_JSON_TYPES = ("JSON", "JSONB")


class _Shape:
    """One statement's columns with their bind processors and, per column, how PostgreSQL takes an
    array of them."""

    __slots__ = ("_get", "_processed", "columns", "pg_arrays", "pg_selects", "processors")

    def __init__(
        self,
        columns: tuple[str, ...],
        processors: tuple[Processor, ...],
        pg_arrays: tuple[str, ...],
        pg_selects: tuple[str, ...],
    ) -> None:
        self.columns = columns
        self.processors = processors
        self.pg_arrays = pg_arrays  # the element type of each column's array parameter
        self.pg_selects = pg_selects  # each column's expression over unnest's output
        get = operator.itemgetter(*columns)
        self._get: Callable[[Mapping[str, Any]], Any] = get if len(columns) > 1 else (lambda r: (get(r),))
        self._processed = tuple((i, p) for i, p in enumerate(processors) if p is not None)

    def row(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The row's values in column order, processed."""
        got: tuple[Any, ...] = self._get(values)  # one C call for every column
        if not self._processed:
            return got
        out = list(got)
        for i, p in self._processed:
            out[i] = p(out[i])
        return tuple(out)


_shapes: dict[tuple[str, str, tuple[str, ...]], _Shape] = {}


def _shape(table: Table, columns: tuple[str, ...], dialect: Dialect) -> _Shape:
    key = (dialect.name, table.name, columns)
    found = _shapes.get(key)
    if found is not None:
        return found
    procs: list[Processor] = []
    arrays: list[str] = []
    selects: list[str] = []
    q = dialect.identifier_preparer.quote
    for name in columns:
        col: Column[Any] = table.c[name]
        procs.append(col.type.dialect_impl(dialect).bind_processor(dialect))
        if dialect.name == "postgresql":
            ddl = col.type.compile(dialect=dialect)
            if ddl in _JSON_TYPES:  # sent as text, cast in the SELECT (no array codec for json)
                arrays.append("TEXT")
                selects.append(f"u.{q(name)}::{ddl}")
            else:
                arrays.append(ddl)
                selects.append(f"u.{q(name)}")
    shape = _Shape(columns, tuple(procs), tuple(arrays), tuple(selects))
    _shapes[key] = shape
    return shape


def _columns(table: Table, rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The columns the rows give, in the table's order; every row must give the same ones."""
    given = set(rows[0])
    for r in rows:
        if r.keys() != given:
            raise ValueError(f"rows for {table.name} give different columns: {sorted(given ^ set(r))}")
    unknown = given - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {sorted(unknown)}")
    return tuple(c for c in table.c.keys() if c in given)


async def insert(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    returning: Sequence[str] = (),
    on_conflict_do_nothing: Sequence[str] = (),
    ordered: bool = False,
) -> list[tuple[Any, ...]]:
    """Insert ``rows`` (dicts with the same keys) in the connection's transaction. Python-side
    column defaults are not applied: the rows give every column they write.

    Returns the ``returning`` columns of the rows inserted (a row skipped on conflict returns
    nothing). With ``ordered`` (only for ``returning=("id",)`` and no conflict clause) they come back
    in the order of ``rows``.
    """
    if not rows:
        return []
    if ordered and (tuple(returning) != ("id",) or on_conflict_do_nothing):
        raise ValueError("ordered ids are for a plain insert returning id")
    dialect = conn.dialect
    shape = _shape(table, _columns(table, rows), dialect)
    q = dialect.identifier_preparer.quote
    cols = ", ".join(q(c) for c in shape.columns)
    conflict = (
        f" ON CONFLICT ({', '.join(q(c) for c in on_conflict_do_nothing)}) DO NOTHING"
        if on_conflict_do_nothing
        else ""
    )
    ret = f" RETURNING {', '.join(q(c) for c in returning)}" if returning else ""
    tuples = [shape.row(r) for r in rows]
    out: list[tuple[Any, ...]] = []
    if dialect.name == "postgresql":
        params = ", ".join(f"${i}::{t}[]" for i, t in enumerate(shape.pg_arrays, 1))
        names = ", ".join(q(c) for c in shape.columns)
        select = f"SELECT {', '.join(shape.pg_selects)} FROM unnest({params})"
        select += f" WITH ORDINALITY AS u({names}, ord) ORDER BY ord" if ordered else f" AS u({names})"
        sql = f"INSERT INTO {q(table.name)} ({cols}) {select}{conflict}{ret}"
        arrays = tuple(list(col) for col in zip(*tuples, strict=True))
        result = await conn.exec_driver_sql(sql, arrays)
        if returning:
            out = [tuple(r) for r in result.all()]
    elif returning:  # SQLite: multi-row VALUES, as many rows per statement as its parameter limit allows
        one = "(" + ", ".join("?" * len(shape.columns)) + ")"
        per = max(1, SQLITE_MAX_PARAMS // len(shape.columns))
        for start in range(0, len(tuples), per):
            chunk = tuples[start : start + per]
            sql = (
                f"INSERT INTO {q(table.name)} ({cols}) VALUES {', '.join([one] * len(chunk))}{conflict}{ret}"
            )
            flat = tuple(itertools.chain.from_iterable(chunk))
            result = await conn.exec_driver_sql(sql, flat)
            out.extend(tuple(r) for r in result.all())
    else:
        one = "(" + ", ".join("?" * len(shape.columns)) + ")"
        await conn.exec_driver_sql(f"INSERT INTO {q(table.name)} ({cols}) VALUES {one}{conflict}", tuples)
    if ordered:
        out.sort()
    return out


async def update(
    conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]], *, key: str = "id"
) -> None:
    """``UPDATE table SET <the rows' other columns> WHERE key = <the row's key>`` for every row, in the
    order given (rows give the same columns)."""
    if not rows:
        return
    dialect = conn.dialect
    columns = _columns(table, rows)
    if key not in columns:
        raise ValueError(f"rows for {table.name} do not give the key {key}")
    sets = tuple(c for c in columns if c != key)
    shape = _shape(table, (*sets, key), dialect)
    q = dialect.identifier_preparer.quote
    if dialect.name == "postgresql":
        assignments = ", ".join(f"{q(c)} = ${i}" for i, c in enumerate(sets, 1))
        where = f"{q(key)} = ${len(sets) + 1}"
    else:
        assignments = ", ".join(f"{q(c)} = ?" for c in sets)
        where = f"{q(key)} = ?"
    sql = f"UPDATE {q(table.name)} SET {assignments} WHERE {where}"
    await conn.exec_driver_sql(sql, [shape.row(r) for r in rows])


async def execute_many(
    conn: AsyncConnection,
    sqlite_sql: str,
    postgresql_sql: str,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """A hand-written statement for many rows of parameters; each parameter is processed as
    ``table.c[columns[i]]`` would be (its bind processor)."""
    if not rows:
        return
    dialect = conn.dialect
    shape = _shape(table, tuple(columns), dialect)
    procs = shape.processors
    params = [tuple(v if p is None else p(v) for v, p in zip(r, procs, strict=True)) for r in rows]
    sql = postgresql_sql if dialect.name == "postgresql" else sqlite_sql
    await conn.exec_driver_sql(sql, params)


@dataclass(frozen=True, slots=True)
class Unnested:
    """Rows as a PostgreSQL ``SELECT ... FROM unnest(...)`` (see :func:`pg_unnest`)."""

    select: str  # SELECT <the columns>, ord FROM unnest($n::type[], ...) WITH ORDINALITY ...
    columns: tuple[str, ...]
    args: tuple[list[Any], ...]  # one array per column, to pass as the statement's parameters

    @property
    def names(self) -> str:
        """The columns, comma separated."""
        return ", ".join(self.columns)

    def pick(self, alias: str, **instead: str) -> str:
        """The columns as ``alias.column``, with ``instead`` giving other expressions for some."""
        return ", ".join(instead.get(c) or f"{alias}.{c}" for c in self.columns)


def pg_unnest(table: Table, rows: Sequence[Mapping[str, Any]], dialect: Dialect, first: int = 1) -> Unnested:
    """PostgreSQL: ``SELECT <the rows' columns> FROM unnest($first::type[], ...) WITH ORDINALITY``
    (columns in the table's order and named as in the table, each value processed as Core would,
    JSON cast back from text, and ``ord``: the row's place from 1), for a hand-written statement
    that does more than :func:`insert` (a CTE). Column names must need no quoting."""
    shape = _shape(table, _columns(table, rows), dialect)
    tuples = [shape.row(r) for r in rows]
    params = ", ".join(f"${i}::{t}[]" for i, t in enumerate(shape.pg_arrays, first))
    names = ", ".join(shape.columns)
    selects = ", ".join(f"{sel} AS {c}" for sel, c in zip(shape.pg_selects, shape.columns, strict=True))
    select = f"SELECT {selects}, u.ord FROM unnest({params}) WITH ORDINALITY AS u({names}, ord)"
    arrays = tuple(list(col) for col in zip(*tuples, strict=True))
    return Unnested(select, shape.columns, arrays)
