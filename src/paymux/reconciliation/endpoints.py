"""Admin API for reconciliation: mappings per provider, imports, results, resolutions, the Excel report."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, File, Form, Query, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select
from starlette.background import BackgroundTask

from paymux.api.deps import HubDep, ReadSessionDep, SessionDep
from paymux.api.params import Count, Id
from paymux.auth import permissions as P
from paymux.auth.admin_api import require_api
from paymux.auth.principal import Principal
from paymux.catalog.models import Provider
from paymux.downloads import XLSX
from paymux.errors import invalid
from paymux.reconciliation import service
from paymux.reconciliation.models import Reconciliation, ReconciliationFetch, ReconciliationLine
from paymux.reconciliation.report import write_report
from paymux.reconciliation.resolve import ResolveError, resolve_lines

router = APIRouter(prefix="/api/v1/admin", tags=["reconciliation"])

Reader = Annotated[Principal, Depends(require_api(P.RECON_READ))]
Importer = Annotated[Principal, Depends(require_api(P.RECON_IMPORT))]
Resolver = Annotated[Principal, Depends(require_api(P.RECON_RESOLVE))]
Configurer = Annotated[Principal, Depends(require_api(P.RECON_CONFIGURE))]


class ResolveIn(BaseModel):
    action: Literal["post", "cancel", "accept"]
    line_ids: list[Id] = Field(min_length=1, max_length=10_000)
    reason: str = Field(default="", max_length=2000)
    channel: str | None = None
    service: str | None = None


@router.get("/providers/{provider}/reconciliation-mapping")
async def get_mapping(provider: str, _: Reader, session: ReadSessionDep) -> dict[str, Any]:
    """The provider's column mapping and fetch settings (secrets masked)."""
    prov = await service.provider_by_code(session, provider)
    cfg = await service.load_mapping(session, prov.id)
    if cfg is None:
        raise invalid("no-mapping", f"provider {provider} has no reconciliation mapping yet")
    return service.mapping_out(cfg)


@router.put("/providers/{provider}/reconciliation-mapping")
async def put_mapping(
    provider: str, body: Annotated[dict[str, Any], Body()], me: Configurer, session: SessionDep
) -> dict[str, Any]:
    """Replace the mapping (``***`` keeps a stored secret); 422 names what is wrong."""
    prov = await service.provider_by_code(session, provider)
    cfg = await service.save_mapping(session, prov, body, me)
    await session.commit()
    return service.mapping_out(cfg)


async def _save_upload(upload: UploadFile, folder: Path) -> Path:
    path = folder / "upload"
    with path.open("wb") as f:
        while chunk := await upload.read(1 << 20):
            f.write(chunk)
    return path


@router.post("/providers/{provider}/reconciliations", status_code=201)
async def import_file(
    provider: str,
    me: Importer,
    session: SessionDep,
    file: Annotated[UploadFile, File()],
    date_from: Annotated[dt.date, Form()],
    date_to: Annotated[dt.date | None, Form()] = None,
) -> dict[str, Any]:
    """Upload their register (multipart: ``file``, ``date_from``, optional ``date_to``: local days of the
    provider) and reconcile it. A file that cannot be read is a 422 and nothing is stored."""
    prov = await service.provider_by_code(session, provider)
    period = service.period_of(prov, date_from, date_to)
    folder = Path(tempfile.mkdtemp(prefix="pmxrec-"))
    try:
        path = await _save_upload(file, folder)
        try:
            recon = await service.import_register(
                session, prov, path, period, file_name=file.filename or "upload", source="upload", actor=me
            )
        except Exception:
            await session.rollback()
            raise
        await session.commit()
        return await service.summary(session, recon, prov.code)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@router.get("/reconciliations")
async def list_reconciliations(
    _: Reader,
    session: ReadSessionDep,
    provider: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Id | None = None,
) -> list[dict[str, Any]]:
    """Reconciliations, newest first."""
    q = select(Reconciliation, Provider.code).join(Provider, Provider.id == Reconciliation.provider_id)
    if provider:
        q = q.where(Provider.code == provider)
    if before_id:
        q = q.where(Reconciliation.id < before_id)
    rows = (await session.execute(q.order_by(Reconciliation.id.desc()).limit(limit))).all()
    return [await service.summary(session, r, code) for r, code in rows]


