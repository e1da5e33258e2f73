"""Sending tasks: claim due ones, build (once), encrypt, store, deliver to each destination, record.

* A task is claimed in one short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, see
  :func:`paymux.worker.jobs.claim_due`): its ``due_at`` moves a lease ahead, ``attempts`` goes up.
  A worker that dies leaves the lease to run out; another worker claims the task again. A running
  task renews its lease while it works.
* The file is built once and stored with the task (in chunks); retries send the stored bytes.
* Each destination is recorded as delivered as soon as it is, so a retry sends only to the ones
  that failed, and a task that is done is never sent again (regenerate makes a new task).
* Failures are retried with growing intervals up to the template's ``max_attempts``; then the task
  is ``failed`` until someone retries it by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paymux.catalog.models import Provider
from paymux.db.base import utcnow
from paymux.registers.build import build_register, pattern_context
from paymux.registers.delivery import DeliveryError, Outgoing, deliver, describe
from paymux.registers.encrypt import encrypt_file
from paymux.registers.formats import extension
from paymux.registers.models import RegisterFileChunk, RegisterTask, RegisterTemplate
from paymux.registers.patterns import render
from paymux.registers.schedule import Period, period_containing
from paymux.registers.schemas import Retry, TemplateConfig
from paymux.registers.settings import RegisterSettings
from paymux.runtime import Hub
from paymux.worker.jobs import retry_delay

log = logging.getLogger("paymux.registers")

PGP_CONTENT_TYPE = "application/pgp-encrypted"


class LeaseLost(RuntimeError):
    pass


def backoff(retry: Retry, attempt: int) -> dt.timedelta:
    return retry_delay(retry.base_seconds, retry.max_seconds, attempt)


async def _set(session: AsyncSession, task_id: int, owner: str, **values: Any) -> None:
    """Update the task if ``owner`` still holds it, else raise LeaseLost."""
    t = cast(Table, RegisterTask.__table__)
    row = (
        await session.execute(
            update(t)
            .where(t.c.id == task_id, t.c.lease_owner == owner, t.c.status == "running")
            .values(updated_at=utcnow(), **values)
            .returning(t.c.id)
        )
    ).first()
    if row is None:
        raise LeaseLost(f"register task {task_id}: lease lost")


async def store_file(hub: Hub, task_id: int, owner: str, path: Path, chunk_bytes: int, **values: Any) -> str:
    """Store the built file with the task (one transaction) and return its SHA-256."""
    digest = hashlib.sha256()
    async with hub.sessions() as session:
        await session.execute(delete(RegisterFileChunk).where(RegisterFileChunk.task_id == task_id))
        size = 0
        with path.open("rb") as f:
            seq = 0
            while chunk := f.read(chunk_bytes):
                digest.update(chunk)
                size += len(chunk)
                await session.execute(insert(RegisterFileChunk).values(task_id=task_id, seq=seq, data=chunk))
                seq += 1
        sha = digest.hexdigest()
        await _set(session, task_id, owner, file_size=size, file_sha256=sha, built_at=utcnow(), **values)
        await session.commit()
    return sha


async def iter_file(sessions: async_sessionmaker[AsyncSession], task_id: int) -> Any:
    """The stored file of a task, chunk by chunk (each read in its own short query)."""
    seq = 0
    while True:
        async with sessions() as session:
            data = await session.scalar(
                select(RegisterFileChunk.data).where(
                    RegisterFileChunk.task_id == task_id, RegisterFileChunk.seq == seq
                )
            )
        if data is None:
            return
        yield bytes(data)
        seq += 1


async def fetch_file(sessions: async_sessionmaker[AsyncSession], task_id: int, path: Path) -> None:
    with path.open("wb") as f:
        async for chunk in iter_file(sessions, task_id):
            f.write(chunk)


@dataclass
class _Loaded:
    task: RegisterTask
    template: RegisterTemplate
    provider: Provider
    cfg: TemplateConfig
    period: Period


async def _load(hub: Hub, task_id: int) -> _Loaded:
    async with hub.read_sessions() as session:
        task = await session.get(RegisterTask, task_id)
        assert task is not None, task_id
        tpl = await session.get(RegisterTemplate, task.template_id)
        provider = await session.get(Provider, task.provider_id)
        assert tpl is not None and provider is not None
    cfg = TemplateConfig.model_validate(tpl.config)
    tz = ZoneInfo(provider.timezone)
    # the period is stored as UTC bounds; its first local day names it
    period = period_containing(tpl.kind, task.period_start, tz)
    return _Loaded(task, tpl, provider, cfg, period)


async def _heartbeat(hub: Hub, task_id: int, owner: str, lease_seconds: int) -> None:
    while True:
        await asyncio.sleep(max(lease_seconds / 3, 1))
        try:
            async with hub.sessions() as session:
                await _set(session, task_id, owner, due_at=utcnow() + dt.timedelta(seconds=lease_seconds))
                await session.commit()
        except LeaseLost:
            return
        except Exception:  # the next beat tries again; the lease is long enough for a few misses
            log.exception("register task %s: lease renewal failed", task_id)


async def run_task(hub: Hub, task_id: int, owner: str, settings: RegisterSettings) -> str:
    """Build, store, encrypt and deliver one claimed task. Returns the status it ends in."""
    lo = await _load(hub, task_id)
    task, cfg = lo.task, lo.cfg
    now = utcnow()
    settled = task.period_end + dt.timedelta(seconds=settings.settle_seconds)
    if task.file_sha256 is None and now < settled:
        # too early: payments of the period may still be committing; not counted as an attempt
        async with hub.sessions() as session:
            await _set(
                session,
                task_id,
                owner,
                status="pending",
                due_at=settled,
                lease_owner=None,
                attempts=max(task.attempts - 1, 0),
            )
            await session.commit()
        return "pending"
    work = Path(tempfile.mkdtemp(prefix="pmxreg-", dir=settings.work_dir))
    beat = asyncio.create_task(_heartbeat(hub, task_id, owner, settings.lease_seconds))
    try:
        context = pattern_context(
            lo.provider,
            lo.template.code,
            lo.template.kind,
            lo.period,
            task.run,
            extension(lo.template.format, cfg),
        )
        if task.file_sha256 is None:
            plain = work / "register"
            built = await build_register(
                hub.read_sessions,
                lo.provider,
                lo.template.code,
                lo.template.kind,
                lo.template.format,
                cfg,
                lo.period,
                plain,
                run=task.run,
            )
            context = built.context
            file_name, content_type, final = built.file_name, built.content_type, plain
            if cfg.encryption is not None:
                final = work / "register.pgp"
                await asyncio.to_thread(encrypt_file, plain, final, cfg.encryption)
                file_name += ".asc" if cfg.encryption.armor else ".pgp"
                content_type = PGP_CONTENT_TYPE
            subject = render(cfg.subject, context)[:500]
            await store_file(
                hub,
                task_id,
                owner,
                final,
                settings.chunk_bytes,
                file_name=file_name,
                content_type=content_type,
                rows=built.rows,
                totals=built.totals,
                subject=subject,
                last_error=None,
            )
        else:
            final = work / "stored"
            await fetch_file(hub.read_sessions, task_id, final)
            file_name, content_type = (
                task.file_name or "register",
                task.content_type or "application/octet-stream",
            )
            subject = task.subject or ""
            context.update(rows=task.rows or 0, file_name=file_name)
        delivered = dict(task.delivered or {})
        errors: list[str] = []
        if task.deliver:
            out = Outgoing(final, file_name, content_type, subject, {**context, "file_name": file_name})
            for i, d in enumerate(cfg.deliveries):
                if str(i) in delivered:
                    continue  # sent on an earlier attempt: never twice
                # still ours? (a worker that paused past its lease must not send what another sent)
                async with hub.sessions() as session:
                    await _set(
                        session,
                        task_id,
                        owner,
                        due_at=utcnow() + dt.timedelta(seconds=settings.lease_seconds),
                    )
                    await session.commit()
                try:
                    await deliver(d, out)
                except DeliveryError as e:
                    errors.append(str(e))
                    continue
                delivered[str(i)] = utcnow().isoformat()
                async with hub.sessions() as session:
                    await _set(session, task_id, owner, delivered=delivered)
                    await session.commit()
                log.info("register task %s: %s delivered to %s", task_id, file_name, describe(d))
        if errors:
            raise DeliveryError("; ".join(errors))
        async with hub.sessions() as session:
            await _set(
                session,
                task_id,
                owner,
                status="done",
                lease_owner=None,
                last_error=None,
                sent_at=utcnow() if delivered else None,
            )
            await session.commit()
        return "done"
    except LeaseLost:
        log.warning("register task %s: lease lost; the new owner carries on", task_id)
        return "lost"
    except Exception as e:
        message = str(e) if isinstance(e, DeliveryError) else f"{type(e).__name__}: {e}"
        if not isinstance(e, DeliveryError):
            log.exception("register task %s failed", task_id)
        return await _record_failure(hub, task_id, owner, message[:2000], cfg.retry)
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        shutil.rmtree(work, ignore_errors=True)


async def _record_failure(hub: Hub, task_id: int, owner: str, message: str, retry: Retry) -> str:
    async with hub.sessions() as session:
        attempts, max_attempts = (
            await session.execute(
                select(RegisterTask.attempts, RegisterTask.max_attempts).where(RegisterTask.id == task_id)
            )
        ).one()
        give_up = attempts >= max_attempts
        try:
            await _set(
                session,
                task_id,
                owner,
                status="failed" if give_up else "pending",
                lease_owner=None,
                last_error=message,
                due_at=utcnow() + backoff(retry, attempts),
            )
        except LeaseLost:
            await session.rollback()
            return "lost"
        await session.commit()
    log.warning(
        "register task %s attempt %s failed%s: %s",
        task_id,
        attempts,
        " (giving up)" if give_up else "",
        message,
    )
    return "failed" if give_up else "pending"
