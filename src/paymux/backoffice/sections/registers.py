"""Registers: templates per provider (list, create, edit, enable/disable) and sending tasks (list, file,
manual retry, regenerate a period). Every operation goes through ``paymux.registers.service`` (as the
admin API does); changes are audited with their before and after states (secrets masked as ``***``).
"""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from fastapi import Depends, Form, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.api.params import Id, parse_id
from paymux.auth import permissions as P
from paymux.auth.principal import Principal
from paymux.backoffice.framework import (
    PROVIDERS,
    DbDep,
    MenuEntry,
    PageNotFound,
    ReadDbDep,
    Section,
    redirect,
    register,
    render,
    require,
    require_before_reading,
    section_router,
)
from paymux.backoffice.listing import Column, Filter, ListSpec, respond
from paymux.backoffice.sections.ops import YES_NO, code_choices, yes_no
from paymux.catalog.models import Provider
from paymux.db.concurrent import locked
from paymux.errors import Problem
from paymux.registers import service
from paymux.registers.models import FORMATS, KINDS, TASK_STATUSES, RegisterTask, RegisterTemplate
from paymux.registers.schemas import mask
from paymux.registers.settings import RegisterSettings
from paymux.registers.tasks import iter_file
from paymux.yaml_text import load_field

router = section_router()
register(
    Section(
        "registers",
        router,
        menu=(MenuEntry("Registers", "/backoffice/registers", P.REGISTERS_READ, 45, area=PROVIDERS),),
        permissions=(P.REGISTERS_READ, P.REGISTERS_WRITE),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.REGISTERS_READ))]
Writer = Annotated[Principal, Depends(require(P.REGISTERS_WRITE))]
BASE = "/backoffice/registers"
IDENTITY = ("code", "name", "kind", "format", "enabled")
EXAMPLE: dict[str, Any] = {
    "columns": [{"field": "id"}, {"field": "account"}, {"field": "amount"}, {"field": "final_at"}],
    "statuses": ["succeeded"],
    "totals": True,
    "file_name": "{provider}_{date:%Y%m%d}.{ext}",
    "deliveries": [],
    "schedule": {"at": "02:00"},
}


def _yaml(value: Any) -> str:
    return str(yaml.safe_dump(value, allow_unicode=True, sort_keys=False, default_flow_style=False))


def _audit_state(tpl: RegisterTemplate, provider_code: str) -> dict[str, Any]:
    """What the audit log keeps of a template: its API form (secrets masked)."""
    return service.template_out(tpl, provider_code)


# --- templates ------------------------------------------------------------------------------------------


@router.get("/registers")
async def templates_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    providers = await code_choices(session, Provider)
    spec = ListSpec(
        query=select(RegisterTemplate, Provider.code.label("provider")).join(
            Provider, Provider.id == RegisterTemplate.provider_id
        ),
        columns=[
            Column("provider", "Provider", Provider.code, lambda r: r.provider),
            Column("code", "Code", RegisterTemplate.code, lambda r: r[0].code),
            Column("name", "Name", RegisterTemplate.name, lambda r: r[0].name),
            Column("kind", "Kind", RegisterTemplate.kind, lambda r: r[0].kind),
            Column("format", "Format", RegisterTemplate.format, lambda r: r[0].format),
            Column("enabled", "Enabled", RegisterTemplate.enabled, lambda r: r[0].enabled),
            Column(
                "deliveries",
                "Deliveries",
                None,
                lambda r: ", ".join(str(d.get("kind")) for d in r[0].config.get("deliveries", [])),
            ),
            Column(
                "schedule",
                "Schedule",
                None,
                lambda r: (r[0].config.get("schedule") or {}).get("at", ""),
            ),
            Column("updated_at", "Changed", RegisterTemplate.updated_at, lambda r: r[0].updated_at),
        ],
        search=[RegisterTemplate.code, RegisterTemplate.name, Provider.code],
        filters=[
            Filter("provider", "Provider", lambda q, v: q.where(Provider.code == v), providers),
            Filter("kind", "Kind", lambda q, v: q.where(RegisterTemplate.kind == v), [(k, k) for k in KINDS]),
            Filter(
                "format",
                "Format",
                lambda q, v: q.where(RegisterTemplate.format == v),
                [(f, f) for f in FORMATS],
            ),
            Filter("enabled", "Enabled", yes_no(RegisterTemplate.enabled), YES_NO),
        ],
        default_sort="provider",
        default_desc=False,
        sheet="register-templates",
    )
    page = await spec.run(session, request)
    return respond(request, page, "registers/templates.html", providers=providers)


