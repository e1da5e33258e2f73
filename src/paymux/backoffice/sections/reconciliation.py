"""Reconciliation with providers: upload a register (or see fetched ones), the result with counts per
class and filters, the resolution form, the Excel report, and the column mapping per provider."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, Response
from sqlalchemy import select
from starlette.background import BackgroundTask

from paymux.api.params import Id
from paymux.auth import permissions as P
from paymux.auth.principal import Principal
from paymux.backoffice.framework import (
    FINANCE,
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
from paymux.catalog.models import Provider
from paymux.errors import Problem
from paymux.money import format_amount
from paymux.reconciliation import service
from paymux.reconciliation.models import (
    CLASSES,
    Reconciliation,
    ReconciliationFetch,
    ReconciliationLine,
    ReconciliationMapping,
)
from paymux.reconciliation.report import write_report
from paymux.reconciliation.resolve import ResolveError, allowed_actions, resolve_lines

router = section_router()
register(
    Section(
        "reconciliation",
        router,
        menu=(MenuEntry("Reconciliation", "/backoffice/reconciliation", P.RECON_READ, 40, area=FINANCE),),
        permissions=(P.RECON_READ, P.RECON_IMPORT, P.RECON_RESOLVE, P.RECON_CONFIGURE),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.RECON_READ))]
Importer = Annotated[Principal, Depends(require(P.RECON_IMPORT))]
Resolver = Annotated[Principal, Depends(require(P.RECON_RESOLVE))]
Configurer = Annotated[Principal, Depends(require(P.RECON_CONFIGURE))]
BASE = "/backoffice/reconciliation"
CLASS_TITLES = {
    "matched": "Matched",
    "amount_differs": "Amount differs",
    "status_differs": "Status differs",
    "missing_ours": "Missing on our side",
    "missing_theirs": "Missing on the provider's side",
    "duplicate": "Duplicate",
}
EXAMPLE = {
    "format": "csv",
    "header": True,
    "id_column": "Txn",
    "id_kind": "payment_id",
    "amount_column": "Amount",
    "decimal_separator": ",",
    "currency": "RUB",
    "date_column": "Date",
    "date_formats": ["%d.%m.%Y %H:%M:%S"],
    "status_column": "Status",
    "status_map": {"OK": "succeeded", "ERR": "failed"},
    "account_column": "Account",
    "csv": {"delimiter": ";", "encoding": "utf-8"},
    "post": {"channel": None, "service": None},
    "fetch": None,
}


def money(minor: int | None, currency: str) -> str:
    return "" if minor is None else format_amount(minor, currency)


@router.get("/reconciliation")
async def reconciliation_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    spec = ListSpec(
        query=select(Reconciliation, Provider.code.label("provider")).join(
            Provider, Provider.id == Reconciliation.provider_id
        ),
        columns=[
            Column("id", "Number", Reconciliation.id, lambda r: r[0].id),
            Column("provider", "Provider", Provider.code, lambda r: r.provider),
            Column("date_from", "From", Reconciliation.date_from, lambda r: r[0].date_from.isoformat()),
            Column("date_to", "To", Reconciliation.date_to, lambda r: r[0].date_to.isoformat()),
            Column("file_name", "File", Reconciliation.file_name, lambda r: r[0].file_name),
            Column("source", "Source", Reconciliation.source, lambda r: r[0].source),
            Column("rows", "Lines", Reconciliation.rows, lambda r: r[0].rows),
            Column(
                "open",
                "Discrepancies",
                None,
                lambda r: sum(int(r[0].counts.get(k, 0)) for k in CLASSES if k != "matched"),
            ),
            Column("created_at", "Imported", Reconciliation.created_at, lambda r: r[0].created_at),
            Column("created_by", "By", Reconciliation.created_by, lambda r: r[0].created_by),
        ],
        search=[Reconciliation.file_name, Provider.code],
        filters=[
            Filter(
                "source",
                "Source",
                lambda q, v: q.where(Reconciliation.source == v),
                [("upload", "upload"), ("ftp", "ftp"), ("sftp", "sftp")],
            ),
        ],
        default_sort="id",
        sheet="reconciliations",
    )
    page = await spec.run(session, request)
    providers = (await session.execute(select(Provider.code, Provider.name).order_by(Provider.code))).all()
    mapped = set(
        (
            await session.scalars(
                select(Provider.code).join(
                    ReconciliationMapping, ReconciliationMapping.provider_id == Provider.id
                )
            )
        ).all()
    )
    fetches = (
        await session.execute(
            select(ReconciliationFetch, Provider.code)
            .join(Provider, Provider.id == ReconciliationFetch.provider_id)
            .order_by(ReconciliationFetch.id.desc())
            .limit(20)
        )
    ).all()
    return respond(
        request,
        page,
        "reconciliation/list.html",
        providers=providers,
        mapped=mapped,
        fetches=fetches,
    )


@router.post("/reconciliation")
async def reconciliation_upload(
    session: DbDep,
    me: Importer,
    provider: Annotated[str, Form()] = "",
    date_from: Annotated[str, Form()] = "",
    date_to: Annotated[str, Form()] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Upload and reconcile a provider's register; a file that cannot be read is reported, nothing stored."""
    try:
        first = dt.date.fromisoformat(date_from)
        last = dt.date.fromisoformat(date_to) if date_to else None
    except ValueError:
        return redirect(BASE, "Give the provider, the period and the file.")
    if file is None or not file.filename or not provider:
        return redirect(BASE, "Give the provider, the period and the file.")
    folder = Path(tempfile.mkdtemp(prefix="pmxrec-"))
    try:
        path = folder / "upload"
        with path.open("wb") as f:
            while chunk := await file.read(1 << 20):
                f.write(chunk)
        try:
            prov = await service.provider_by_code(session, provider)
            period = service.period_of(prov, first, last)
            recon = await service.import_register(
                session, prov, path, period, file_name=file.filename, source="upload", actor=me
            )
        except Problem as e:
            await session.rollback()
            return redirect(BASE, e.detail or e.title)
        await session.commit()
        return redirect(f"{BASE}/{recon.id}", "The register was reconciled.")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _recon(session: Any, recon_id: int) -> tuple[Reconciliation, Provider]:
    recon = await session.get(Reconciliation, recon_id)
    if recon is None:
        raise PageNotFound()
    provider = await session.get(Provider, recon.provider_id)
    assert provider is not None
    return recon, provider


