"""Billers' stored upload mappings: a named :class:`paymux.invoices.upload.Mapping` per biller, saved
once (by the biller with its API key, or by an operator) and chosen by name when a file is uploaded
(``mapping_name``) instead of sending the JSON each time. Saving a name again replaces its mapping.
Services here never commit; saves and deletes are audited."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.audit import service as audit
from paymux.db.base import utcnow
from paymux.errors import Problem, invalid
from paymux.invoices.models import Biller, InvoiceUploadMapping
from paymux.invoices.upload import Mapping, UploadProblem, parse_mapping

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
MAX_PER_BILLER = 100


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise invalid(
            "invalid-mapping-name",
            "a mapping's name is 1 to 64 letters, digits, '.', '_' or '-' (starting with a letter or digit)",
        )
    return name


def mapping_of(config: Any) -> Mapping:
    """A mapping body (a JSON object) checked; 422 naming what is wrong."""
    if not isinstance(config, dict):
        raise UploadProblem("the mapping is not a JSON object")
    try:
        return Mapping.model_validate(config)
    except ValidationError as e:
        detail = "; ".join(
            f"{'.'.join(str(x) for x in err.get('loc', ()))}: {err.get('msg', '')}"
            for err in e.errors(include_url=False, include_input=False)
        )
        raise UploadProblem(f"the mapping is not valid: {detail}"[:1000]) from None


def view(row: InvoiceUploadMapping) -> dict[str, Any]:
    return {
        "name": row.name,
        "mapping": row.config,
        "updated_by": row.updated_by,
        "updated_at": row.updated_at.isoformat(),
    }


async def list_mappings(session: AsyncSession, biller: Biller) -> list[InvoiceUploadMapping]:
    rows = await session.scalars(
        select(InvoiceUploadMapping)
        .where(InvoiceUploadMapping.biller_id == biller.id)
        .order_by(InvoiceUploadMapping.name)
    )
    return list(rows.all())


async def find(session: AsyncSession, biller: Biller, name: str) -> InvoiceUploadMapping | None:
    if not NAME.match(name):
        return None
    found: InvoiceUploadMapping | None = await session.scalar(
        select(InvoiceUploadMapping).where(
            InvoiceUploadMapping.biller_id == biller.id, InvoiceUploadMapping.name == name
        )
    )
    return found


async def get(session: AsyncSession, biller: Biller, name: str) -> InvoiceUploadMapping:
    row = await find(session, biller, name)
    if row is None:
        raise Problem(
            404, "not-found", "Not found", f"biller {biller.code} has no mapping named {name[:64]!r}"
        )
    return row


async def save(
    session: AsyncSession, biller: Biller, name: str, config: Any, actor: Any
) -> InvoiceUploadMapping:
    """Store (or replace) the biller's mapping ``name``; audited."""
    check_name(name)
    cfg = mapping_of(config).model_dump(mode="json", exclude_defaults=True)
    row = await find(session, biller, name)
    before = view(row)["mapping"] if row is not None else None
    now = utcnow()
    if row is None:
        count = len(await list_mappings(session, biller))
        if count >= MAX_PER_BILLER:
            raise Problem(
                409,
                "too-many-mappings",
                "Too many mappings",
                f"a biller keeps at most {MAX_PER_BILLER} mappings",
            )
        row = InvoiceUploadMapping(biller_id=biller.id, name=name, created_at=now)
        session.add(row)
    row.config = cfg
    row.updated_by = _actor_name(actor)[:200]
    row.updated_at = now
    await session.flush()
    await audit.record(
        session, actor, "biller.upload_mapping", f"biller:{biller.code}/mapping:{name}", before, cfg
    )
    return row


async def delete(session: AsyncSession, biller: Biller, name: str, actor: Any) -> None:
    row = await get(session, biller, name)
    before = row.config
    await session.delete(row)
    await session.flush()
    await audit.record(
        session, actor, "biller.upload_mapping_delete", f"biller:{biller.code}/mapping:{name}", before, None
    )


async def resolve(session: AsyncSession, biller: Biller, text: str | None, name: str | None) -> Mapping:
    """The mapping of an upload: the stored one named ``name``, or the JSON ``text``, or the default.
    Both given is refused (422), as is a name the biller has no mapping by."""
    name = (name or "").strip()
    if name and text and text.strip():
        raise UploadProblem("give either mapping (JSON) or mapping_name, not both")
    if name:
        row = await find(session, biller, name)
        if row is None:
            raise UploadProblem(f"there is no mapping named {name[:64]!r}")
        return mapping_of(row.config)
    return parse_mapping(text)


def _actor_name(actor: Any) -> str:
    if isinstance(actor, str):
        return actor
    return str(getattr(actor, "audit_name", None) or actor)
