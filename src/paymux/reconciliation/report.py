"""The reconciliation report in Excel: a summary sheet and every line, written in openpyxl's write-only
mode (rows stream to a temporary file) while the lines are paged from the database by id."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.money import exponent
from paymux.reconciliation.models import CLASSES, Reconciliation, ReconciliationLine
from paymux.reconciliation.service import summary

if TYPE_CHECKING:
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

PAGE = 5000
LINE_COLUMNS = (
    "Line",
    "Class",
    "Transaction",
    "Payment",
    "Currency",
    "Provider amount",
    "Our amount",
    "Difference",
    "Provider status",
    "Our status",
    "Provider time (UTC)",
    "Account",
    "Note",
    "Resolution",
    "Reason",
    "Resolved by",
    "Resolved at (UTC)",
    "Resolved payment",
)


def _money(ws: WriteOnlyWorksheet, minor: int | None, currency: str) -> Any:
    if minor is None:
        return None
    from openpyxl.cell import WriteOnlyCell

    digits = exponent(currency)
    cell = WriteOnlyCell(ws, value=Decimal(minor).scaleb(-digits))
    cell.number_format = "0." + "0" * digits if digits else "0"
    return cell


def _naive(v: dt.datetime | None) -> dt.datetime | None:
    return v.astimezone(dt.UTC).replace(tzinfo=None, microsecond=0) if v is not None else None


async def write_report(session: AsyncSession, recon: Reconciliation, path: Path) -> None:
    """Write the report of ``recon`` to ``path`` (xlsx)."""
    from openpyxl import Workbook  # imported when needed: the server does not hold openpyxl idle

    info = await summary(session, recon)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Summary")
    for k in (
        "id",
        "provider",
        "date_from",
        "date_to",
        "file_name",
        "file_sha256",
        "source",
        "rows",
        "created_by",
    ):
        ws.append([k.replace("_", " ").capitalize(), info[k]])
    ws.append([])
    ws.append(["Class", "Lines", "Resolved"])
    for k in CLASSES:
        ws.append([k.replace("_", " "), info["counts"][k], info["resolved"].get(k, "")])
    ws.append(["open discrepancies", info["open_discrepancies"]])
    lines = wb.create_sheet("Lines")
    lines.append(list(LINE_COLUMNS))
    after = 0
    while True:
        page = (
            await session.scalars(
                select(ReconciliationLine)
                .where(ReconciliationLine.reconciliation_id == recon.id, ReconciliationLine.id > after)
                .order_by(ReconciliationLine.id)
                .limit(PAGE)
            )
        ).all()
        if not page:
            break
        for ln in page:
            diff = (
                ln.provider_amount - ln.our_amount
                if ln.provider_amount is not None and ln.our_amount is not None
                else None
            )
            lines.append(
                [
                    ln.line_no,
                    ln.kind.replace("_", " "),
                    ln.txn_ref,
                    ln.payment_id,
                    ln.currency,
                    _money(lines, ln.provider_amount, ln.currency),
                    _money(lines, ln.our_amount, ln.currency),
                    _money(lines, diff, ln.currency),
                    ln.provider_status,
                    ln.our_status,
                    _naive(ln.provider_at),
                    ln.account,
                    ln.note,
                    ln.resolution,
                    ln.reason,
                    ln.resolved_by,
                    _naive(ln.resolved_at),
                    ln.resolved_payment_id,
                ]
            )
        after = page[-1].id
        for ln in page:
            session.expunge(ln)  # keep the identity map small
    await asyncio.to_thread(wb.save, path)  # zipping every line takes a while
