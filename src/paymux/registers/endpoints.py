"""Admin API for registers: templates per provider, sending tasks, files, retry, regenerate."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from paymux.api.deps import AdminDep, HubDep, ReadSessionDep, SessionDep
from paymux.api.params import Id
from paymux.errors import Problem, invalid
from paymux.registers import service
from paymux.registers.schemas import RegenerateIn
from paymux.registers.settings import RegisterSettings
from paymux.registers.tasks import iter_file

router = APIRouter(prefix="/api/v1/admin", tags=["registers"])

JsonBody = Annotated[dict[str, Any], Body()]


@router.get("/providers/{provider}/register-templates")
async def list_templates(provider: str, _: AdminDep, session: ReadSessionDep) -> list[dict[str, Any]]:
    """A provider's register templates (secrets masked)."""
    return [service.template_out(t, provider) for t in await service.list_templates(session, provider)]


@router.post("/providers/{provider}/register-templates", status_code=201)
async def create_template(provider: str, body: JsonBody, _: AdminDep, session: SessionDep) -> dict[str, Any]:
    tpl = await service.create_template(session, provider, body)
    await session.commit()
    return service.template_out(tpl, provider)


@router.get("/register-templates/{template_id}")
async def get_template(template_id: Id, _: AdminDep, session: ReadSessionDep) -> dict[str, Any]:
    tpl, provider = await service.get_template(session, template_id)
    return service.template_out(tpl, provider.code)


@router.put("/register-templates/{template_id}")
async def update_template(
    template_id: Id, body: JsonBody, _: AdminDep, session: SessionDep
) -> dict[str, Any]:
    """Replace the template; secrets given as ``***`` keep their stored values."""
    tpl = await service.update_template(session, template_id, body)
    provider = await service.provider_of(session, tpl)
    await session.commit()
    return service.template_out(tpl, provider.code)


@router.delete("/register-templates/{template_id}", status_code=204)
async def delete_template(template_id: Id, _: AdminDep, session: SessionDep) -> None:
    """Delete the template with its tasks and their files."""
    await service.delete_template(session, template_id)
    await session.commit()


@router.post("/register-templates/{template_id}/regenerate", status_code=201)
async def regenerate(template_id: Id, body: JsonBody, admin: AdminDep, session: SessionDep) -> dict[str, Any]:
    """Build the register of a past period again as a new task (and send it unless deliver is false)."""
    try:
        data = RegenerateIn.model_validate(body)
    except ValidationError as e:
        raise invalid(
            "invalid-request", "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        ) from None
    try:
        task = await service.regenerate(
            session,
            template_id,
            data.date,
            deliver=data.deliver,
            actor=f"admin:{admin.name}",
            settle_seconds=RegisterSettings().settle_seconds,
        )
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Problem(
            409, "conflict", "Conflict", "another regeneration of this period was just created"
        ) from None
    return service.task_out(task)


@router.get("/register-tasks")
async def list_tasks(
    _: AdminDep,
    session: ReadSessionDep,
    provider: str | None = None,
    template_id: Id | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Id | None = None,
) -> list[dict[str, Any]]:
    """Sending tasks, newest first (page with before_id)."""
    rows = await service.list_tasks(
        session,
        provider_code=provider,
        template_id=template_id,
        status=status,
        limit=limit,
        before_id=before_id,
    )
    return [service.task_out(t, code) for t, code in rows]


@router.get("/register-tasks/{task_id}")
async def get_task(task_id: Id, _: AdminDep, session: ReadSessionDep) -> dict[str, Any]:
    return service.task_out(await service.get_task(session, task_id))


@router.get("/register-tasks/{task_id}/file")
async def download(task_id: Id, _: AdminDep, hub: HubDep, session: ReadSessionDep) -> StreamingResponse:
    """The task's file as it was built (and encrypted), streamed from the database."""
    task = await service.get_task(session, task_id)
    if task.file_sha256 is None or task.file_name is None:
        raise Problem(409, "not-built", "Not built yet", f"register task {task_id} has no file yet")
    headers = {
        "Content-Disposition": f'attachment; filename="{task.file_name}"',
        "Content-Length": str(task.file_size or 0),
        "X-Content-SHA256": task.file_sha256,
    }
    return StreamingResponse(
        iter_file(hub.read_sessions, task_id),
        media_type=task.content_type or "application/octet-stream",
        headers=headers,
    )


@router.post("/register-tasks/{task_id}/retry")
async def retry(task_id: Id, _: AdminDep, hub: HubDep, session: SessionDep) -> dict[str, Any]:
    """Make a failed or waiting task due now."""
    task = await service.retry_task(session, task_id)
    await session.commit()
    return service.task_out(task)
