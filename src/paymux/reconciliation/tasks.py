"""Scheduled fetches: one per provider and local day, due at the mapping's time in the provider's timezone.

Like register tasks: a worker claims due fetches in a short transaction (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; the claim, :func:`paymux.worker.jobs.claim_due`, moves ``due_at`` a lease ahead), downloads
the day's file, reconciles it and marks the fetch done in ONE transaction (so a day is reconciled once),
or records the error and retries later with growing intervals (a file that is not there yet is the usual
case) up to ``max_attempts``.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.models import Provider
from paymux.db.base import utcnow
from paymux.errors import Problem
from paymux.reconciliation.fetch import FetchError, download
from paymux.reconciliation.mapping import MappingConfig, file_name_context
from paymux.reconciliation.matcher import Period
from paymux.reconciliation.models import ReconciliationFetch, ReconciliationMapping
from paymux.reconciliation.service import import_register
from paymux.reconciliation.settings import ReconciliationSettings
from paymux.registers.patterns import PatternError, render
from paymux.registers.schedule import Period as Day
from paymux.registers.schedule import due_periods
from paymux.registers.tasks import backoff
from paymux.runtime import Hub

log = logging.getLogger("paymux.reconciliation")
_fetches = cast(Table, ReconciliationFetch.__table__)


class LeaseLost(RuntimeError):
    pass


async def schedule_fetches(session: AsyncSession, sqlite: bool, now: dt.datetime | None = None) -> int:
    """Create the fetches that are due (one per provider and day; idempotent). Returns how many."""
    now = now or utcnow()
    rows = (
        await session.execute(
            select(ReconciliationMapping, Provider.timezone)
            .join(Provider, Provider.id == ReconciliationMapping.provider_id)
            .order_by(ReconciliationMapping.id)
        )
    ).all()
    insert = sqlite_insert if sqlite else pg_insert
    created = 0
    for mapping, tzname in rows:
        cfg = MappingConfig.model_validate(mapping.config)
        if cfg.fetch is None or not cfg.fetch.schedule.enabled:
            continue
        sched = cfg.fetch.schedule
        for p in due_periods("daily", sched, ZoneInfo(tzname), now, mapping.created_at):
            stmt = (
                insert(ReconciliationFetch)
                .values(
                    provider_id=mapping.provider_id,
                    period_key=p.key,
                    status="pending",
                    due_at=p.due_at(sched),
                    attempts=0,
                    max_attempts=cfg.fetch.retry.max_attempts,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["provider_id", "period_key"])
            )
            result = await session.execute(stmt)
            created += max(getattr(result, "rowcount", 0) or 0, 0)
    return created


async def _set(session: AsyncSession, fetch_id: int, owner: str, **values: Any) -> None:
    row = (
        await session.execute(
            update(_fetches)
            .where(_fetches.c.id == fetch_id, _fetches.c.lease_owner == owner, _fetches.c.status == "running")
            .values(updated_at=utcnow(), **values)
            .returning(_fetches.c.id)
        )
    ).first()
    if row is None:
        raise LeaseLost(f"reconciliation fetch {fetch_id}: lease lost")


async def run_fetch(hub: Hub, fetch_id: int, owner: str, settings: ReconciliationSettings) -> str:
    """Download, reconcile and record one claimed fetch. Returns the status it ends in."""
    async with hub.read_sessions() as session:
        f = await session.get(ReconciliationFetch, fetch_id)
        assert f is not None
        provider = await session.get(Provider, f.provider_id)
        mapping = await session.scalar(
            select(ReconciliationMapping).where(ReconciliationMapping.provider_id == f.provider_id)
        )
    assert provider is not None
    cfg = MappingConfig.model_validate(mapping.config) if mapping is not None else None
    tz = ZoneInfo(provider.timezone)
    day = Day("daily", dt.date.fromisoformat(f.period_key), tz)
    work = Path(tempfile.mkdtemp(prefix="pmxrec-", dir=settings.work_dir))
    try:
        if cfg is None or cfg.fetch is None:
            raise FetchError(f"provider {provider.code} has no fetch settings any more")
        try:
            name = render(cfg.fetch.file_name, file_name_context(provider.code, day.first))
        except PatternError as e:
            raise FetchError(f"file name: {e}") from None
        target = work / "register"
        await download(cfg.fetch.source, name, target)
        async with hub.sessions() as session:
            recon = await import_register(
                session,
                provider,
                target,
                Period(day.first, day.last, tz),
                file_name=name,
                source=cfg.fetch.source.kind,
                actor="scheduler",
                cfg=cfg,
            )
            await _set(
                session,
                fetch_id,
                owner,
                status="done",
                lease_owner=None,
                last_error=None,
                file_name=name[:255],
                reconciliation_id=recon.id,
            )
            await session.commit()
        log.info("reconciliation fetch %s: %s reconciled as %s", fetch_id, name, recon.id)
        return "done"
    except LeaseLost:
        log.warning("reconciliation fetch %s: lease lost; the new owner carries on", fetch_id)
        return "lost"
    except (FetchError, Problem) as e:
        message = str(e.detail or e.title) if isinstance(e, Problem) else str(e)
        return await _failure(hub, fetch_id, owner, message[:2000], cfg)
    except Exception as e:
        log.exception("reconciliation fetch %s failed", fetch_id)
        return await _failure(hub, fetch_id, owner, f"{type(e).__name__}: {e}"[:2000], cfg)
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _failure(hub: Hub, fetch_id: int, owner: str, message: str, cfg: MappingConfig | None) -> str:
    async with hub.sessions() as session:
        attempts, max_attempts = (
            await session.execute(
                select(ReconciliationFetch.attempts, ReconciliationFetch.max_attempts).where(
                    ReconciliationFetch.id == fetch_id
                )
            )
        ).one()
        give_up = attempts >= max_attempts
        retry = cfg.fetch.retry if cfg is not None and cfg.fetch is not None else None
        delay = backoff(retry, attempts) if retry is not None else dt.timedelta(hours=1)
        try:
            await _set(
                session,
                fetch_id,
                owner,
                status="failed" if give_up else "pending",
                lease_owner=None,
                last_error=message,
                due_at=utcnow() + delay,
            )
        except LeaseLost:
            await session.rollback()
            return "lost"
        await session.commit()
    log.warning(
        "reconciliation fetch %s attempt %s failed%s: %s",
        fetch_id,
        attempts,
        " (giving up)" if give_up else "",
        message,
    )
    return "failed" if give_up else "pending"
