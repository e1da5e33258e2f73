"""Admin API for reports: turnover in any grouping and period, and the comparison with earlier periods.

``format=xlsx`` returns the same report as an Excel workbook. Amounts in JSON are decimal strings.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from paymux.api.deps import ReadSessionDep
from paymux.auth import permissions as P
from paymux.auth.access import zone
from paymux.auth.admin_api import require_api
from paymux.auth.principal import Principal, channel_scope
from paymux.downloads import attachment_built
from paymux.errors import invalid
from paymux.money import format_amount
from paymux.reports.comparison import compare
from paymux.reports.converted import converted_totals
from paymux.reports.params import build_query
from paymux.reports.turnover import (
    PROVIDER_TZ,
    ReportError,
    TurnoverQuery,
    TurnoverRow,
    measures_for,
    turnover,
)
from paymux.reports.xlsx import comparison_xlsx, turnover_xlsx

router = APIRouter(prefix="/api/v1/admin", tags=["reports"])

Reader = Annotated[Principal, Depends(require_api(P.REPORTS_READ))]


class ReportParams:
    """The query parameters both reports take."""

    def __init__(
        self,
        first: Annotated[str, Query(description="first local day (default: 29 days before last)")] = "",
        last: Annotated[str, Query(description="last local day (default: today)")] = "",
        group_by: Annotated[
            list[str],
            Query(
                description="provider, service, channel, channel_group, agent, project, manager (any of them)"
            ),
        ] = [],  # noqa: B006 (FastAPI copies the default)
        grain: Annotated[str, Query(description="day or month (empty: the whole period)")] = "",
        timezone: Annotated[
            str, Query(description=f"'{PROVIDER_TZ}' (each provider's own timezone) or an IANA timezone")
        ] = PROVIDER_TZ,
        provider: str = "",
        service: str = "",
        channel: str = "",
        channel_group: str = "",
        agent: str = "",
        project: str = "",
        manager: Annotated[str, Query(description="a staff user's username")] = "",
        format: Annotated[str, Query(pattern="^(json|xlsx)$")] = "json",
        in_currency: Annotated[
            str,
            Query(description="also the totals in this currency, at the rates in force at the end"),
        ] = "",
    ) -> None:
        self.first, self.last, self.group_by, self.grain, self.timezone = (
            first,
            last,
            group_by,
            grain,
            timezone,
        )
        self.filters = {
            "provider": provider,
            "service": service,
            "channel": channel,
            "channel_group": channel_group,
            "agent": agent,
            "project": project,
            "manager": manager,
        }
        self.format = format
        self.in_currency = in_currency.strip()

    async def query(self, session: Any, me: Principal) -> TurnoverQuery:
        scope = await channel_scope(session, me)
        tz = self.timezone.strip() or PROVIDER_TZ
        today = dt.datetime.now(zone(tz if tz != PROVIDER_TZ else "UTC")).date()
        try:
            return build_query(
                first=self.first,
                last=self.last,
                today=today,
                group_by=self.group_by,
                grain=self.grain,
                timezone=tz,
                filters=self.filters,
                channels=None if scope is None else frozenset(scope),
            )
        except ReportError as e:
            raise invalid("invalid-report", str(e)) from e


Params = Annotated[ReportParams, Depends()]


def _row(
    r: TurnoverRow, group_by: tuple[str, ...], measures: tuple[str, ...], period: bool
) -> dict[str, Any]:
    out: dict[str, Any] = dict(zip(group_by, r.keys, strict=True))
    if period:
        out["period"] = r.period
    out["currency"] = r.currency
    for m in measures:
        out[m] = r.payments if m == "payments" else format_amount(r.measure(m), r.currency)
    return out


@router.get("/reports/turnover")
async def turnover_report(session: ReadSessionDep, me: Reader, p: Params) -> Any:
    """Turnover, fees, remuneration and commission of succeeded payments by the chosen dimensions."""
    q = await p.query(session, me)
    report = await turnover(session, q)
    measures = measures_for(me.agent_scoped)
    converted = None
    if p.in_currency:
        try:
            converted = await converted_totals(session, report, p.in_currency)
        except ReportError as e:
            raise invalid("invalid-report", str(e)) from e
    if p.format == "xlsx":
        return attachment_built(
            lambda: turnover_xlsx(report, measures, converted=converted), f"turnover-{q.first}-{q.last}.xlsx"
        )
    body: dict[str, Any] = {
        "first": q.first.isoformat(),
        "last": q.last.isoformat(),
        "timezone": q.timezone,
        "grain": q.grain,
        "group_by": list(q.group_by),
        "measures": list(measures),
        "rows": [_row(r, q.group_by, measures, bool(q.grain)) for r in report.rows],
        "totals": [_row(t, (), measures, False) for t in report.totals],
    }
    if converted is not None:
        body["converted"] = {
            "currency": converted.currency,
            "rates_at": converted.at.isoformat(),
            "rates": converted.rates,
            "missing": converted.missing,
            **{m: format_amount(v, converted.currency) for m, v in converted.sums.items() if m in measures},
        }
    return body


@router.get("/reports/comparison")
async def comparison_report(
    session: ReadSessionDep,
    me: Reader,
    p: Params,
    earlier: Annotated[int, Query(ge=1, le=12, description="how many earlier periods")] = 3,
    measure: Annotated[str, Query(description="payments, amount, fee, total, remuneration, commission")] = (
        "amount"
    ),
) -> Any:
    """The period's measure per group beside the same-length periods before it, with the changes."""
    q = await p.query(session, me)
    if measure not in measures_for(me.agent_scoped):
        raise invalid("invalid-report", f"unknown measure {measure!r}")
    try:
        report = await compare(session, q, earlier=earlier, measure=measure)
    except ReportError as e:
        raise invalid("invalid-report", str(e)) from e
    if p.format == "xlsx":
        return attachment_built(lambda: comparison_xlsx(report), f"comparison-{q.first}-{q.last}.xlsx")

    def amount(v: int, currency: str) -> Any:
        return v if measure == "payments" else format_amount(v, currency)

    def row(r: Any) -> dict[str, Any]:
        return {
            **dict(zip(q.group_by, r.keys, strict=False)),  # totals have no keys
            "currency": r.currency,
            "values": [amount(v, r.currency) for v in r.values],
            "change_to_previous_percent": None if r.vs_previous is None else str(r.vs_previous),
            "change_to_mean_percent": None if r.vs_mean is None else str(r.vs_mean),
        }

    return {
        "measure": measure,
        "timezone": q.timezone,
        "group_by": list(q.group_by),
        "periods": [{"first": x.first.isoformat(), "last": x.last.isoformat()} for x in report.periods],
        "rows": [row(r) for r in report.rows],
        "totals": [row(t) for t in report.totals],
    }
