"""Matching a provider's register against our payments, streaming, and storing every line's class.

The file is read in chunks (``CHUNK`` lines, in a thread); each chunk's ids are looked up in one
query and its lines inserted in one statement, so memory stays flat whatever the file's size. Two
passes in the database finish the job: repeated ids in their file become ``duplicate``, and our
succeeded payments of the period that no line named are inserted as ``missing_theirs``
(INSERT ... SELECT). Everything happens in the caller's transaction: a file that turns out to be
malformed half-way leaves nothing behind when the caller rolls back.

Resolutions are not lost when a register is reconciled again: a transaction of theirs that was posted
as a new payment is matched with that payment (their id is not ours), and a line that comes back just
as an earlier resolution left it (accepted, cancelled, posted) is resolved already, with that
resolution (see :func:`_carry_resolutions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import String, Table, and_, bindparam, exists, func, insert, literal, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from paymux.catalog.models import Provider
from paymux.db.base import utcnow
from paymux.payments.models import Payment
from paymux.reconciliation.mapping import LineParser, MappingConfig, ProviderLine
from paymux.reconciliation.models import (
    AMOUNT_DIFFERS,
    CANCELLED,
    CLASSES,
    DISCREPANCIES,
    DUPLICATE,
    MATCHED,
    MISSING_OURS,
    MISSING_THEIRS,
    POSTED,
    STATUS_DIFFERS,
    Reconciliation,
    ReconciliationLine,
)
from paymux.reconciliation.readers import Table as RegisterTable
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
    session: AsyncSession,
    provider_id: int,
    cfg: MappingConfig,
    lines: Sequence[ProviderLine],
    earlier: list[int],
) -> dict[str, Any]:
    """Our payments named by a chunk's lines, by the line's reference."""
    if cfg.id_kind == "payment_id":
        ids = {int(x.ref) for x in lines if len(x.ref) <= 19 and int(x.ref) <= MAX_BIGINT}
        found: dict[str, Any] = {}
        if ids:
            rows = await session.execute(select(*_COLUMNS).where(Payment.id.in_(ids)))
            found = {str(r.id): r for r in rows}
        unknown = {x.ref for x in lines if x.ref not in found or found[x.ref].provider_id != provider_id}
        found.update(await _posted(session, provider_id, unknown, earlier))
        return found
    refs = {x.ref for x in lines}
    rows = await session.execute(
        select(*_COLUMNS, Payment.provider_txn_id).where(
            Payment.provider_id == provider_id, Payment.provider_txn_id.in_(refs)
        )
    )
    return {r.provider_txn_id: r for r in rows}


async def _earlier(session: AsyncSession, recon: Reconciliation) -> list[int]:
    """The provider's reconciliations before ``recon`` keyed the same way (their lines are looked up by
    ``(reconciliation_id, txn_ref)`` and ``(reconciliation_id, payment_id)``, the lines' indexes)."""
    rows = await session.scalars(
        select(Reconciliation.id).where(
            Reconciliation.provider_id == recon.provider_id,
            Reconciliation.id_kind == recon.id_kind,
            Reconciliation.id < recon.id,
        )
    )
    return list(rows.all())


async def _posted(
    session: AsyncSession, provider_id: int, refs: set[str], earlier: list[int]
) -> dict[str, Any]:
    """Payments posted for their transactions ``refs`` when an earlier reconciliation (keyed by our
    payment id) resolved them as missing on our side: the payment's id is ours, not their ref."""
    if not refs or not earlier:
        return {}
    pairs: dict[str, int] = {}
    for ref_chunk in _chunks(sorted(refs)):
        for recon_chunk in _chunks(earlier):
            rows = await session.execute(
                select(ReconciliationLine.txn_ref, ReconciliationLine.resolved_payment_id).where(
                    ReconciliationLine.reconciliation_id.in_(recon_chunk),
                    ReconciliationLine.txn_ref.in_(ref_chunk),
                    ReconciliationLine.resolution == POSTED,
                    ReconciliationLine.payment_id.is_(None),
                    ReconciliationLine.resolved_payment_id.is_not(None),
                )
            )
            pairs.update({ref: pid for ref, pid in rows if ref is not None and pid is not None})
    if not pairs:
        return {}
    rows = await session.execute(
        select(*_COLUMNS).where(Payment.id.in_(set(pairs.values())), Payment.provider_id == provider_id)
    )
    by_id = {r.id: r for r in rows}
    return {ref: by_id[pid] for ref, pid in pairs.items() if pid in by_id}


