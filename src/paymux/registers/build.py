"""Building a register file: stream a provider's final payments of a period into a writer.

Rows are read in pages by (final_at, id) from read sessions (committed data only), converted and
written in a thread so the event loop stays free, and never held beyond one page. A payment belongs
to the register of the period in which it became final; the same period always gives the same rows
in the same order, so a rebuilt register is byte-identical.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paymux.catalog.models import Agent, Channel, Provider, Service
from paymux.payments.models import Payment
from paymux.registers.columns import Lookups, field_def
from paymux.registers.formats import Layout, Totals, extension, writer_for
from paymux.registers.patterns import render, safe_file_name
from paymux.registers.schedule import Period
from paymux.registers.schemas import TemplateConfig

PAGE = 2000

ROW_COLUMNS = (
    Payment.id,
    Payment.external_id,
    Payment.provider_txn_id,
    Payment.created_at,
    Payment.final_at,
    Payment.account,
    Payment.amount,
    Payment.fee,
    Payment.total,
    Payment.remuneration,
    Payment.commission,
    Payment.currency,
    Payment.service_id,
    Payment.channel_id,
    Payment.status,
    Payment.error_code,
    Payment.provider_service_code,
)


@dataclass(frozen=True)
class BuildResult:
    file_name: str
    content_type: str
    rows: int
    totals: dict[str, Any]
    context: dict[str, Any]  # pattern values, for the subject and e-mail body


def pattern_context(
    provider: Provider, template_code: str, kind: str, period: Period, run: int, ext: str
) -> dict[str, Any]:
    """Names a file name, subject or header pattern may use."""
    return {
        "provider": provider.code,
        "provider_name": provider.name,
        "template": template_code,
        "kind": kind,
        "period": period.key,
        "date": period.first,
        "start": period.first,
        "end": period.last,
        "year": period.first.year,
        "month": period.first.month,
        "run": run,
        "ext": ext,
    }


def file_name_for(cfg: TemplateConfig, fmt: str, context: dict[str, Any]) -> str:
    pattern = cfg.file_name or "{provider}_{period}.{ext}"
    return safe_file_name(render(pattern, context))


async def load_lookups(session: AsyncSession, tz: ZoneInfo) -> Lookups:
    services = {
        i: (c, n) for i, c, n in (await session.execute(select(Service.id, Service.code, Service.name))).all()
    }
    channels = {
        i: (c, n, k, a)
        for i, c, n, k, a in (
            await session.execute(
                select(Channel.id, Channel.code, Channel.name, Channel.kind, Channel.agent_id)
            )
        ).all()
    }
    agents = {i: c for i, c in (await session.execute(select(Agent.id, Agent.code))).all()}
    return Lookups(services, channels, agents, tz)


async def stream_payments(
    sessions: async_sessionmaker[AsyncSession],
    provider_id: int,
    start: dt.datetime,
    end: dt.datetime,
    statuses: Sequence[str],
    *,
    with_fields: bool = False,
    page: int = PAGE,
) -> AsyncIterator[list[Any]]:
    """Pages of payment rows that became final in [start, end), ordered by (final_at, id)."""
    cols: tuple[Any, ...] = (*ROW_COLUMNS, Payment.fields) if with_fields else ROW_COLUMNS
    last: tuple[dt.datetime, int] | None = None
    while True:
        stmt = (
            select(*cols)
            .where(
                Payment.provider_id == provider_id,
                Payment.final_at >= start,
                Payment.final_at < end,
                Payment.status.in_(list(statuses)),
            )
            .order_by(Payment.final_at, Payment.id)
            .limit(page)
        )
        if last is not None:
            stmt = stmt.where(tuple_(Payment.final_at, Payment.id) > tuple_(*last))
        async with sessions() as session:
            rows = list((await session.execute(stmt)).all())
        if not rows:
            return
        yield rows
        if len(rows) < page:
            return
        last = (rows[-1].final_at, rows[-1].id)


async def build_register(
    sessions: async_sessionmaker[AsyncSession],
    provider: Provider,
    template_code: str,
    kind: str,
    fmt: str,
    cfg: TemplateConfig,
    period: Period,
    path: Path,
    *,
    run: int = 0,
    page: int = PAGE,
) -> BuildResult:
    """Write the register of ``period`` to ``path``; returns its name, size facts and totals."""
    tz = ZoneInfo(provider.timezone)
    ext = extension(fmt, cfg)
    context = pattern_context(provider, template_code, kind, period, run, ext)
    file_name = file_name_for(cfg, fmt, context)
    context["file_name"] = file_name
    async with sessions() as session:
        lookups = await load_lookups(session, tz)
    layout = Layout(cfg, dict(context), period.end)
    writer = await asyncio.to_thread(writer_for, fmt, path, layout)
    getters = [field_def(c.field).get for c in cfg.columns]
    numbered = [i for i, c in enumerate(cfg.columns) if c.field == "number"]
    money_idx = layout.money_columns()
    totals = Totals()

    def convert_and_write(rows: list[Any]) -> None:
        out = []
        for r in rows:
            values = [g(r, lookups) for g in getters]
            totals.add(values, money_idx)
            for i in numbered:
                values[i] = totals.count
            out.append(values)
        writer.write_rows(out)

    with_fields = any(c.field.startswith("fields.") for c in cfg.columns)
    try:
        async for rows in stream_payments(
            sessions, provider.id, period.start, period.end, cfg.statuses, with_fields=with_fields, page=page
        ):
            await asyncio.to_thread(convert_and_write, rows)
        await asyncio.to_thread(writer.finish, totals)
    except BaseException:
        await asyncio.to_thread(writer.abort)
        raise
    context.update(rows=totals.count)
    return BuildResult(file_name, writer.content_type, totals.count, totals.as_dict(), context)