def _form_view(
    provider: str, ident: dict[str, Any], settings: str, *, template_id: int | None = None
) -> dict[str, Any]:
    return {"provider": provider, "template_id": template_id, **ident, "settings": settings}


def _form(
    request: Request, f: dict[str, Any], providers: list[tuple[str, str]], error: str = "", status: int = 200
) -> Response:
    return render(
        request,
        "registers/template.html",
        status,
        f=f,
        providers=providers,
        kinds=KINDS,
        formats=FORMATS,
        error=error,
    )


def _raw(f: dict[str, Any]) -> dict[str, Any]:
    """The service's input from the form: the settings text (YAML or JSON) with the identity fields.

    Raises ValueError with a readable message when the text is not a YAML/JSON mapping.
    """
    text = str(f.get("settings", ""))
    try:
        settings = load_field(text) if text.strip() else {}
    except yaml.YAMLError as e:
        raise ValueError(f"settings: not readable YAML or JSON ({e})") from None
    if settings is None:
        settings = {}
    if not isinstance(settings, dict):
        raise ValueError("settings: a mapping of template settings (columns, file_name, deliveries, ...)")
    clash = sorted(set(settings) & set(IDENTITY))
    if clash:
        raise ValueError(f"settings: {', '.join(clash)} are set by the form's fields, not in the settings")
    return {**settings, **{k: f[k] for k in IDENTITY}}


async def _posted(request: Request) -> dict[str, Any]:
    form = await request.form()
    f: dict[str, Any] = {k: str(v) for k, v in form.items() if k != "csrf_token"}
    f["enabled"] = f.get("enabled") == "1"
    f["template_id"] = None
    for k in ("code", "name", "kind", "format", "provider"):
        f[k] = f.get(k, "").strip()
    f.setdefault("settings", "")
    return f


def _message(e: Problem | ValueError) -> str:
    return (e.detail or e.title) if isinstance(e, Problem) else str(e)


@router.get("/registers/templates/new")
async def template_new(request: Request, session: DbDep, me: Writer) -> Response:
    ident = {"code": "", "name": "", "kind": "daily", "format": "csv", "enabled": True}
    provider = request.query_params.get("provider", "")
    return _form(request, _form_view(provider, ident, _yaml(EXAMPLE)), await code_choices(session, Provider))


@router.post("/registers/templates/new")
async def template_create(request: Request, session: DbDep, me: Writer) -> Response:
    f = await _posted(request)
    try:
        tpl = await service.create_template(session, f["provider"], _raw(f))
        await audit.record(
            session,
            me,
            "register_template.create",
            f"register_template:{tpl.id}",
            None,
            _audit_state(tpl, f["provider"]),
        )
    except (Problem, ValueError) as e:
        await session.rollback()
        return _form(request, f, await code_choices(session, Provider), _message(e), 422)
    await session.commit()
    return redirect(f"{BASE}/templates/{tpl.id}", "Saved.")


async def _template(session: AsyncSession, template_id: int) -> tuple[RegisterTemplate, Provider]:
    try:
        return await service.get_template(session, template_id)
    except Problem:
        raise PageNotFound() from None


@router.get("/registers/templates/{template_id}")
async def template_page(template_id: Id, request: Request, session: ReadDbDep, me: Reader) -> Response:
    tpl, provider = await _template(session, template_id)
    ident = {k: getattr(tpl, k) for k in IDENTITY}
    f = _form_view(provider.code, ident, _yaml(mask(tpl.config)), template_id=tpl.id)
    return _form(request, f, await code_choices(session, Provider))


