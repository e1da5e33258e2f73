"""Reconciliation business logic for the API and the back office: mappings, imports, reading results."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.catalog.models import Provider
from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.errors import Problem, invalid, not_found
from paymux.masking import MaskedSecretError, keep_secrets, mask_secrets
from paymux.reconciliation.mapping import MappingConfig, MappingError
from paymux.reconciliation.matcher import Period, reconcile_file
from paymux.reconciliation.models import (
    CLASSES,
    DISCREPANCIES,
    Reconciliation,
    ReconciliationFetch,
    ReconciliationLine,
    ReconciliationMapping,
)
from paymux.reconciliation.readers import FileFormatError

MAX_DAYS = 92


def validation_message(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, x['loc'])) or 'mapping'}: {x['msg']}" for x in e.errors())


async def provider_by_code(session: AsyncSession, code: str) -> Provider:
    p = await session.scalar(select(Provider).where(Provider.code == code))
    if p is None:
        raise not_found(f"provider {code!r}")
    return p


async def load_mapping(session: AsyncSession, provider_id: int) -> MappingConfig | None:
    row = await session.scalar(
        select(ReconciliationMapping).where(ReconciliationMapping.provider_id == provider_id)
    )
    return MappingConfig.model_validate(row.config) if row is not None else None


def mapping_out(cfg: MappingConfig) -> dict[str, Any]:
    """The mapping as JSON, as every read shows it: the fetch secrets as ``***``."""
    data: dict[str, Any] = mask_secrets(cfg.model_dump(mode="json"))
    return data


async def save_mapping(
    session: AsyncSession, provider: Provider, body: dict[str, Any], actor: Any
) -> MappingConfig:
    """Validate and store the provider's mapping (``***`` keeps a stored secret); audited."""
    row = await session.scalar(
        select(ReconciliationMapping).where(ReconciliationMapping.provider_id == provider.id)
    )
    old = MappingConfig.model_validate(row.config) if row is not None else None
    try:
        cfg = MappingConfig.model_validate(keep_secrets(body, old.model_dump(mode="json") if old else {}))
    except MaskedSecretError as e:
        raise invalid("invalid-mapping", str(e)) from None
    except ValidationError as e:
        raise invalid("invalid-mapping", validation_message(e)) from None
    name = actor if isinstance(actor, str) else str(getattr(actor, "audit_name", actor))
    now = utcnow()
    if row is None:
        row = ReconciliationMapping(provider_id=provider.id, created_at=now)
        session.add(row)
    row.config = cfg.model_dump(mode="json")
    row.updated_by = name[:200]
    row.updated_at = now
    await session.flush()
    await audit.record(
        session,
        actor,
        "reconciliation.mapping",
        f"provider:{provider.code}",
        mapping_out(old) if old else None,
        mapping_out(cfg),
    )
    return cfg


def period_of(provider: Provider, date_from: dt.date, date_to: dt.date | None) -> Period:
    last = date_to or date_from
    if last < date_from:
        raise invalid("invalid-period", "the period ends before it starts")
    if (last - date_from).days >= MAX_DAYS:
        raise invalid("invalid-period", f"a reconciliation covers at most {MAX_DAYS} days")
    return Period(date_from, last, ZoneInfo(provider.timezone))


async def import_register(
    session: AsyncSession,
    provider: Provider,
    path: Any,
    period: Period,
    *,
    file_name: str,
    source: str,
    actor: Any,
    cfg: MappingConfig | None = None,
) -> Reconciliation:
    """Reconcile a file of the provider (not committed). A file that cannot be read raises a 422 Problem;
    the caller rolls back, so nothing of it is stored."""
    cfg = cfg or await load_mapping(session, provider.id)
    if cfg is None:
        raise invalid(
            "no-mapping", f"provider {provider.code} has no reconciliation mapping yet; configure it first"
        )
    name = actor if isinstance(actor, str) else str(getattr(actor, "audit_name", actor))
    try:
        recon = await reconcile_file(
            session, provider, cfg, path, period, source=source, file_name=file_name, actor=name
        )
    except (FileFormatError, MappingError, UnicodeError) as e:
        raise invalid("unreadable-register", f"{file_name}: {e}") from None
    await audit.record(
        session,
        actor,
        "reconciliation.import",
        f"reconciliation:{recon.id}",
        None,
        {
            "provider": provider.code,
            "file": file_name,
            "source": source,
            "rows": recon.rows,
            "counts": recon.counts,
            "resolved_earlier": sum((await resolved_counts(session, recon.id)).values()),
        },
    )
    return recon


async def get_reconciliation(session: AsyncSession, recon_id: int) -> Reconciliation:
    recon = await session.get(Reconciliation, recon_id)
    if recon is None:
        raise not_found(f"reconciliation {recon_id}")
    return recon