def _chunks(values: Sequence[Any], n: int = 1000) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), n):
        yield values[i : i + n]


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
    earlier = await _earlier(session, recon)
    rows = 0
    async with _opened(path, cfg) as table:
        parser = LineParser(cfg, table.header, ZoneInfo(provider.timezone))
        next_chunk = _chunker(table.rows, parser.parse, chunk)
        while True:
            lines = await asyncio.to_thread(next_chunk)
            if lines is None:
                break
            if not lines:
                continue
            found = await _lookup(session, provider.id, cfg, lines, earlier)
            await conn.execute(
                insert(_lines), [_row(recon.id, x, found.get(x.ref), provider.id) for x in lines]
            )
            rows += len(lines)
    await _mark_duplicates(session, recon.id)
    await _add_missing_theirs(session, recon, cfg, provider.id)
    if earlier:
        await _carry_resolutions(session, recon, earlier)
    recon.rows = rows
    recon.counts = await count_classes(session, recon.id)
    await session.flush()
    return recon


@contextlib.asynccontextmanager
async def _opened(path: Path, cfg: MappingConfig) -> AsyncIterator[RegisterTable]:
    """``open_table`` opened and closed in a thread: opening a workbook reads its shared strings."""
    with contextlib.ExitStack() as stack:
        yield await asyncio.to_thread(stack.enter_context, open_table(path, cfg))
        closing = stack.pop_all()
    await asyncio.to_thread(closing.close)


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


def left_by(
    resolution: str, payment_id: int | None, our_amount: int | None, our_status: str | None, **posted: Any
) -> tuple[int | None, int | None, str | None]:
    """Our side of a line as its resolution left it: (payment id, our amount, our status). A line of
    theirs posted as a new payment (``posted``: its ``provider_amount`` and ``resolved_payment_id``)
    left a payment of their amount, succeeded."""
    if resolution == CANCELLED:
        return payment_id, our_amount, "cancelled"
    if resolution == POSTED:
        if payment_id is None:
            return posted["resolved_payment_id"], posted["provider_amount"], "succeeded"
        return payment_id, our_amount, "succeeded"
    return payment_id, our_amount, our_status


_SIDE = (
    "id",
    "reconciliation_id",
    "line_no",
    "kind",
    "txn_ref",
    "payment_id",
    "currency",
    "provider_amount",
    "provider_status",
    "our_amount",
    "our_status",
)
_RESOLVED = ("resolution", "reason", "resolved_by", "resolved_at", "resolved_payment_id")


def _same(new: Any, old: Any) -> bool:
    """Whether line ``new`` of this file is the resolved line ``old`` as its resolution left it."""
    if (new.kind == DUPLICATE) != (old.kind == DUPLICATE):
        return False
    if (new.currency, new.provider_amount, new.provider_status) != (
        old.currency,
        old.provider_amount,
        old.provider_status,
    ):
        return False
    left = left_by(
        old.resolution,
        old.payment_id,
        old.our_amount,
        old.our_status,
        provider_amount=old.provider_amount,
        resolved_payment_id=old.resolved_payment_id,
    )
    return (new.payment_id, new.our_amount, new.our_status) == left