@router.post("/registers/templates/{template_id}")
async def template_update(template_id: Id, request: Request, session: DbDep, me: Writer) -> Response:
    tpl, provider = await _template(session, template_id)
    f = await _posted(request)
    f["provider"], f["template_id"] = provider.code, template_id
    before = _audit_state(tpl, provider.code)
    try:
        tpl = await service.update_template(session, template_id, _raw(f))
        after = _audit_state(tpl, provider.code)
        await audit.record(
            session, me, "register_template.update", f"register_template:{template_id}", before, after
        )
    except (Problem, ValueError) as e:
        await session.rollback()
        return _form(request, f, await code_choices(session, Provider), _message(e), 422)
    await session.commit()
    return redirect(f"{BASE}/templates/{template_id}", "Saved.")


async def _toggle(session: AsyncSession, me: Principal, template_id: int, on: bool) -> Response:
    tpl, provider = await _template(session, template_id)
    before = _audit_state(tpl, provider.code)
    body = {k: v for k, v in before.items() if k not in ("id", "provider", "created_at", "updated_at")}
    body["enabled"] = on
    try:
        tpl = await service.update_template(session, template_id, body)
    except Problem as e:  # a template stored before a validation rule changed
        await session.rollback()
        return redirect(f"{BASE}/templates/{template_id}", _message(e))
    action = "register_template.enable" if on else "register_template.disable"
    await audit.record(
        session, me, action, f"register_template:{template_id}", before, _audit_state(tpl, provider.code)
    )
    await session.commit()
    return redirect(f"{BASE}/templates/{template_id}", "Enabled." if on else "Disabled.")


@router.post("/registers/templates/{template_id}/enable")
async def template_enable(template_id: Id, session: DbDep, me: Writer) -> Response:
    return await _toggle(session, me, template_id, True)


@router.post("/registers/templates/{template_id}/disable")
async def template_disable(template_id: Id, session: DbDep, me: Writer) -> Response:
    return await _toggle(session, me, template_id, False)


# --- sending tasks --------------------------------------------------------------------------------------


def _next_attempt(task: RegisterTask) -> Any:
    return task.due_at if task.status in ("pending", "running") else None


@router.get("/registers/tasks")
async def tasks_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    providers = await code_choices(session, Provider)
    spec = ListSpec(
        query=select(RegisterTask, Provider.code.label("provider"), RegisterTemplate.code.label("template"))
        .join(RegisterTemplate, RegisterTemplate.id == RegisterTask.template_id)
        .join(Provider, Provider.id == RegisterTask.provider_id),
        columns=[
            Column("id", "Number", RegisterTask.id, lambda r: r[0].id),
            Column("provider", "Provider", Provider.code, lambda r: r.provider),
            Column("template", "Template", RegisterTemplate.code, lambda r: r.template),
            Column("period", "Period", RegisterTask.period_start, lambda r: r[0].period_key),
            Column("run", "Run", None, lambda r: r[0].run),
            Column("status", "Status", RegisterTask.status, lambda r: r[0].status),
            Column("attempts", "Attempts", RegisterTask.attempts, lambda r: r[0].attempts),
            Column("last_error", "Last error", None, lambda r: r[0].last_error or ""),
            Column("due_at", "Next attempt", RegisterTask.due_at, lambda r: _next_attempt(r[0])),
            Column("rows", "Lines", None, lambda r: r[0].rows),
            Column("file_name", "File", None, lambda r: r[0].file_name or ""),
            Column("created_by", "By", None, lambda r: r[0].created_by),
            Column("created_at", "Created", RegisterTask.created_at, lambda r: r[0].created_at),
        ],
        search=[RegisterTemplate.code, RegisterTask.period_key, RegisterTask.file_name],
        filters=[
            Filter(
                "status",
                "Status",
                lambda q, v: q.where(RegisterTask.status == v),
                [(s, s) for s in TASK_STATUSES],
            ),
            Filter("provider", "Provider", lambda q, v: q.where(Provider.code == v), providers),
            Filter("template", "Template", lambda q, v: q.where(RegisterTemplate.code == v)),
        ],
        default_sort="id",
        sheet="register-tasks",
    )
    page = await spec.run(session, request)
    return respond(request, page, "registers/tasks.html")


