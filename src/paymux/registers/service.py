"""Register templates and sending tasks: what the admin API (and later the back office) calls.

Functions take a session and never commit; the caller (request edge) commits.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.models import Provider
from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.errors import Problem, invalid, not_found
from paymux.masking import MaskedSecretError
from paymux.registers.build import file_name_for, pattern_context
from paymux.registers.columns import FIELDS, Money
from paymux.registers.formats import Layout, Totals, extension
from paymux.registers.formats.csv import footer_values
from paymux.registers.models import RegisterFileChunk, RegisterTask, RegisterTemplate
from paymux.registers.patterns import PatternError, compile_line, render
from paymux.registers.schedule import PeriodError, parse_period, period_containing, task_values
from paymux.registers.schemas import TemplateConfig, TemplateIn, keep_secrets, mask

TASK_STATUSES = ("pending", "running", "done", "failed")


async def provider_by_code(session: AsyncSession, code: str) -> Provider:
    p = await session.scalar(select(Provider).where(Provider.code == code))
    if p is None:
        raise not_found(f"provider {code!r}")
    return p


def _validation_problem(e: ValidationError) -> Problem:
    errors = [{"field": ".".join(str(x) for x in err["loc"]), "message": err["msg"]} for err in e.errors()]
    detail = "; ".join(f"{x['field']}: {x['message']}" for x in errors)
    return invalid("invalid-register-template", detail, errors=errors)


def check_patterns(data: TemplateIn, provider: Provider) -> None:
    """Render every pattern once with sample values so a mistake is reported when saving."""
    cfg = data.config()
    tz = ZoneInfo(provider.timezone)
    period = period_containing(data.kind, utcnow(), tz)
    ctx = pattern_context(provider, data.code, data.kind, period, 0, extension(data.format, cfg))
    try:
        name = file_name_for(cfg, data.format, ctx)
        ctx.update(file_name=name, rows=0)
        render(cfg.subject, ctx)
        layout = Layout(cfg, ctx, period.end)
        sample = Money(0, "RUB")
        for d in cfg.deliveries:
            if d.kind == "email":
                if d.subject:
                    render(d.subject, ctx)
                render(d.body, ctx)
        opts = cfg.csv
        if data.format != "csv" and opts.line_template:
            raise PatternError("line_template applies to the csv/txt format only")
        if opts.line_template:
            fields = {c.field for c in cfg.columns}
            line = compile_line(opts.line_template, fields)
            values: dict[str, Any] = {}
            for f in fields:
                kind = FIELDS[f].kind if f in FIELDS else "str"
                values[f] = {
                    "money": sample,
                    "int": 0,
                    "datetime": utcnow().astimezone(tz),
                    "date": period.first,
                }.get(kind, "")
            line(values, layout.text, layout.formatted)
            if opts.header_template:
                render(opts.header_template, ctx, layout.text, layout.formatted)
            if opts.footer_template:
                render(
                    opts.footer_template,
                    footer_values(layout, Totals(1, {"RUB": {}})),
                    layout.text,
                    layout.formatted,
                )
    except PatternError as e:
        raise invalid("invalid-register-template", str(e)) from None
    if data.format == "dbf":
        names = [c.name for c in cfg.columns if c.name]
        if len(names) != len(set(names)):
            raise invalid("invalid-register-template", "DBF field names must be unique")


def _parse(raw: dict[str, Any], provider: Provider, stored: dict[str, Any] | None = None) -> TemplateIn:
    """The template in ``raw``; secrets given as ``***`` keep those ``stored`` (none for a new one)."""
    try:
        data = TemplateIn.model_validate(keep_secrets(dict(raw), stored or {}))
    except MaskedSecretError as e:
        raise invalid("invalid-register-template", str(e)) from None
    except ValidationError as e:
        raise _validation_problem(e) from None
    check_patterns(data, provider)
    return data


def template_out(tpl: RegisterTemplate, provider_code: str) -> dict[str, Any]:
    return {
        "id": tpl.id,
        "provider": provider_code,
        "code": tpl.code,
        "name": tpl.name,
        "kind": tpl.kind,
        "format": tpl.format,
        "enabled": tpl.enabled,
        **mask(tpl.config),
        "created_at": tpl.created_at.isoformat(),
        "updated_at": tpl.updated_at.isoformat(),
    }


async def list_templates(session: AsyncSession, provider_code: str) -> list[RegisterTemplate]:
    p = await provider_by_code(session, provider_code)
    return list(
        (
            await session.scalars(
                select(RegisterTemplate)
                .where(RegisterTemplate.provider_id == p.id)
                .order_by(RegisterTemplate.code)
            )
        ).all()
    )


async def get_template(session: AsyncSession, template_id: int) -> tuple[RegisterTemplate, Provider]:
    tpl = await session.get(RegisterTemplate, template_id)
    if tpl is None:
        raise not_found(f"register template {template_id}")
    provider = await session.get(Provider, tpl.provider_id)
    assert provider is not None
    return tpl, provider


async def provider_of(session: AsyncSession, tpl: RegisterTemplate) -> Provider:
    provider = await session.get(Provider, tpl.provider_id)
    assert provider is not None
    return provider


async def create_template(session: AsyncSession, provider_code: str, raw: dict[str, Any]) -> RegisterTemplate:
    p = await provider_by_code(session, provider_code)
    data = _parse(raw, p)
    exists = await session.scalar(
        select(RegisterTemplate.id).where(
            RegisterTemplate.provider_id == p.id, RegisterTemplate.code == data.code
        )
    )
    if exists is not None:
        raise Problem(409, "conflict", "Already exists", f"template {data.code!r} of {p.code} already exists")
    now = utcnow()
    tpl = RegisterTemplate(
        provider_id=p.id,
        code=data.code,
        name=data.name,
        kind=data.kind,
        format=data.format,
        enabled=data.enabled,
        config=data.config().model_dump(mode="json"),
        created_at=now,
        updated_at=now,
    )
    session.add(tpl)
    await session.flush()
    return tpl


async def update_template(session: AsyncSession, template_id: int, raw: dict[str, Any]) -> RegisterTemplate:
    """Replace a template's settings; secrets sent back as ``***`` keep their stored values."""
    tpl, provider = await get_template(session, template_id)
    data = _parse(raw, provider, tpl.config)
    if data.code != tpl.code:
        clash = await session.scalar(
            select(RegisterTemplate.id).where(
                RegisterTemplate.provider_id == tpl.provider_id, RegisterTemplate.code == data.code
            )
        )
        if clash is not None:
            raise Problem(409, "conflict", "Already exists", f"template {data.code!r} already exists")
    tpl.code, tpl.name, tpl.kind, tpl.format, tpl.enabled = (
        data.code,
        data.name,
        data.kind,
        data.format,
        data.enabled,
    )
    tpl.config = data.config().model_dump(mode="json")
    tpl.updated_at = utcnow()
    await session.flush()
    return tpl


