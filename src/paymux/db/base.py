"""Declarative base and column helpers shared by every domain's models."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, TypeDecorator
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER (rowid alias) on SQLite so primary keys autoincrement on both.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(postgresql.JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sqlite.DATETIME())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; paymux stores UTC-aware datetimes only")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, straight to the text SQLAlchemy's DATETIME stores (``YYYY-MM-DD HH:MM:SS.ffffff``,
        naive UTC) in one step: the two-step path is a noticeable share of a batch insert's CPU.
        The last value's text is kept: the rows of one batch share a few datetime objects (a
        payment's ``now`` goes into its row, entry and postings)."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        utc = dt.UTC
        last: tuple[dt.datetime | None, str | None] = (None, None)

        def process(value: dt.datetime | None) -> str | None:
            nonlocal last
            if value is None:
                return None
            seen = last  # one read: another thread may replace it meanwhile
            if value is seen[0]:
                return seen[1]
            if value.tzinfo is None:
                raise ValueError("naive datetime given; paymux stores UTC-aware datetimes only")
            u = value if value.tzinfo is utc else value.astimezone(utc)
            text = "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 - the fastest here
                u.year,
                u.month,
                u.day,
                u.hour,
                u.minute,
                u.second,
                u.microsecond,
            )
            last = (value, text)
            return text

        return process

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
