"""Reports as Excel workbooks: amounts as numbers with their currency's decimals, totals per currency."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

from paymux.money import excel_format, to_decimal
from paymux.reports.comparison import Comparison
from paymux.reports.converted import ConvertedTotals
from paymux.reports.turnover import TITLES, Turnover, TurnoverRow


def plain(msgid: str, **values: object) -> str:
    """The English text with its placeholders filled (the API's workbooks are not translated)."""
    return msgid.format(**values)


def _title(name: str, _: Callable[..., str]) -> str:
    return _(TITLES[name])


def turnover_xlsx(
    report: Turnover,
    measures: Sequence[str],
    _: Callable[..., str] = plain,
    *,
    converted: ConvertedTotals | None = None,
) -> bytes:
    """One sheet: a header naming the period and timezone, a row per group, then totals per currency."""
    from openpyxl import Workbook  # imported when needed: the server does not hold openpyxl idle
    from openpyxl.styles import Font

    q = report.query
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Turnover"
    ws.append([_("Turnover"), f"{q.first.isoformat()} - {q.last.isoformat()}", _("Timezone"), q.timezone])
    ws.append([])
    head = [_title(d, _) for d in q.group_by] + ([_("Period")] if q.grain else [])
    head += [_("Currency"), *(_title(m, _) for m in measures)]
    ws.append(head)
    for c in ws[ws.max_row]:
        c.font = Font(bold=True)

    def put(r: TurnoverRow, first: list[Any], bold: bool) -> None:
        values = [r.measure(m) if m == "payments" else to_decimal(r.measure(m), r.currency) for m in measures]
        ws.append([*first, r.currency, *values])
        row = ws[ws.max_row]
        for m, cell in zip(measures, row[len(first) + 1 :], strict=True):
            if m != "payments":
                cell.number_format = excel_format(r.currency)
        if bold:
            for cell in row:
                cell.font = Font(bold=True)

    for r in report.rows:
        put(r, [*r.keys, *([r.period] if q.grain else [])], False)
    pad = len(q.group_by) + (1 if q.grain else 0)
    if pad:  # without groups or periods the rows are the totals already
        for t in report.totals:
            put(t, [_("Total"), *[""] * (pad - 1)], True)
    if converted is not None:
        c = converted.currency
        label = _("Total in {currency}", currency=c)
        if not pad:  # the rows start with the currency: the label goes above
            ws.append([label])
        row: list[Any] = [label, *[""] * (pad - 1)] if pad else []
        row += [c, *("" if m == "payments" else to_decimal(converted.sums[m], c) for m in measures)]
        ws.append(row)
        for m, cell in zip(measures, ws[ws.max_row][pad + 1 :], strict=True):
            cell.font = Font(bold=True)
            if m != "payments":
                cell.number_format = excel_format(c)
        rates = ", ".join(f"{k}/{c} {v}" for k, v in sorted(converted.rates.items()))
        ws.append([_("Rates at {at}", at=converted.at.isoformat()), rates])
        if converted.missing:
            ws.append([_("No rate for"), ", ".join(converted.missing)])
    return _save(wb)


def comparison_xlsx(report: Comparison, _: Callable[..., str] = plain) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    q = report.query
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Comparison"
    ws.append([_("Comparison"), _title(report.measure, _), _("Timezone"), q.timezone])
    ws.append([])
    periods = [f"{p.first.isoformat()} - {p.last.isoformat()}" for p in report.periods]
    ws.append(
        [_title(d, _) for d in q.group_by]
        + [_("Currency"), *periods, _("Change to the previous period, %"), _("Change to the mean, %")]
    )
    for c in ws[ws.max_row]:
        c.font = Font(bold=True)
    money = report.measure != "payments"
    # without groups the rows are the totals already
    totals = report.totals if q.group_by else []
    for r, bold in [*((r, False) for r in report.rows), *((t, True) for t in totals)]:
        keys = list(r.keys) if not bold else [_("Total"), *[""] * (len(q.group_by) - 1)]
        values = [to_decimal(v, r.currency) if money else v for v in r.values]
        ws.append([*keys, r.currency, *values, r.vs_previous, r.vs_mean])
        row = ws[ws.max_row]
        if money:
            for cell in row[len(keys) + 1 : len(keys) + 1 + len(values)]:
                cell.number_format = excel_format(r.currency)
        if bold:
            for cell in row:
                cell.font = Font(bold=True)
    return _save(wb)


def _save(wb: Any) -> bytes:
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
