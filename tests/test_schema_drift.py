"""The schema the migrations build is the one the models declare (tables, columns, indexes, keys):
a model change without its migration, or the other way round, fails here."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from paymux.db.engine import create_engine
from paymux.db.models import Base


async def test_migrations_build_what_the_models_declare(db_url: str) -> None:
    engine = create_engine(db_url)

    def diff(conn: Any) -> list[Any]:
        return list(
            compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
        )

    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(diff)
    finally:
        await engine.dispose()
    assert found == []