@router.get("/reconciliation/{recon_id}")
async def reconciliation_detail(recon_id: Id, request: Request, session: ReadDbDep, me: Reader) -> Response:
    recon, provider = await _recon(session, recon_id)
    info = await service.summary(session, recon, provider.code)
    spec = ListSpec(
        query=select(ReconciliationLine).where(ReconciliationLine.reconciliation_id == recon.id),
        columns=[
            Column("line_no", "Line", ReconciliationLine.line_no),
            Column("kind", "Class", ReconciliationLine.kind, lambda r: CLASS_TITLES.get(r.kind, r.kind)),
            Column("txn_ref", "Transaction", ReconciliationLine.txn_ref),
            Column("payment_id", "Payment", ReconciliationLine.payment_id),
            Column(
                "provider_amount",
                "Provider amount",
                ReconciliationLine.provider_amount,
                lambda r: money(r.provider_amount, r.currency),
            ),
            Column(
                "our_amount",
                "Our amount",
                ReconciliationLine.our_amount,
                lambda r: money(r.our_amount, r.currency),
            ),
            Column("currency", "Currency", None),
            Column("provider_status", "Provider status", None),
            Column("our_status", "Our status", None),
            Column("account", "Account", None),
            Column("note", "Note", None),
            Column("resolution", "Resolution", ReconciliationLine.resolution),
            Column("reason", "Reason", None),
        ],
        search=[ReconciliationLine.txn_ref, ReconciliationLine.account],
        filters=[
            Filter(
                "kind",
                "Class",
                _kind_filter,
                [("discrepancies", "Discrepancies"), *[(k, CLASS_TITLES[k]) for k in CLASSES]],
            ),
            Filter("state", "State", _state_filter, [("open", "open"), ("resolved", "resolved")]),
        ],
        default_sort="line_no",
        default_desc=False,
        page_size=100,
        sheet=f"reconciliation-{recon.id}",
    )
    page = await spec.run(session, request)
    channels, services = [], []
    if me.can(P.RECON_RESOLVE):
        from paymux.catalog.models import Channel, Service

        channels = list((await session.scalars(select(Channel.code).order_by(Channel.code))).all())
        services = list((await session.scalars(select(Service.code).order_by(Service.code))).all())
    mapping = await service.load_mapping(session, provider.id)
    return respond(
        request,
        page,
        "reconciliation/detail.html",
        recon=recon,
        provider=provider,
        info=info,
        classes=CLASSES,
        class_titles=CLASS_TITLES,
        actions_of=allowed_actions,
        channels=channels,
        services=services,
        post_defaults=mapping.post if mapping else None,
    )


