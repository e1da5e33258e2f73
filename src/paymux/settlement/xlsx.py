"""Excel files of the settlement tables: deposit balance history, the forecast, deposits, payment orders,
bank statements. Amounts are numbers in major units with the currency's decimals (``excel_format``),
times real Excel date-times in a named timezone (the zone is in the column head).

Headers go through ``_`` (the back office passes the user's translator; the admin API English).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from paymux.catalog.snapshot import Snapshot
from paymux.money import excel_format, to_decimal
from paymux.settlement.balances import Deposit, Point
from paymux.settlement.forecast import Backtest, Forecast
from paymux.settlement.models import BalanceAlert, BankStatement, PaymentOrder, StatementLine

Translate = Callable[[str], str]
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def english(msgid: str) -> str:
    return msgid


@dataclass(frozen=True, slots=True)
class Amount:
    """A money cell: minor units and currency."""

    minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class Sheet:
    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[Any]]
    tz: ZoneInfo  # aware date-times are written in this timezone


def workbook(sheets: Sequence[Sheet]) -> bytes:
    """The sheets as one xlsx file (bold header row, frozen below it)."""
    from openpyxl import Workbook  # imported when needed: the server does not hold openpyxl idle
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    bold = Font(bold=True)
    for i, sheet in enumerate(sheets):
        ws = wb.active if i == 0 else wb.create_sheet()
        assert ws is not None
        ws.title = "".join(c for c in sheet.title if c not in "[]:*?/\\")[:31] or f"Sheet{i + 1}"
        ws.append(list(sheet.header))
        for c in ws[1]:
            c.font = bold
        ws.freeze_panes = "A2"
        widths = [len(h) for h in sheet.header]
        for row in sheet.rows:
            ws.append([_value(v, sheet.tz) for v in row])
            r = ws.max_row
            for col, v in enumerate(row, 1):
                fmt = _format(v)
                if fmt:
                    ws.cell(r, col).number_format = fmt
                if col <= len(widths):
                    widths[col - 1] = max(widths[col - 1], min(len(str(_value(v, sheet.tz) or "")), 60))
        for col, width in enumerate(widths, 1):
            ws.column_dimensions[get_column_letter(col)].width = width + 2
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _value(v: Any, tz: ZoneInfo) -> Any:
    if isinstance(v, Amount):
        return to_decimal(v.minor, v.currency)
    if isinstance(v, dt.datetime):
        local = v.astimezone(tz) if v.tzinfo else v
        return local.replace(tzinfo=None, microsecond=0)
    return v


def _format(v: Any) -> str | None:
    if isinstance(v, Amount):
        return excel_format(v.currency)
    if isinstance(v, dt.datetime):
        return "yyyy-mm-dd hh:mm:ss"
    if isinstance(v, dt.date):
        return "yyyy-mm-dd"
    return None


def _zone(_: Translate, title: str, tz: ZoneInfo) -> str:
    return f"{_(title)} ({tz.key})"


def history_sheet(points: Sequence[Point], currency: str, tz: ZoneInfo, _: Translate = english) -> Sheet:
    """Opening and closing balance, inflow and outflow of each hour or day (times in the provider's zone)."""
    rows = [
        [p.start, p.end, *(Amount(x, currency) for x in (p.opening, p.inflow, p.outflow, p.closing))]
        for p in points
    ]
    header = [_zone(_, "From", tz), _zone(_, "To", tz), _("Opening balance"), _("In"), _("Out")]
    return Sheet(_("Balance history"), [*header, _("Closing balance")], rows, tz)


def forecast_sheets(
    f: Forecast, past: Sequence[Backtest], currency: str, tz: ZoneInfo, _: Translate = english
) -> list[Sheet]:
    """The forecast (summary), its expected outflow per hour of the week, and past days' forecast
    against what went out."""
    summary = Sheet(
        _("Forecast"),
        [_("Measure"), _("Value")],
        [
            [_zone(_, "As of", tz), f.as_of],
            [_("Available with overdraft"), Amount(f.available, currency)],
            [_zone(_, "Runs out", tz), f.runs_out_at if f.runs_out_at else _("not within 90 days")],
            [_("Hours left"), f.hours_left],
            [_("Days to last"), f.days],
            [_("Expected outflow"), Amount(f.need, currency)],
            [_("Top-up to last {days} days").format(days=f.days), Amount(f.top_up, currency)],
            [_("Weeks of history"), f.weeks],
        ],
        tz,
    )
    profile = Sheet(
        _("Expected outflow by hour"),
        [_("Day of week"), _zone(_, "Hour", tz), _("Expected outflow")],
        [[_(WEEKDAYS[i // 24]), f"{i % 24:02d}:00", Amount(v, currency)] for i, v in enumerate(f.profile)],
        tz,
    )
    backtest = Sheet(
        _("Forecast against actual"),
        [_("Day"), _("Forecast"), _("Actual")],
        [[b.day, Amount(b.forecast, currency), Amount(b.actual, currency)] for b in past],
        tz,
    )
    return [summary, profile, backtest]


def alerts_sheet(alerts: Sequence[BalanceAlert], tz: ZoneInfo, _: Translate = english) -> Sheet:
    rows = [
        [
            a.created_at,
            Amount(a.balance, a.currency),
            Amount(a.threshold, a.currency),
            a.currency,
            _(a.status),
            a.attempts,
            a.last_error or "",
        ]
        for a in alerts
    ]
    header = [
        _zone(_, "Created", tz),
        _("Balance"),
        _("Threshold"),
        _("Currency"),
        _("Status"),
        _("Attempts"),
    ]
    return Sheet(_("Alerts sent"), [*header, _("Error")], rows, tz)


def deposits_sheet(rows: Sequence[tuple[Deposit, Forecast]], tz: ZoneInfo, _: Translate = english) -> Sheet:
    out = []
    for d, f in rows:
        c = d.currency
        out.append(
            [
                d.provider.code,
                d.provider.name,
                c,
                Amount(d.balance, c),
                Amount(d.overdraft, c),
                Amount(d.rule.threshold, c) if d.rule else None,
                f.runs_out_at if f.runs_out_at else _("not within 90 days"),
                Amount(f.top_up, c),
            ]
        )
    header = [_("Provider"), _("Name"), _("Currency"), _("Balance"), _("Overdraft"), _("Threshold")]
    return Sheet(_("Balances"), [*header, _zone(_, "Runs out", tz), _("Top-up for 7 days")], out, tz)


def debts_sheet(rows: Sequence[dict[str, Any]], tz: ZoneInfo, _: Translate = english) -> Sheet:
    """The settlement overview: what we owe each postpaid provider and how far orders cover it."""
    out = [
        [
            r["p"].code,
            r["p"].name,
            r["p"].tz.key,
            r["currency"],
            Amount(r["owed"], r["currency"]),
            r["covered"],
        ]
        for r in rows
    ]
    header = [_("Provider"), _("Name"), _("Timezone"), _("Currency"), _("We owe (ledger)")]
    return Sheet(_("Settlement"), [*header, _("Ordered through")], out, tz)


def orders_sheet(
    orders: Sequence[PaymentOrder], snap: Snapshot, tz: ZoneInfo, _: Translate = english, title: str = ""
) -> Sheet:
    rows = []
    for o in orders:
        p = snap.providers.get(o.provider_id)
        c = o.currency
        rows.append(
            [
                o.number,
                p.code if p else o.provider_id,
                o.period_start,
                o.period_end,
                c,
                o.payments,
                Amount(o.gross, c),
                Amount(o.remuneration, c),
                Amount(o.amount, c),
                _(o.status),
                o.purpose,
                o.created_by,
                o.created_at,
                o.approved_by or "",
                o.approved_at,
                o.exported_at,
                o.paid_at,
            ]
        )
    header = [_("Number"), _("Provider"), _("From"), _("To"), _("Currency"), _("Payments"), _("Gross")]
    header += [
        _("Withheld"),
        _("Amount"),
        _("Status"),
        _("Purpose"),
        _("Created by"),
        _zone(_, "Created", tz),
    ]
    header += [_("Approved by"), _zone(_, "Approved", tz), _zone(_, "Exported", tz), _zone(_, "Paid", tz)]
    return Sheet(title or _("Payment orders"), header, rows, tz)


def statements_sheet(statements: Sequence[BankStatement], tz: ZoneInfo, _: Translate = english) -> Sheet:
    rows = [
        [s.created_at, s.file_name, s.format, s.account, s.lines, s.new_lines, s.matched, s.imported_by]
        for s in statements
    ]
    header = [_zone(_, "Imported", tz), _("File"), _("Format"), _("Account"), _("Lines"), _("New")]
    return Sheet(_("Bank statements"), [*header, _("Matched"), _("By")], rows, tz)


def statement_lines_sheet(
    lines: Sequence[StatementLine],
    orders: dict[int, str],
    snap: Snapshot,
    tz: ZoneInfo,
    _: Translate = english,
) -> Sheet:
    rows = []
    for ln in lines:
        if ln.order_id:
            matched = f"{_('payment order')} {orders.get(ln.order_id, ln.order_id)}"
        elif ln.status == "topup" and ln.provider_id in snap.providers:
            matched = f"{_('top-up of')} {snap.providers[ln.provider_id].code}"
        else:
            matched = _(ln.status)
        rows.append(
            [
                ln.booked_on,
                _(ln.direction),
                Amount(ln.amount, ln.currency),
                ln.currency,
                ln.counterparty,
                ln.counterparty_account,
                ln.counterparty_bank,
                ln.counterparty_inn,
                ln.reference,
                ln.purpose,
                matched,
            ]
        )
    header = [_("Booked"), _("Direction"), _("Amount"), _("Currency"), _("Counterparty"), _("Account")]
    header += [_("Bank"), _("INN"), _("Reference"), _("Purpose"), _("Matched")]
    return Sheet(_("Bank statement"), header, rows, tz)