@router.get("/reconciliations/{recon_id}")
async def get_reconciliation(recon_id: Id, _: Reader, session: ReadSessionDep) -> dict[str, Any]:
    """Counts per class (and how many are resolved)."""
    return await service.summary(session, await service.get_reconciliation(session, recon_id))


@router.get("/reconciliations/{recon_id}/lines")
async def get_lines(
    recon_id: Id,
    _: Reader,
    session: ReadSessionDep,
    kind: str | None = None,
    state: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    after_id: Count = 0,
) -> list[dict[str, Any]]:
    """Lines in id order; ``kind``: a class or ``discrepancies``; ``state``: open | resolved."""
    await service.get_reconciliation(session, recon_id)
    q = service.lines_query(recon_id, kind, state).where(ReconciliationLine.id > after_id)
    rows = (await session.scalars(q.order_by(ReconciliationLine.id).limit(limit))).all()
    return [service.line_out(x) for x in rows]


@router.post("/reconciliations/{recon_id}/resolve")
async def resolve(
    recon_id: Id,
    body: Annotated[dict[str, Any], Body()],
    me: Resolver,
    hub: HubDep,
    session: SessionDep,
) -> dict[str, Any]:
    """Post, cancel or accept lines: ``{"action", "line_ids", "reason", "channel"?, "service"?}``.
    Each line's outcome is reported; lines already resolved are left as they are."""
    try:
        data = ResolveIn.model_validate(body)
    except ValidationError as e:
        raise invalid("invalid-request", service.validation_message(e)) from None
    recon = await service.get_reconciliation(session, recon_id)
    try:
        outs = await resolve_lines(
            hub,
            session,
            recon,
            data.line_ids,
            data.action,
            actor=me,
            reason=data.reason,
            channel=data.channel,
            service=data.service,
        )
    except ResolveError as e:
        raise invalid("cannot-resolve", str(e)) from None
    await session.commit()
    return {
        "done": sum(o.done for o in outs),
        "results": [
            {"line_id": o.line_id, "done": o.done, "message": o.message, "payment_id": o.payment_id}
            for o in outs
        ],
    }


@router.get("/reconciliations/{recon_id}/report")
async def report(recon_id: Id, _: Reader, session: ReadSessionDep) -> FileResponse:
    """The reconciliation report (xlsx): a summary sheet and every line."""
    recon = await service.get_reconciliation(session, recon_id)
    folder = Path(tempfile.mkdtemp(prefix="pmxrec-"))
    path = folder / "report.xlsx"
    await write_report(session, recon, path)
    return FileResponse(
        path,
        media_type=XLSX,
        filename=f"reconciliation-{recon_id}.xlsx",
        background=BackgroundTask(shutil.rmtree, folder, True),
    )


@router.get("/reconciliation-fetches")
async def list_fetches(
    _: Reader,
    session: ReadSessionDep,
    provider: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    """Scheduled fetches, newest first, with their errors."""
    q = select(ReconciliationFetch, Provider.code).join(
        Provider, Provider.id == ReconciliationFetch.provider_id
    )
    if provider:
        q = q.where(Provider.code == provider)
    if status:
        q = q.where(ReconciliationFetch.status == status)
    rows = (await session.execute(q.order_by(ReconciliationFetch.id.desc()).limit(limit))).all()
    return [service.fetch_out(f, code) for f, code in rows]


@router.post("/reconciliation-fetches/{fetch_id}/retry")
async def retry_fetch(fetch_id: Id, me: Importer, session: SessionDep) -> dict[str, Any]:
    """Make a pending or failed fetch due now (a failed one gets a fresh round of attempts)."""
    f = await service.retry_fetch(session, fetch_id, me)
    code = await session.scalar(select(Provider.code).where(Provider.id == f.provider_id))
    await session.commit()
    return service.fetch_out(f, code or "")