async def _carry_resolutions(session: AsyncSession, recon: Reconciliation, earlier: list[int]) -> int:
    """Discrepancies that an earlier reconciliation of the provider resolved stay resolved.

    A line of this file is an earlier resolved line if it names the same transaction (their lines) or
    the same payment (``missing_theirs``), their side is unchanged (amount, currency, status) and ours
    is as the resolution left it (a cancelled payment is still cancelled, a posted one succeeded, an
    accepted difference the same). Only the most recent earlier reconciliation that resolved the
    transaction counts, and each of its lines resolves one line here (of two duplicates of which one
    was accepted, one stays open). Returns how many lines were resolved this way.
    """
    cols = [getattr(ReconciliationLine, c) for c in _SIDE]
    new_lines = (
        await session.execute(
            select(*cols).where(
                ReconciliationLine.reconciliation_id == recon.id, ReconciliationLine.kind.in_(DISCREPANCIES)
            )
        )
    ).all()
    theirs = [x for x in new_lines if x.line_no is not None]
    ours = [x for x in new_lines if x.line_no is None and x.kind == MISSING_THEIRS]
    old_lines: list[Any] = []
    for column, values, own_line in (
        (ReconciliationLine.txn_ref, sorted({x.txn_ref for x in theirs}), True),
        (ReconciliationLine.payment_id, sorted({x.payment_id for x in ours}), False),
    ):
        for value_chunk in _chunks(values):
            for recon_chunk in _chunks(earlier):
                q = select(*cols, *(getattr(ReconciliationLine, c) for c in _RESOLVED)).where(
                    ReconciliationLine.reconciliation_id.in_(recon_chunk),
                    column.in_(value_chunk),
                    ReconciliationLine.resolution.is_not(None),
                    ReconciliationLine.line_no.is_not(None)
                    if own_line
                    else ReconciliationLine.line_no.is_(None),
                )
                old_lines += (await session.execute(q)).all()
    by_ref: dict[Any, list[Any]] = {}
    for o in old_lines:
        by_ref.setdefault(o.txn_ref if o.line_no is not None else o.payment_id, []).append(o)
    groups: dict[tuple[Any, ...], list[tuple[Any, Any]]] = {}
    for n in [*theirs, *ours]:
        for o in by_ref.get(n.txn_ref if n.line_no is not None else n.payment_id, ()):
            if _same(n, o):
                key = (n.txn_ref, n.kind == DUPLICATE) if n.line_no is not None else (n.payment_id,)
                groups.setdefault(key, []).append((n, o))
    updates: list[dict[str, Any]] = []
    for pairs in groups.values():
        latest = max(o.reconciliation_id for _, o in pairs)
        used: set[int] = set()
        done: set[int] = set()
        for n, o in sorted(
            ((n, o) for n, o in pairs if o.reconciliation_id == latest),
            key=lambda p: (p[0].line_no or 0, p[1].line_no or 0),
        ):
            if o.id in used or n.id in done:
                continue
            used.add(o.id)
            done.add(n.id)
            updates.append(
                {
                    "b_id": n.id,
                    "b_resolution": o.resolution,
                    "b_reason": o.reason,
                    "b_by": o.resolved_by,
                    "b_at": o.resolved_at,
                    "b_payment": o.resolved_payment_id,
                    "b_note": f"resolved in reconciliation {o.reconciliation_id}",
                }
            )
    if updates:
        conn = await session.connection()
        await conn.execute(
            update(_lines)
            .where(_lines.c.id == bindparam("b_id"))
            .values(
                resolution=bindparam("b_resolution"),
                reason=bindparam("b_reason"),
                resolved_by=bindparam("b_by"),
                resolved_at=bindparam("b_at"),
                resolved_payment_id=bindparam("b_payment"),
                note=func.substr(
                    func.coalesce(_lines.c.note + "; ", "") + bindparam("b_note", type_=String), 1, 300
                ),
            ),
            updates,
        )
    return len(updates)


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