def _kind_filter(q: Any, v: str) -> Any:
    if v == "discrepancies":
        return q.where(ReconciliationLine.kind.in_(CLASSES[1:]))
    return q.where(ReconciliationLine.kind == v)


def _state_filter(q: Any, v: str) -> Any:
    if v == "open":
        return q.where(ReconciliationLine.resolution.is_(None))
    return q.where(ReconciliationLine.resolution.is_not(None))


@router.post("/reconciliation/{recon_id}/resolve")
async def reconciliation_resolve(
    recon_id: Id,
    request: Request,
    session: DbDep,
    me: Resolver,
    action: Annotated[str, Form()] = "",
    line_id: Annotated[list[Id] | None, Form()] = None,
    reason: Annotated[str, Form()] = "",
    channel: Annotated[str, Form()] = "",
    service_code: Annotated[str, Form(alias="service")] = "",
) -> Response:
    recon, _ = await _recon(session, recon_id)
    back = f"{BASE}/{recon.id}"
    if not line_id:
        return redirect(back, "Select the lines first.")
    try:
        outs = await resolve_lines(
            request.app.state.hub,
            session,
            recon,
            line_id,
            action,
            actor=me,
            reason=reason,
            channel=channel or None,
            service=service_code or None,
        )
    except ResolveError as e:
        await session.rollback()
        return redirect(back, str(e))
    await session.commit()
    done = sum(o.done for o in outs)
    problems = [f"{o.line_id}: {o.message}" for o in outs if not o.done]
    msg = f"{done} of {len(outs)} lines resolved." + (" " + "; ".join(problems[:5]) if problems else "")
    return redirect(back + "?state=open&kind=discrepancies", msg)


@router.get("/reconciliation/{recon_id}/report")
async def reconciliation_report(recon_id: Id, session: ReadDbDep, me: Reader) -> Response:
    recon, _ = await _recon(session, recon_id)
    folder = Path(tempfile.mkdtemp(prefix="pmxrec-"))
    path = folder / "report.xlsx"
    await write_report(session, recon, path)
    return FileResponse(
        path,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        filename=f"reconciliation-{recon.id}.xlsx",
        background=BackgroundTask(shutil.rmtree, folder, True),
    )


@router.get("/reconciliation-mappings/{provider}")
async def mapping_page(provider: str, request: Request, session: ReadDbDep, me: Reader) -> Response:
    prov = await session.scalar(select(Provider).where(Provider.code == provider))
    if prov is None:
        raise PageNotFound()
    cfg = await service.load_mapping(session, prov.id)
    text = json.dumps(service.mapping_out(cfg) if cfg else EXAMPLE, indent=2, ensure_ascii=False)
    return render(
        request,
        "reconciliation/mapping.html",
        provider=_plain(prov),
        text=text,
        exists=cfg is not None,
        error="",
    )


def _plain(p: Provider) -> dict[str, str]:
    """What the mapping page shows of the provider (plain values: safe to render after a rollback)."""
    return {"code": p.code, "timezone": p.timezone}


@router.post("/reconciliation-mappings/{provider}")
async def mapping_save(
    provider: str, request: Request, session: DbDep, me: Configurer, mapping: Annotated[str, Form()] = ""
) -> Response:
    prov = await session.scalar(select(Provider).where(Provider.code == provider))
    if prov is None:
        raise PageNotFound()
    shown = _plain(prov)
    try:
        body = json.loads(mapping)
        if not isinstance(body, dict):
            raise ValueError("the mapping is a JSON object")
        await service.save_mapping(session, prov, body, me)
    except (ValueError, Problem) as e:
        await session.rollback()
        message = (e.detail or e.title) if isinstance(e, Problem) else f"not valid JSON: {e}"
        return render(
            request,
            "reconciliation/mapping.html",
            422,
            provider=shown,
            text=mapping,
            exists=True,
            error=message,
        )
    await session.commit()
    return redirect(f"/backoffice/reconciliation-mappings/{shown['code']}", "Saved.")


@router.post("/reconciliation-fetches/{fetch_id}/retry")
async def fetch_retry(fetch_id: Id, session: DbDep, me: Importer) -> Response:
    try:
        await service.retry_fetch(session, fetch_id, me)
    except Problem as e:
        await session.rollback()
        if e.status == 404:
            raise PageNotFound() from None
        return redirect(BASE, e.detail or e.title)
    await session.commit()
    return redirect(BASE, "The fetch will be tried again now.")