async def delete_template(session: AsyncSession, template_id: int) -> None:
    """Delete a template with its tasks and their files."""
    await get_template(session, template_id)
    task_ids = select(RegisterTask.id).where(RegisterTask.template_id == template_id).scalar_subquery()
    await session.execute(delete(RegisterFileChunk).where(RegisterFileChunk.task_id.in_(task_ids)))
    await session.execute(delete(RegisterTask).where(RegisterTask.template_id == template_id))
    await session.execute(delete(RegisterTemplate).where(RegisterTemplate.id == template_id))


def task_out(task: RegisterTask, template_code: str | None = None) -> dict[str, Any]:
    return {
        "id": task.id,
        "template_id": task.template_id,
        "template": template_code,
        "provider_id": task.provider_id,
        "period": task.period_key,
        "run": task.run,
        "period_start": task.period_start.isoformat(),
        "period_end": task.period_end.isoformat(),
        "deliver": task.deliver,
        "status": task.status,
        "due_at": task.due_at.isoformat(),
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "last_error": task.last_error,
        "file_name": task.file_name,
        "content_type": task.content_type,
        "file_size": task.file_size,
        "file_sha256": task.file_sha256,
        "subject": task.subject,
        "rows": task.rows,
        "totals": task.totals,
        "delivered": task.delivered,
        "built_at": task.built_at.isoformat() if task.built_at else None,
        "sent_at": task.sent_at.isoformat() if task.sent_at else None,
        "created_by": task.created_by,
        "created_at": task.created_at.isoformat(),
    }


