"""The demo's provider library: a few hundred fictional services of the ``fastpay`` aggregator across
categories (mobile, internet, TV, utilities, housing, transport, games, education, loans, charity,
security), imported into the catalog as a user would (``paymux catalog import-library``)."""

from __future__ import annotations

from importlib.resources import files

from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.library import apply_import, plan_import, read_rows

LIBRARY_PROVIDER = "fastpay"


def library_bytes() -> bytes:
    return files("paymux.demo").joinpath("library.csv").read_bytes()


async def seed_library(session: AsyncSession) -> str:
    """Import the library (idempotent: a second run finds everything unchanged); its summary."""
    plan = await plan_import(session, LIBRARY_PROVIDER, read_rows(library_bytes(), "csv"))
    if plan.services:
        await apply_import(session, plan, actor="demo")
    return plan.summary()