async def _task(session: AsyncSession, task_id: int) -> RegisterTask:
    try:
        return await service.get_task(session, task_id)
    except Problem:
        raise PageNotFound() from None


@router.get("/registers/tasks/{task_id}/file")
async def task_file(task_id: Id, request: Request, session: ReadDbDep, me: Reader) -> Response:
    """The task's file as built (and encrypted), streamed from the database."""
    task = await _task(session, task_id)
    if task.file_sha256 is None or task.file_name is None:
        return redirect(f"{BASE}/tasks", "The register of this task is not built yet.")
    headers = {
        "Content-Disposition": f'attachment; filename="{task.file_name}"',
        "Content-Length": str(task.file_size or 0),
        "X-Content-SHA256": task.file_sha256,
    }
    return StreamingResponse(
        iter_file(request.app.state.hub.read_sessions, task_id),
        media_type=task.content_type or "application/octet-stream",
        headers=headers,
    )


def _task_state(task: RegisterTask) -> dict[str, Any]:
    keys = ("status", "due_at", "attempts", "max_attempts", "period", "run", "deliver", "template_id")
    out = service.task_out(task)
    return {k: out[k] for k in keys}


@router.post("/registers/tasks/{task_id}/retry")
async def task_retry(task_id: Id, session: DbDep, me: Writer) -> Response:
    task = await locked(session, RegisterTask, task_id)  # the state the retry is decided on
    if task is None:
        raise PageNotFound()
    before = _task_state(task)
    try:
        task = await service.retry_task(session, task_id)
    except Problem as e:
        await session.rollback()
        return redirect(f"{BASE}/tasks", _message(e))
    await audit.record(
        session, me, "register_task.retry", f"register_task:{task_id}", before, _task_state(task)
    )
    await session.commit()
    return redirect(f"{BASE}/tasks", "The task will be tried again now.")


async def _template_choices(session: AsyncSession) -> list[tuple[int, str]]:
    rows = await session.execute(
        select(RegisterTemplate.id, Provider.code, RegisterTemplate.code, RegisterTemplate.kind)
        .join(Provider, Provider.id == RegisterTemplate.provider_id)
        .order_by(Provider.code, RegisterTemplate.code)
    )
    return [(i, f"{p} · {c} ({k})") for i, p, c, k in rows.all()]


def _regenerate_form(
    request: Request, templates: list[tuple[int, str]], f: dict[str, Any], error: str = "", status: int = 200
) -> Response:
    return render(request, "registers/regenerate.html", status, templates=templates, f=f, error=error)


@router.get("/registers/regenerate")
async def regenerate_page(request: Request, session: DbDep, me: Writer) -> Response:
    q = request.query_params
    f = {
        "template_id": q.get("template_id", ""),
        "date": q.get("date", ""),
        "deliver": q.get("deliver") != "0",
    }
    return _regenerate_form(request, await _template_choices(session), f)


@router.post("/registers/regenerate")
async def regenerate(
    request: Request,
    session: DbDep,
    me: Writer,
    template_id: Annotated[str, Form()] = "",
    date: Annotated[str, Form()] = "",
    deliver: Annotated[str, Form()] = "",
) -> Response:
    """A new task that builds the register of a past period again (and sends it if asked)."""
    day, send = date.strip(), deliver == "1"
    f: dict[str, Any] = {"template_id": template_id, "date": day, "deliver": send}
    message = ""
    chosen = parse_id(template_id)
    if chosen is None or not day:
        message = "Choose the template and give the date."
    else:
        try:
            task = await service.regenerate(
                session,
                chosen,
                day,
                deliver=send,
                actor=me.audit_name,
                settle_seconds=RegisterSettings().settle_seconds,
            )
            await audit.record(
                session, me, "register_task.regenerate", f"register_task:{task.id}", None, _task_state(task)
            )
            await session.commit()
            return redirect(f"{BASE}/tasks", "A new task was created.")
        except Problem as e:
            await session.rollback()
            message = _message(e)
        except IntegrityError:
            await session.rollback()
            message = "Another regeneration of this period was just created."
    return _regenerate_form(request, await _template_choices(session), f, message, 422)
