"""Matching a provider's register against our payments, streaming, and storing every line's class.

The file is read in chunks (``CHUNK`` lines, in a thread); each chunk's ids are looked up in one
query and its lines inserted in one statement, so memory stays flat whatever the file's size. Two
passes in the database finish the job: repeated ids in their file become ``duplicate``, and our
succeeded payments of the period that no line named are inserted as ``missing_theirs``
(INSERT ... SELECT). Everything happens in the caller's transaction: a file that turns out to be
malformed half-way leaves nothing behind when the caller rolls back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import String, Table, and_, exists, func, insert, literal, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from paymux.catalog.models import Provider
from paymux.db.base import utcnow
from paymux.payments.models import Payment
from paymux.reconciliation.mapping import LineParser, MappingConfig, ProviderLine
from paymux.reconciliation.models import (
    AMOUNT_DIFFERS,
    CLASSES,
    DUPLICATE,
    MATCHED,
    MISSING_OURS,
    MISSING_THEIRS,
    STATUS_DIFFERS,
    Reconciliation,
    ReconciliationLine,
)
from paymux.reconciliation.readers import open_table
from paymux.registers.schedule import local_midnight

CHUNK = 2000
MAX_BIGINT = 2**63 - 1
_lines = cast(Table, ReconciliationLine.__table__)


@dataclass(frozen=True, slots=True)
class Period:
    """Local days ``first``..``last`` of the provider, as UTC bounds [start, end)."""

    first: dt.date
    last: dt.date
    tz: ZoneInfo

    @property
    def start(self) -> dt.datetime:
        return local_midnight(self.first, self.tz)

    @property
    def end(self) -> dt.datetime:
        return local_midnight(self.last + dt.timedelta(days=1), self.tz)


def our_side(status: str) -> str:
    """Our payment's status as the provider would see it: succeeded, failed, or pending (not final)."""
    if status == "succeeded":
        return "succeeded"
    return "failed" if status in ("failed", "cancelled") else "pending"


def classify(line: ProviderLine, p: Any | None) -> tuple[str, str | None]:
    """The class of a line against our payment ``p`` (None: we have none), with a note."""
    if p is None:
        if line.status == "failed":
            return MATCHED, "failed at the provider, unknown to us"
        return MISSING_OURS, None
    ours = our_side(p.status)
    note = None
    if line.account is not None and p.account != line.account:
        note = f"account differs: ours {p.account}"
    if ours != line.status:
        if ours == "pending":
            note = "our payment is not final yet"
        return STATUS_DIFFERS, note
    if ours == "succeeded" and (p.amount != line.amount or p.currency != line.currency):
        return AMOUNT_DIFFERS, note
    return MATCHED, note


def file_digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


_COLUMNS = (
    Payment.id,
    Payment.provider_id,
    Payment.amount,
    Payment.currency,
    Payment.status,
    Payment.account,
)


async def _lookup(
    session: AsyncSession, provider_id: int, cfg: MappingConfig, lines: Sequence[ProviderLine]
) -> dict[str, Any]:
    """Our payments named by a chunk's lines, by the line's reference."""
    if cfg.id_kind == "payment_id":
        ids = {int(x.ref) for x in lines if len(x.ref) <= 19 and int(x.ref) <= MAX_BIGINT}
        if not ids:
            return {}
        rows = await session.execute(select(*_COLUMNS).where(Payment.id.in_(ids)))
        return {str(r.id): r for r in rows}
    refs = {x.ref for x in lines}
    rows = await session.execute(
        select(*_COLUMNS, Payment.provider_txn_id).where(
            Payment.provider_id == provider_id, Payment.provider_txn_id.in_(refs)
        )
    )
    return {r.provider_txn_id: r for r in rows}


def _row(recon_id: int, line: ProviderLine, p: Any | None, provider_id: int) -> dict[str, Any]:
    other = p is not None and p.provider_id != provider_id
    kind, note = classify(line, None if other else p)
    if p is not None and other:
        note = f"payment {p.id} was made through another provider"
    return {
        "reconciliation_id": recon_id,
        "line_no": line.line_no,
        "kind": kind,
        "txn_ref": line.ref,
        "payment_id": p.id if p is not None else None,
        "currency": line.currency,
        "provider_amount": line.amount,
        "our_amount": p.amount if p is not None and not other else None,
        "provider_status": line.status,
        "our_status": p.status if p is not None and not other else None,
        "provider_at": line.at,
        "account": line.account,
        "note": note,
        "resolution": None,
        "reason": None,
        "resolved_by": None,
        "resolved_at": None,
        "resolved_payment_id": None,
    }


