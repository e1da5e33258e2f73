"""A postpaid provider's statement for a period: debts by local day, totals and the orders that pay them."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.snapshot import ProviderView
from paymux.money import excel_format, to_decimal
from paymux.settlement.debts import DebtDay, debts_by_day, totals, withholds
from paymux.settlement.models import PaymentOrder


@dataclass(slots=True)
class Statement:
    provider: ProviderView
    first: dt.date
    last: dt.date
    withhold: bool
    days: dict[str, list[DebtDay]]
    totals: dict[str, DebtDay]
    orders: list[PaymentOrder]


async def build_statement(
    session: AsyncSession, provider: ProviderView, first: dt.date, last: dt.date
) -> Statement:
    withhold = await withholds(session, provider.id)
    days = await debts_by_day(session, provider.id, provider.tz, first, last, withhold=withhold)
    orders = (
        await session.scalars(
            select(PaymentOrder)
            .where(
                PaymentOrder.provider_id == provider.id,
                PaymentOrder.period_end >= first,
                PaymentOrder.period_start <= last,
                PaymentOrder.status != "cancelled",
            )
            .order_by(PaymentOrder.period_start)
        )
    ).all()
    return Statement(
        provider, first, last, withhold, days, {c: totals(d) for c, d in days.items()}, list(orders)
    )


def to_xlsx(st: Statement, tz: ZoneInfo) -> bytes:
    """The statement as an Excel file; the orders' payment times in the business timezone ``tz``."""
    from openpyxl import Workbook  # imported when needed: the server does not hold openpyxl idle
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Statement"
    bold = Font(bold=True)
    ws.append([f"Statement of {st.provider.name} ({st.provider.code})"])
    ws["A1"].font = Font(bold=True, size=13)
    ws.append(["Period", f"{st.first.isoformat()} - {st.last.isoformat()}", "Timezone", st.provider.tz.key])
    ws.append(["Remuneration", "withheld from payments" if st.withhold else "invoiced separately"])
    for currency, days in sorted(st.days.items()):
        ws.append([])
        ws.append([f"Currency {currency}"])
        ws.cell(ws.max_row, 1).font = bold
        ws.append(["Day", "Payments", "Amount", "Remuneration", "Withheld", "Debt"])
        for c in ws[ws.max_row]:
            c.font = bold
        t = st.totals[currency]
        for d in [*days, t]:
            ws.append(
                [
                    "Total" if d is t else d.day,
                    d.payments,
                    *(to_decimal(v, currency) for v in (d.gross, d.remuneration, d.withheld, d.debt)),
                ]
            )
            row = ws.max_row
            ws.cell(row, 1).number_format = "yyyy-mm-dd"
            for col in range(3, 7):
                ws.cell(row, col).number_format = excel_format(currency)
            if d is t:
                for c in ws[row]:
                    c.font = bold
    if st.orders:
        ws.append([])
        ws.append(["Payment orders"])
        ws.cell(ws.max_row, 1).font = bold
        ws.append(["Number", "From", "To", "Currency", "Amount", "Status", f"Paid at ({tz.key})"])
        for o in st.orders:
            ws.append(
                [
                    o.number,
                    o.period_start,
                    o.period_end,
                    o.currency,
                    to_decimal(o.amount, o.currency),
                    o.status,
                    o.paid_at.astimezone(tz).replace(tzinfo=None) if o.paid_at else None,
                ]
            )
            ws.cell(ws.max_row, 5).number_format = excel_format(o.currency)
    for letter, width in zip("ABCDEFG", (14, 12, 16, 16, 16, 16, 20), strict=True):
        ws.column_dimensions[letter].width = width
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
