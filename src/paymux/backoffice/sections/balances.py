"""Balances: prepaid providers' deposits with their history chart, forecast against the facts, low-balance
alert settings and the top-up form (see docs/settlement.md). ``?export=xlsx`` downloads a page's tables."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import select

from paymux import audit
from paymux.api.params import Count
from paymux.auth import permissions as P
from paymux.auth.access import zone
from paymux.auth.principal import Principal
from paymux.backoffice.charts import Series, chart
from paymux.backoffice.framework import (
    PROVIDERS,
    DbDep,
    MenuEntry,
    PageNotFound,
    ReadDbDep,
    Section,
    language_of,
    redirect,
    register,
    render,
    require,
    require_before_reading,
    section_router,
    timezone_of,
)
from paymux.backoffice.i18n import translator
from paymux.backoffice.sections.ops import plain_money_for
from paymux.catalog.snapshot import ProviderView
from paymux.db.base import utcnow
from paymux.downloads import attachment_built
from paymux.errors import Problem
from paymux.ledger.topups import record_topup
from paymux.money import MoneyError, format_amount, parse_amount
from paymux.runtime import Hub
from paymux.settlement import service
from paymux.settlement.balances import deposit_balance, deposits, history
from paymux.settlement.forecast import backtest, forecast
from paymux.settlement.models import BalanceAlert, BalanceAlertRule
from paymux.settlement.xlsx import alerts_sheet, deposits_sheet, forecast_sheets, history_sheet, workbook

router = section_router()
register(
    Section(
        "balances",
        router,
        menu=(MenuEntry("Balances", "/backoffice/balances", P.BALANCES_READ, 34, area=PROVIDERS),),
        permissions=(P.BALANCES_READ, P.TOPUPS_WRITE, P.ALERTS_WRITE),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.BALANCES_READ))]
Alerter = Annotated[Principal, Depends(require(P.ALERTS_WRITE))]
TopUpper = Annotated[Principal, Depends(require(P.TOPUPS_WRITE))]


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _exporting(request: Request) -> bool:
    return request.query_params.get("export") == "xlsx"


def _export_url(request: Request) -> str:
    return "?" + request.url.include_query_params(export="xlsx").query


async def _provider(request: Request, code: str) -> ProviderView:
    p = (await _hub(request).catalog.get()).providers_by_code.get(code)
    if p is None or p.settlement != "prepaid":
        raise PageNotFound()
    return p


@router.get("/balances")
async def balances_list(request: Request, session: ReadDbDep, _: Reader) -> Response:
    snap = await _hub(request).catalog.get()
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for d in await deposits(session, snap):
        f = await forecast(session, d.provider.id, d.currency, d.available, d.provider.tz, as_of=now, days=7)
        rows.append({"d": d, "f": f})
    if _exporting(request):
        t = translator(language_of(request))
        sheet = deposits_sheet([(r["d"], r["f"]) for r in rows], zone(timezone_of(request)), t)
        return attachment_built(lambda: workbook([sheet]), "balances.xlsx")
    return render(
        request, "balances/list.html", rows=rows, money=plain_money_for(request), export=_export_url(request)
    )


@router.get("/balances/{code}")
async def balance_detail(
    request: Request,
    code: str,
    session: ReadDbDep,
    _: Reader,
    currency: str = "RUB",
    granularity: str = "day",
    days: Count = 7,
) -> Response:
    p = await _provider(request, code)
    currency = currency.upper()[:3]
    granularity = "hour" if granularity == "hour" else "day"
    days = min(max(days, 1), 60)
    now = utcnow()
    span = dt.timedelta(hours=48) if granularity == "hour" else dt.timedelta(days=30)
    points = await history(session, p.id, currency, now - span, now, granularity, p.tz)
    fmt = "%d.%m %H:00" if granularity == "hour" else "%d.%m"
    t = translator(language_of(request))
    amount = plain_money_for(request)
    history_chart = chart(
        "line",
        f"{t('Balance')}, {currency}",
        [pt.start.astimezone(p.tz).strftime(fmt) for pt in points],
        [Series(t("Closing balance"), [pt.closing for pt in points])],
        value=lambda v: amount(v, currency),
    )
    balance = await deposit_balance(session, p.id, currency)
    available = balance + int(p.overdraft.get(currency, 0))
    f = await forecast(session, p.id, currency, available, p.tz, as_of=now, days=days)
    today = now.astimezone(p.tz).date()
    past = await backtest(
        session, p.id, currency, p.tz, first=today - dt.timedelta(days=14), last=today - dt.timedelta(days=1)
    )
    backtest_chart = chart(
        "line",
        f"{t('Forecast against actual outflow')}, {currency}",
        [b.day.strftime("%d.%m") for b in past],
        [Series(t("Forecast"), [b.forecast for b in past]), Series(t("Actual"), [b.actual for b in past])],
        value=lambda v: amount(v, currency),
    )
    rule = await session.scalar(
        select(BalanceAlertRule).where(
            BalanceAlertRule.provider_id == p.id, BalanceAlertRule.currency == currency
        )
    )
    alerts = (
        await session.scalars(
            select(BalanceAlert)
            .where(BalanceAlert.provider_id == p.id, BalanceAlert.currency == currency)
            .order_by(BalanceAlert.id.desc())
            .limit(20)
        )
    ).all()
    if _exporting(request):
        sheets = [
            history_sheet(points, currency, p.tz, t),
            *forecast_sheets(f, past, currency, p.tz, t),
            alerts_sheet(alerts, zone(timezone_of(request)), t),
        ]
        return attachment_built(lambda: workbook(sheets), f"balance-{p.code}-{currency}-{today}.xlsx")
    return render(
        request,
        "balances/detail.html",
        export=_export_url(request),
        p=p,
        currency=currency,
        granularity=granularity,
        points=points,
        history_chart=history_chart,
        backtest_chart=backtest_chart,
        past=past,
        balance=balance,
        available=available,
        f=f,
        rule=service.rule_out(rule, currency),
        alerts=alerts,
        money=plain_money_for(request),
    )


@router.post("/balances/{code}/alerts")
async def save_alerts(request: Request, code: str, session: DbDep, me: Alerter) -> Response:
    p = await _provider(request, code)
    form = await request.form()
    currency = str(form.get("currency", "RUB")).upper()[:3]
    base = f"/backoffice/balances/{code}?currency={currency}"
    try:
        before, after = await service.set_rule(
            session,
            p,
            currency=currency,
            threshold=str(form.get("threshold", "")).strip(),
            emails=str(form.get("emails", "")).replace(",", " ").split(),
            webhook_url=str(form.get("webhook_url", "")),
            webhook_secret=str(form.get("webhook_secret", "")) or None,
            enabled=form.get("enabled") == "on",
            actor=me.audit_name,
        )
    except Problem as e:
        await session.rollback()
        return redirect(base, error=e.detail or e.title)
    await audit.record(session, me, "balance_alert_rule.put", f"provider:{code}:{currency}", before, after)
    await session.commit()
    return redirect(base, "The alert settings were saved.")


@router.post("/balances/{code}/topup")
async def topup(request: Request, code: str, session: DbDep, me: TopUpper) -> Response:
    p = await _provider(request, code)
    form = await request.form()
    currency = str(form.get("currency", "RUB")).upper()[:3]
    reference = str(form.get("reference", "")).strip()[:100]
    base = f"/backoffice/balances/{code}?currency={currency}"
    try:
        amount = parse_amount(str(form.get("amount", "")).strip(), currency)
        if not reference:
            raise MoneyError("give the bank reference of the transfer")
        _row, created = await record_topup(
            _hub(request), session, p.code, currency, amount, reference=reference, actor=me.audit_name
        )
    except (MoneyError, Problem) as e:
        await session.rollback()
        return redirect(base, error=str(getattr(e, "detail", None) or e))
    if created:
        await audit.record(
            session,
            me,
            "provider.topup",
            f"provider:{code}",
            None,
            {"amount": format_amount(amount, currency), "currency": currency, "reference": reference},
        )
    await session.commit()
    return redirect(base, "The top-up was recorded." if created else "This reference was already recorded.")