async def reconcile_file(
    session: AsyncSession,
    provider: Provider,
    cfg: MappingConfig,
    path: Path,
    period: Period,
    *,
    source: str,
    file_name: str,
    actor: str,
    chunk: int = CHUNK,
) -> Reconciliation:
    """Read ``path`` with the mapping, match it, store the reconciliation and its lines (not committed).

    Raises FileFormatError / MappingError for a file that cannot be read; the caller rolls back.
    """
    sha, size = await asyncio.to_thread(file_digest, path)
    recon = Reconciliation(
        provider_id=provider.id,
        date_from=period.first,
        date_to=period.last,
        period_start=period.start,
        period_end=period.end,
        source=source,
        file_name=file_name[:255],
        file_format=cfg.format,
        file_size=size,
        file_sha256=sha,
        id_kind=cfg.id_kind,
        rows=0,
        counts={},
        created_by=actor[:200],
        created_at=utcnow(),
    )
    session.add(recon)
    await session.flush()
    conn = await session.connection()
    rows = 0
    with open_table(path, cfg) as table:
        parser = LineParser(cfg, table.header, ZoneInfo(provider.timezone))
        next_chunk = _chunker(table.rows, parser.parse, chunk)
        while True:
            lines = await asyncio.to_thread(next_chunk)
            if lines is None:
                break
            if not lines:
                continue
            found = await _lookup(session, provider.id, cfg, lines)
            await conn.execute(
                insert(_lines), [_row(recon.id, x, found.get(x.ref), provider.id) for x in lines]
            )
            rows += len(lines)
    await _mark_duplicates(session, recon.id)
    await _add_missing_theirs(session, recon, cfg, provider.id)
    recon.rows = rows
    recon.counts = await count_classes(session, recon.id)
    await session.flush()
    return recon


def _chunker(
    rows: Iterator[tuple[int, Sequence[Any]]],
    parse: Callable[[int, Sequence[Any]], ProviderLine | None],
    n: int,
) -> Callable[[], list[ProviderLine] | None]:
    def next_chunk() -> list[ProviderLine] | None:
        """The lines of the next ``n`` rows ([] if none had an id), None at the end of the file."""
        raw = list(itertools.islice(rows, n))
        if not raw:
            return None
        return [line for line_no, cells in raw if (line := parse(line_no, cells)) is not None]

    return next_chunk


async def _mark_duplicates(session: AsyncSession, recon_id: int) -> None:
    """Every line whose id already appeared earlier in the same file becomes ``duplicate``."""
    first = aliased(ReconciliationLine)
    earlier = exists().where(
        first.reconciliation_id == recon_id,
        first.txn_ref == ReconciliationLine.txn_ref,
        first.id < ReconciliationLine.id,
        first.line_no.is_not(None),
    )
    await session.execute(
        update(ReconciliationLine)
        .where(
            ReconciliationLine.reconciliation_id == recon_id,
            ReconciliationLine.line_no.is_not(None),
            earlier,
        )
        .values(kind=DUPLICATE, note="the same transaction id appears earlier in the file")
        .execution_options(synchronize_session=False)
    )


async def _add_missing_theirs(
    session: AsyncSession, recon: Reconciliation, cfg: MappingConfig, provider_id: int
) -> None:
    """Our succeeded payments of the period that no line of their file names."""
    named = exists().where(
        ReconciliationLine.reconciliation_id == recon.id, ReconciliationLine.payment_id == Payment.id
    )
    ref = sql_cast(Payment.id, String) if cfg.id_kind == "payment_id" else Payment.provider_txn_id
    src = select(
        literal(recon.id),
        literal(MISSING_THEIRS),
        ref,
        Payment.id,
        Payment.currency,
        Payment.amount,
        Payment.status,
        Payment.account,
    ).where(
        and_(
            Payment.provider_id == provider_id,
            Payment.final_at >= recon.period_start,
            Payment.final_at < recon.period_end,
            Payment.status == "succeeded",
            ~named,
        )
    )
    await session.execute(
        insert(ReconciliationLine).from_select(
            [
                "reconciliation_id",
                "kind",
                "txn_ref",
                "payment_id",
                "currency",
                "our_amount",
                "our_status",
                "account",
            ],
            src,
        )
    )


async def count_classes(session: AsyncSession, recon_id: int) -> dict[str, int]:
    counts = dict.fromkeys(CLASSES, 0)
    rows = await session.execute(
        select(ReconciliationLine.kind, func.count())
        .where(ReconciliationLine.reconciliation_id == recon_id)
        .group_by(ReconciliationLine.kind)
    )
    for kind, n in rows:
        counts[kind] = int(n)
    return counts


__all__ = ["AMOUNT_DIFFERS", "STATUS_DIFFERS", "Period", "classify", "reconcile_file"]
