"""Reports: turnover and remuneration by any combination of provider, service, channel, channel group
and agent, per day or month, in each provider's timezone or the viewer's; and the comparison of a
period with the periods before it. Both export to Excel (``?export=xlsx``).

Agent users see only their channels' payments, without providers or the operator's remuneration.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth import permissions as P
from paymux.auth.access import zone
from paymux.auth.principal import Principal, channel_scope
from paymux.backoffice.charts import Series, chart, top_series
from paymux.backoffice.framework import (
    FINANCE,
    MenuEntry,
    ReadDbDep,
    Section,
    bo_settings,
    language_of,
    register,
    render,
    require_before_reading,
    section_router,
)
from paymux.backoffice.i18n import translator
from paymux.backoffice.sections.ops import code_choices, money_for, plain_money_for
from paymux.downloads import attachment_built
from paymux.money import CURRENCIES
from paymux.reports.comparison import MAX_EARLIER, compare
from paymux.reports.converted import converted_totals
from paymux.reports.params import build_query
from paymux.reports.turnover import (
    DIMENSIONS,
    PROVIDER_TZ,
    STAFF_ONLY,
    TITLES,
    ReportError,
    Turnover,
    TurnoverQuery,
    measures_for,
    period_labels,
    turnover,
)
from paymux.reports.xlsx import comparison_xlsx, turnover_xlsx

router = section_router()
register(
    Section(
        "reports",
        router,
        menu=(
            MenuEntry("Reports", "/backoffice/reports", P.REPORTS_READ, 36, area=FINANCE),
            MenuEntry(
                "Period comparison", "/backoffice/reports/comparison", P.REPORTS_READ, 37, area=FINANCE
            ),
        ),
        permissions=(P.REPORTS_READ,),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.REPORTS_READ))]


async def _form(
    request: Request, session: AsyncSession, me: Principal
) -> tuple[TurnoverQuery | None, dict[str, Any]]:
    """The query the page's form asks for (None and a message if it cannot be answered), and the form."""
    params = request.query_params
    scope = await channel_scope(session, me)
    dims = [d for d in DIMENSIONS if not (scope is not None and d in STAFF_ONLY)]
    default_tz = PROVIDER_TZ if scope is None else me.timezone
    tz = params.get("timezone", default_tz)
    if tz not in (PROVIDER_TZ, me.timezone, "UTC") or (scope is not None and tz == PROVIDER_TZ):
        tz = default_tz
    choices = {
        d: (
            await code_choices(session, DIMENSIONS[d].model, scope if d == "channel" else None)
            if d in ("channel", "agent")
            else await DIMENSIONS[d].choices(session)
        )
        for d in dims
        if not (scope is not None and d == "agent")
    }
    form: dict[str, Any] = {
        "first": params.get("first", ""),
        "last": params.get("last", ""),
        "group_by": params.getlist("group_by"),
        "grain": params.get("grain", ""),
        "timezone": tz,
        "filters": {d: params.get(d, "") for d in choices},
        "dims": dims,
        "choices": choices,
        "error": "",
        "in_currency": params.get("in_currency", "").strip().upper()[:3],
        "currencies": sorted(CURRENCIES),
        "zones": [z for z in ((PROVIDER_TZ if scope is None else ""), me.timezone, "UTC") if z],
    }
    try:
        q = build_query(
            first=form["first"],
            last=form["last"],
            today=dt.datetime.now(zone(me.timezone)).date(),
            group_by=form["group_by"],
            grain=form["grain"],
            timezone=tz,
            filters=form["filters"],
            channels=None if scope is None else frozenset(scope),
        )
    except ReportError as e:
        form["error"] = str(e)
        return None, form
    form["first"], form["last"] = q.first.isoformat(), q.last.isoformat()
    return q, form


def _amount_in(amount: Callable[[int | None, str], str], currency: str, minor: int) -> str:
    return amount(minor, currency)


def _chart(request: Request, report: Turnover) -> list[Markup]:
    """Per currency, the amount of each period of the whole query (zero where nothing succeeded) in
    stacked bars, a series per group (the largest groups, the rest as "Other")."""
    t = translator(language_of(request))
    q = report.query
    periods = period_labels(q)
    whole = f"{q.first.isoformat()} – {q.last.isoformat()}"
    labels = [p or whole for p in periods]
    index = {p: i for i, p in enumerate(periods)}
    amount = plain_money_for(request)
    charts = []
    for total in report.totals:
        groups: dict[tuple[str, ...], list[int | None]] = {}
        for r in report.rows:
            if r.currency == total.currency:
                values = groups.setdefault(r.keys, [0] * len(periods))
                values[index[r.period]] = (values[index[r.period]] or 0) + r.amount
        series = [
            Series(" · ".join(k or "—" for k in keys) if q.group_by else t("Amount"), values)
            for keys, values in sorted(groups.items())
        ]
        charts.append(
            chart(
                "stacked",
                f"{t('Amount')}, {total.currency}",
                labels,
                top_series(series, bo_settings(request).chart_series, t("Other")),
                value=functools.partial(_amount_in, amount, total.currency),
            )
        )
    return charts


def _page(
    request: Request,
    template: str,
    form: dict[str, Any],
    report: Any,
    measures: tuple[str, ...],
    **extra: Any,
) -> Response:
    """A report page: 422 with the form and its message when the report could not be made."""
    return render(
        request,
        template,
        status_code=200 if report is not None else 422,
        form=form,
        report=report,
        measures=measures,
        titles=TITLES,
        money=money_for(request),
        export=request.url.include_query_params(export="xlsx").query,
        **extra,
    )


@router.get("/reports")
async def reports_page(request: Request, session: ReadDbDep, me: Reader) -> Response:
    q, form = await _form(request, session, me)
    measures = measures_for(me.agent_scoped)
    report = await turnover(session, q) if q is not None else None
    converted = None
    if report is not None and form["in_currency"]:
        try:
            converted = await converted_totals(session, report, form["in_currency"])
        except ReportError as e:
            form["error"] = str(e)
    t = translator(language_of(request))
    if report is not None and request.query_params.get("export") == "xlsx":
        name = f"turnover-{report.query.first}-{report.query.last}.xlsx"
        done = report
        return attachment_built(lambda: turnover_xlsx(done, measures, t, converted=converted), name)
    charts = _chart(request, report) if report is not None else []
    return _page(request, "reports/turnover.html", form, report, measures, converted=converted, charts=charts)


@router.get("/reports/comparison")
async def comparison_page(request: Request, session: ReadDbDep, me: Reader) -> Response:
    q, form = await _form(request, session, me)
    measures = measures_for(me.agent_scoped)
    measure = request.query_params.get("measure", "amount")
    if measure not in measures:
        measure = "amount"
    try:
        earlier = min(max(int(request.query_params.get("earlier", "3")), 1), MAX_EARLIER)
    except ValueError:
        earlier = 3
    form.update(measure=measure, earlier=earlier, grain="")
    report = None
    if q is not None:
        try:
            report = await compare(
                session, dataclasses.replace(q, grain=""), earlier=earlier, measure=measure
            )
        except ReportError as e:
            form["error"] = str(e)
    t = translator(language_of(request))
    if report is not None and request.query_params.get("export") == "xlsx":
        done = report
        return attachment_built(
            lambda: comparison_xlsx(done, t), f"comparison-{report.query.first}-{report.query.last}.xlsx"
        )
    return _page(request, "reports/comparison.html", form, report, measures, max_earlier=MAX_EARLIER)