async def list_tasks(
    session: AsyncSession,
    *,
    provider_code: str | None = None,
    template_id: int | None = None,
    status: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[tuple[RegisterTask, str]]:
    """Tasks, newest first, with their template code; page with ``before_id``."""
    stmt = (
        select(RegisterTask, RegisterTemplate.code)
        .join(RegisterTemplate, RegisterTemplate.id == RegisterTask.template_id)
        .order_by(RegisterTask.id.desc())
        .limit(limit)
    )
    if provider_code is not None:
        stmt = stmt.where(RegisterTask.provider_id == (await provider_by_code(session, provider_code)).id)
    if template_id is not None:
        stmt = stmt.where(RegisterTask.template_id == template_id)
    if status is not None:
        if status not in TASK_STATUSES:
            raise invalid("invalid-filter", f"status must be one of {', '.join(TASK_STATUSES)}")
        stmt = stmt.where(RegisterTask.status == status)
    if before_id is not None:
        stmt = stmt.where(RegisterTask.id < before_id)
    return [(t, c) for t, c in (await session.execute(stmt)).all()]


async def get_task(session: AsyncSession, task_id: int) -> RegisterTask:
    task = await session.get(RegisterTask, task_id)
    if task is None:
        raise not_found(f"register task {task_id}")
    return task


async def retry_task(session: AsyncSession, task_id: int) -> RegisterTask:
    """Make a failed (or waiting) task due now, with a fresh allowance of attempts.

    The task is locked as it is read: a worker claiming it at the same moment either claims it
    first (and this answers that it is running) or waits (and claims the retried task)."""
    task = await locked(session, RegisterTask, task_id)
    if task is None:
        raise not_found(f"register task {task_id}")
    if task.status == "done":
        raise Problem(
            409, "task-done", "Already sent", "a done task is not sent again; regenerate the period instead"
        )
    if task.status == "running":
        raise Problem(
            409, "task-running", "Task is running", "the task is being worked on; wait for its result"
        )
    tpl, _ = await get_template(session, task.template_id)
    cfg = TemplateConfig.model_validate(tpl.config)
    now = utcnow()
    task.status = "pending"
    task.due_at = now
    task.max_attempts = task.attempts + cfg.retry.max_attempts
    task.updated_at = now
    await session.flush()
    return task


async def regenerate(
    session: AsyncSession,
    template_id: int,
    date: str,
    *,
    deliver: bool,
    actor: str,
    settle_seconds: int = 300,
) -> RegisterTask:
    """A new task that rebuilds the register of a past period (and sends it if ``deliver``)."""
    tpl, provider = await get_template(session, template_id)
    cfg = TemplateConfig.model_validate(tpl.config)
    try:
        period = parse_period(tpl.kind, date, ZoneInfo(provider.timezone))
    except PeriodError as e:
        raise invalid("invalid-period", str(e)) from None
    now = utcnow()
    if period.end + dt.timedelta(seconds=settle_seconds) > now:
        raise invalid(
            "period-not-closed",
            f"the period {period.key} is not over yet: a register holds final payments of a closed period",
        )
    last = await session.scalar(
        select(func.max(RegisterTask.run)).where(
            RegisterTask.template_id == tpl.id, RegisterTask.period_key == period.key
        )
    )
    values = task_values(
        tpl, period, cfg, due_at=now, run=(last or 0) + 1, deliver=deliver, now=now, created_by=actor
    )
    task = RegisterTask(**values)
    session.add(task)
    await session.flush()
    return task