async def resolved_counts(session: AsyncSession, recon_id: int) -> dict[str, int]:
    rows = await session.execute(
        select(ReconciliationLine.kind, func.count())
        .where(ReconciliationLine.reconciliation_id == recon_id, ReconciliationLine.resolution.is_not(None))
        .group_by(ReconciliationLine.kind)
    )
    return {k: int(n) for k, n in rows}


async def summary(
    session: AsyncSession, recon: Reconciliation, provider_code: str | None = None
) -> dict[str, Any]:
    if provider_code is None:
        provider = await session.get(Provider, recon.provider_id)
        provider_code = provider.code if provider else str(recon.provider_id)
    counts = {k: int(recon.counts.get(k, 0)) for k in CLASSES}
    resolved = await resolved_counts(session, recon.id)
    open_ = sum(counts[k] for k in DISCREPANCIES) - sum(resolved.get(k, 0) for k in DISCREPANCIES)
    return {
        "id": recon.id,
        "provider": provider_code,
        "date_from": recon.date_from.isoformat(),
        "date_to": recon.date_to.isoformat(),
        "period_start": recon.period_start.isoformat(),
        "period_end": recon.period_end.isoformat(),
        "source": recon.source,
        "file_name": recon.file_name,
        "file_format": recon.file_format,
        "file_size": recon.file_size,
        "file_sha256": recon.file_sha256,
        "id_kind": recon.id_kind,
        "rows": recon.rows,
        "counts": counts,
        "resolved": {k: resolved.get(k, 0) for k in DISCREPANCIES},
        "open_discrepancies": open_,
        "created_by": recon.created_by,
        "created_at": recon.created_at.isoformat(),
    }


def line_out(line: ReconciliationLine) -> dict[str, Any]:
    from paymux.reconciliation.resolve import allowed_actions

    return {
        "id": line.id,
        "line_no": line.line_no,
        "kind": line.kind,
        "txn_ref": line.txn_ref,
        "payment_id": line.payment_id,
        "currency": line.currency,
        "provider_amount": line.provider_amount,
        "our_amount": line.our_amount,
        "provider_status": line.provider_status,
        "our_status": line.our_status,
        "provider_at": line.provider_at.isoformat() if line.provider_at else None,
        "account": line.account,
        "note": line.note,
        "resolution": line.resolution,
        "reason": line.reason,
        "resolved_by": line.resolved_by,
        "resolved_at": line.resolved_at.isoformat() if line.resolved_at else None,
        "resolved_payment_id": line.resolved_payment_id,
        "actions": list(allowed_actions(line)),
    }


def lines_query(recon_id: int, kind: str | None = None, state: str | None = None) -> Any:
    """Lines of a reconciliation; ``kind`` a class or ``discrepancies``; ``state`` open | resolved."""
    q = select(ReconciliationLine).where(ReconciliationLine.reconciliation_id == recon_id)
    if kind == "discrepancies":
        q = q.where(ReconciliationLine.kind.in_(DISCREPANCIES))
    elif kind:
        if kind not in CLASSES:
            raise invalid("invalid-filter", f"kind must be one of {', '.join(CLASSES)} or discrepancies")
        q = q.where(ReconciliationLine.kind == kind)
    if state == "open":
        q = q.where(ReconciliationLine.resolution.is_(None))
    elif state == "resolved":
        q = q.where(ReconciliationLine.resolution.is_not(None))
    elif state:
        raise invalid("invalid-filter", "state must be open or resolved")
    return q


def fetch_out(f: ReconciliationFetch, provider_code: str) -> dict[str, Any]:
    return {
        "id": f.id,
        "provider": provider_code,
        "period": f.period_key,
        "status": f.status,
        "due_at": f.due_at.isoformat(),
        "attempts": f.attempts,
        "max_attempts": f.max_attempts,
        "last_error": f.last_error,
        "file_name": f.file_name,
        "reconciliation_id": f.reconciliation_id,
        "created_at": f.created_at.isoformat(),
    }


async def retry_fetch(session: AsyncSession, fetch_id: int, actor: Any) -> ReconciliationFetch:
    f = await locked(session, ReconciliationFetch, fetch_id)  # not claimed by a worker meanwhile
    if f is None:
        raise not_found(f"reconciliation fetch {fetch_id}")
    if f.status in ("done", "running"):
        raise Problem(409, "not-retryable", "The fetch cannot be retried", f"the fetch is {f.status}")
    before = {"status": f.status, "attempts": f.attempts, "max_attempts": f.max_attempts}
    if f.status == "failed":
        f.max_attempts = f.attempts + 8  # a failed fetch gets a fresh round of attempts
    f.status = "pending"
    f.due_at = utcnow()
    f.updated_at = utcnow()
    await audit.record(
        session,
        actor,
        "reconciliation.fetch_retry",
        f"reconciliation-fetch:{f.id}",
        before,
        {"status": "pending"},
    )
    return f
