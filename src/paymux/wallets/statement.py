"""A wallet's statement for a period: the opening balance, every posting with its operation and the
running balance, the closing balance and the period's totals in and out.

Days are the viewer's (``timezone``, an IANA name; UTC by default): the period runs from the first
day's midnight to the midnight after the last day, in that zone. The balances come from the ledger's
postings alone, so a statement always agrees with the wallet's balance at its end.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.errors import invalid
from paymux.ledger.models import JournalEntry, Posting
from paymux.wallets.models import Issuer, Wallet, WalletOperation
from paymux.wallets.units import format_units

MAX_DAYS = 366
MAX_LINES = 20_000


@dataclass
class StatementLine:
    posting_id: int
    at: dt.datetime
    amount: int
    balance: int
    kind: str
    operation_id: int | None


@dataclass
class WalletStatement:
    wallet: Wallet
    issuer: Issuer
    first: dt.date
    last: dt.date
    tz: ZoneInfo
    opening: int
    closing: int = 0
    credits: int = 0
    debits: int = 0
    lines: list[StatementLine] = field(default_factory=list)

    def units(self, minor: int) -> str:
        return format_units(minor, self.issuer.precision)

    def as_dict(self) -> dict[str, Any]:
        return {
            "wallet_id": self.wallet.id,
            "issuer": self.issuer.code,
            "currency": self.issuer.currency,
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "timezone": self.tz.key,
            "opening_balance": self.units(self.opening),
            "credits": self.units(self.credits),
            "debits": self.units(self.debits),
            "closing_balance": self.units(self.closing),
            "lines": [
                {
                    "posting_id": ln.posting_id,
                    "at": ln.at.astimezone(self.tz).isoformat(),
                    "type": ln.kind,
                    "operation_id": ln.operation_id,
                    "amount": self.units(ln.amount),
                    "balance": self.units(ln.balance),
                }
                for ln in self.lines
            ],
        }


def period_bounds(first: dt.date, last: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    if last < first:
        raise invalid("invalid-period", "the period ends before it starts")
    if (last - first).days + 1 > MAX_DAYS:
        raise invalid("invalid-period", f"a statement covers at most {MAX_DAYS} days")
    start = dt.datetime.combine(first, dt.time(), tz).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
    return start, end


async def build_statement(
    session: AsyncSession, wallet: Wallet, first: dt.date, last: dt.date, tz: ZoneInfo
) -> WalletStatement:
    """The statement of ``wallet`` from ``first`` to ``last`` (days in ``tz``)."""
    start, end = period_bounds(first, last, tz)
    issuer = await session.get(Issuer, wallet.issuer_id)
    assert issuer is not None
    account = wallet.account_id
    before = await session.scalar(
        select(func.coalesce(func.sum(Posting.amount), 0)).where(
            Posting.account_id == account, Posting.created_at < start
        )
    )
    st = WalletStatement(wallet, issuer, first, last, tz, opening=int(before or 0))
    rows = (
        await session.execute(
            select(
                Posting.id,
                Posting.created_at,
                Posting.amount,
                JournalEntry.kind,
                WalletOperation.id,
                WalletOperation.type,
            )
            .join(JournalEntry, JournalEntry.id == Posting.entry_id)
            .outerjoin(WalletOperation, WalletOperation.entry_id == Posting.entry_id)
            .where(Posting.account_id == account, Posting.created_at >= start, Posting.created_at < end)
            .order_by(Posting.created_at, Posting.id)
            .limit(MAX_LINES + 1)
        )
    ).all()
    if len(rows) > MAX_LINES:
        raise invalid("statement-too-long", f"more than {MAX_LINES} lines: ask for a shorter period")
    balance = st.opening
    for pid, at, amount, kind, op_id, op_type in rows:
        balance += amount
        if amount >= 0:
            st.credits += amount
        else:
            st.debits -= amount
        at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
        st.lines.append(StatementLine(pid, at, amount, balance, op_type or kind, op_id))
    st.closing = balance
    return st


def to_xlsx(st: WalletStatement) -> bytes:
    """The statement as an Excel file (amounts as numbers in the issuer's precision)."""
    from decimal import Decimal

    from openpyxl import Workbook  # imported when needed: the server does not hold openpyxl idle
    from openpyxl.styles import Font

    def num(minor: int) -> Decimal:
        return Decimal(minor).scaleb(-st.issuer.precision)

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Statement"
    bold = Font(bold=True)
    ws.append([f"Wallet {st.wallet.id} ({st.issuer.code}, {st.issuer.currency})"])
    ws["A1"].font = Font(bold=True, size=13)
    ws.append(["Period", f"{st.first.isoformat()} - {st.last.isoformat()}", "Timezone", st.tz.key])
    ws.append(["Opening balance", num(st.opening)])
    ws.append([])
    ws.append(["Time", "Type", "Operation", "Amount", "Balance"])
    for c in ws[ws.max_row]:
        c.font = bold
    fmt = "0" if st.issuer.precision == 0 else "0." + "0" * st.issuer.precision
    for ln in st.lines:
        ws.append(
            [
                ln.at.astimezone(st.tz).replace(tzinfo=None),
                ln.kind,
                ln.operation_id,
                num(ln.amount),
                num(ln.balance),
            ]
        )
        ws.cell(ws.max_row, 1).number_format = "yyyy-mm-dd hh:mm:ss"
        ws.cell(ws.max_row, 4).number_format = fmt
        ws.cell(ws.max_row, 5).number_format = fmt
    ws.append([])
    for label, value in (("Credits", st.credits), ("Debits", st.debits), ("Closing balance", st.closing)):
        ws.append([label, num(value)])
        ws.cell(ws.max_row, 1).font = bold
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def zone(name: str | None) -> ZoneInfo:
    """The viewer's timezone; a name that is not a known IANA zone is a 422 problem."""
    from paymux.notifications.templates import valid_timezone

    if name in (None, "", "UTC"):
        return ZoneInfo("UTC")
    if valid_timezone(name) != name:
        raise invalid("invalid-timezone", f"{str(name)[:64]!r} is not an IANA timezone (e.g. Europe/Moscow)")
    return ZoneInfo(str(name))


async def statement_answer(
    session: AsyncSession, wallet: Wallet, first: dt.date, last: dt.date, timezone: str | None, fmt: str
) -> Any:
    """The statement as JSON, or as an Excel file (``fmt="xlsx"``) built off the event loop."""
    from fastapi.responses import Response

    from paymux import offload

    st = await build_statement(session, wallet, first, last, zone(timezone))
    if fmt != "xlsx":
        return st.as_dict()
    data = await offload.in_thread(to_xlsx, st)
    name = f"wallet-{wallet.id}-{first.isoformat()}-{last.isoformat()}.xlsx"
    return Response(
        data,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )
