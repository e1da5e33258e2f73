"""Admin API for settlement: deposits, history, forecast, alerts, bank details, debts, statements,
payment orders (create / approve / cancel / mark paid / export) and bank statement import."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, StrictStr
from sqlalchemy import select

from paymux import audit
from paymux.api.deps import HubDep, ReadSessionDep, SessionDep
from paymux.api.params import Id
from paymux.auth import permissions as P
from paymux.auth.admin_api import require_api
from paymux.auth.principal import Principal
from paymux.db.base import utcnow
from paymux.downloads import attachment, attachment_built
from paymux.errors import invalid
from paymux.money import check_currency, format_amount
from paymux.settlement import alerts as alert_service
from paymux.settlement import orders as order_service
from paymux.settlement import service, views
from paymux.settlement.balances import deposit_balance, deposits, history
from paymux.settlement.debts import debts_by_day, local_today, totals, withholds
from paymux.settlement.forecast import backtest, forecast
from paymux.settlement.models import (
    BalanceAlert,
    BalanceAlertRule,
    BankStatement,
    PaymentOrder,
    SettlementDetails,
)
from paymux.settlement.statement import build_statement, to_xlsx
from paymux.settlement.xlsx import forecast_sheets, history_sheet, workbook

router = APIRouter(prefix="/api/v1/admin", tags=["settlement"])

Read = Annotated[Principal, Depends(require_api(P.BALANCES_READ))]
Alerts = Annotated[Principal, Depends(require_api(P.ALERTS_WRITE))]
SRead = Annotated[Principal, Depends(require_api(P.SETTLEMENT_READ))]
Details = Annotated[Principal, Depends(require_api(P.SETTLEMENT_DETAILS))]
Create = Annotated[Principal, Depends(require_api(P.ORDERS_CREATE))]
Approve = Annotated[Principal, Depends(require_api(P.ORDERS_APPROVE))]
Bank = Annotated[Principal, Depends(require_api(P.ORDERS_PAY))]
MAX_DAYS = 400


def _range(
    start: dt.date | None, end: dt.date | None, default_days: int, today: dt.date
) -> tuple[dt.date, dt.date]:
    last = end or today
    first = start or last - dt.timedelta(days=default_days - 1)
    if first > last:
        raise invalid("invalid-period", "start is after end")
    if (last - first).days >= MAX_DAYS:
        raise invalid("invalid-period", f"at most {MAX_DAYS} days at once")
    return first, last


# --- prepaid: deposits, history, forecast, alerts ---------------------------------------------------------


@router.get("/deposits")
async def list_deposits(_: Read, hub: HubDep, session: ReadSessionDep) -> list[dict[str, Any]]:
    """Deposits of prepaid providers with their overdraft and alert threshold."""
    return [views.deposit_out(d) for d in await deposits(session, await hub.catalog.get())]


@router.get("/providers/{code}/deposit-history", response_model=None)
async def deposit_history(
    code: str,
    _: Read,
    hub: HubDep,
    session: ReadSessionDep,
    currency: Annotated[str, Query(min_length=3, max_length=3)] = "RUB",
    granularity: Literal["hour", "day"] = "day",
    start: dt.date | None = None,
    end: dt.date | None = None,
    format: Literal["json", "xlsx"] = "json",
) -> dict[str, Any] | Response:
    """Opening/closing balance, inflow and outflow per hour or day (local days of the provider);
    ``format=xlsx`` for an Excel file."""
    p = service.provider_or_404(await hub.catalog.get(), code, "prepaid")
    check_currency(currency)
    first, last = _range(start, end, 2 if granularity == "hour" else 30, local_today(p.tz, utcnow()))
    if granularity == "hour" and (last - first).days > 31:
        raise invalid("invalid-period", "hourly history: at most 31 days at once")
    t0 = dt.datetime.combine(first, dt.time(), tzinfo=p.tz)
    t1 = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=p.tz)
    points = [pt for pt in await history(session, p.id, currency, t0, t1, granularity, p.tz) if pt.start < t1]
    if format == "xlsx":
        sheet = history_sheet(points, currency, p.tz)
        return attachment_built(
            lambda: workbook([sheet]), f"deposit-history-{code}-{currency}-{first}-{last}.xlsx"
        )
    return {
        "provider": code,
        "currency": currency,
        "timezone": p.tz.key,
        "granularity": granularity,
        "points": [views.point_out(pt, currency) for pt in points],
    }


@router.get("/providers/{code}/forecast", response_model=None)
async def deposit_forecast(
    code: str,
    _: Read,
    hub: HubDep,
    session: ReadSessionDep,
    currency: Annotated[str, Query(min_length=3, max_length=3)] = "RUB",
    days: Annotated[int, Query(ge=1, le=60)] = 7,
    weeks: Annotated[int, Query(ge=1, le=26)] = 4,
    backtest_days: Annotated[int, Query(ge=0, le=90)] = 14,
    format: Literal["json", "xlsx"] = "json",
) -> dict[str, Any] | Response:
    """How long the deposit lasts, the top-up to last ``days`` days, and past forecasts against the facts;
    ``format=xlsx`` for an Excel file (also the expected outflow per hour of the week)."""
    p = service.provider_or_404(await hub.catalog.get(), code, "prepaid")
    check_currency(currency)
    now = utcnow()
    available = await deposit_balance(session, p.id, currency) + int(p.overdraft.get(currency, 0))
    f = await forecast(session, p.id, currency, available, p.tz, as_of=now, days=days, weeks=weeks)
    today = local_today(p.tz, now)
    past = (
        await backtest(
            session,
            p.id,
            currency,
            p.tz,
            first=today - dt.timedelta(days=backtest_days),
            last=today - dt.timedelta(days=1),
            weeks=weeks,
        )
        if backtest_days
        else []
    )
    if format == "xlsx":
        sheets = forecast_sheets(f, past, currency, p.tz)
        return attachment_built(lambda: workbook(sheets), f"forecast-{code}-{currency}-{today}.xlsx")
    return {
        "provider": code,
        "currency": currency,
        "as_of": now,
        "available": format_amount(f.available, currency),
        "runs_out_at": f.runs_out_at,
        "hours_left": f.hours_left,
        "days": days,
        "expected_outflow": format_amount(f.need, currency),
        "top_up": format_amount(f.top_up, currency),
        "weeks": weeks,
        "backtest": [
            {
                "day": b.day.isoformat(),
                "forecast": format_amount(b.forecast, currency),
                "actual": format_amount(b.actual, currency),
            }
            for b in past
        ],
    }


@router.get("/providers/{code}/balance-alert-rules")
async def get_rules(code: str, _: Read, hub: HubDep, session: ReadSessionDep) -> list[dict[str, Any]]:
    p = service.provider_or_404(await hub.catalog.get(), code, "prepaid")
    rows = (await session.scalars(select(BalanceAlertRule).where(BalanceAlertRule.provider_id == p.id))).all()
    return [service.rule_out(r, r.currency) for r in rows]


class RuleBody(BaseModel):
    threshold: StrictStr = Field(examples=["50000.00"])
    emails: list[StrictStr] = Field(default_factory=list)
    webhook_url: StrictStr = ""
    webhook_secret: StrictStr | None = Field(
        None, description="HMAC key; omit or '***' to keep the stored one"
    )
    enabled: bool = True


@router.put("/providers/{code}/balance-alert-rules/{currency}")
async def put_rule(
    code: str, currency: str, body: RuleBody, me: Alerts, hub: HubDep, session: SessionDep
) -> dict[str, Any]:
    """Set the low-balance threshold of a deposit and where alerts go (e-mail, signed webhook)."""
    p = service.provider_or_404(await hub.catalog.get(), code, "prepaid")
    before, after = await service.set_rule(
        session,
        p,
        currency=currency,
        threshold=body.threshold,
        emails=body.emails,
        webhook_url=body.webhook_url,
        webhook_secret=body.webhook_secret,
        enabled=body.enabled,
        actor=me.audit_name,
    )
    await audit.record(session, me, "balance_alert_rule.put", f"provider:{code}:{currency}", before, after)
    await session.commit()
    return after


@router.get("/balance-alerts")
async def list_alerts(
    _: Read,
    hub: HubDep,
    session: ReadSessionDep,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    """Low-balance alerts (one per crossing) and their delivery, newest first."""
    q = select(BalanceAlert).order_by(BalanceAlert.id.desc()).limit(limit)
    if status:
        q = q.where(BalanceAlert.status == status)
    snap = await hub.catalog.get()
    return [views.alert_out(a, snap) for a in (await session.scalars(q)).all()]


@router.post("/balance-alerts/{alert_id}/retry")
async def retry_alert(alert_id: Id, me: Alerts, hub: HubDep, session: SessionDep) -> dict[str, Any]:
    """Deliver a failed (or waiting) alert again now."""
    alert = await alert_service.retry_now(session, alert_id)
    if alert is None:
        raise service.not_found(f"balance alert {alert_id}")
    await audit.record(
        session, me, "balance_alert.retry", f"balance_alert:{alert_id}", None, {"status": alert.status}
    )
    await session.commit()
    return views.alert_out(alert, await hub.catalog.get())


# --- postpaid: details, debts, statements -----------------------------------------------------------------


@router.get("/providers/{code}/settlement-details")
async def get_details(code: str, _: SRead, hub: HubDep, session: ReadSessionDep) -> dict[str, Any]:
    p = service.provider_or_404(await hub.catalog.get(), code)
    return {"provider": code, **service.details_out(await session.get(SettlementDetails, p.id))}


class DetailsBody(BaseModel):
    beneficiary: StrictStr = ""
    iban: StrictStr = ""
    bic: StrictStr = ""
    bank_name: StrictStr = ""
    account: StrictStr = ""
    bik: StrictStr = ""
    corr_account: StrictStr = ""
    inn: StrictStr = ""
    kpp: StrictStr = ""
    withhold_remuneration: bool = True
    purpose: StrictStr = ""


@router.put("/providers/{code}/settlement-details")
async def put_details(
    code: str, body: DetailsBody, me: Details, hub: HubDep, session: SessionDep
) -> dict[str, Any]:
    """Bank details the provider is paid to (IBAN/BIC, or Russian account/BIK/INN) and settlement terms."""
    p = service.provider_or_404(await hub.catalog.get(), code)
    before, after = await service.set_details(session, p, body.model_dump(), me.audit_name)
    await audit.record(session, me, "settlement_details.put", f"provider:{code}", before, after)
    await session.commit()
    return {"provider": code, **after}


@router.get("/providers/{code}/debts")
async def get_debts(
    code: str,
    _: SRead,
    hub: HubDep,
    session: ReadSessionDep,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> dict[str, Any]:
    """Debts by day of the provider's timezone (remuneration withheld if its terms say so)."""
    p = service.provider_or_404(await hub.catalog.get(), code, "postpaid")
    first, last = _range(start, end, 31, local_today(p.tz, utcnow()))
    withhold = await withholds(session, p.id)
    by_currency = await debts_by_day(session, p.id, p.tz, first, last, withhold=withhold)
    return {
        "provider": code,
        "timezone": p.tz.key,
        "withhold_remuneration": withhold,
        "currencies": {
            c: {"days": [views.debt_out(d, c) for d in days], "total": views.debt_out(totals(days), c)}
            for c, days in sorted(by_currency.items())
        },
    }


@router.get("/providers/{code}/statement", response_model=None)
async def get_statement(
    code: str,
    _: SRead,
    hub: HubDep,
    session: ReadSessionDep,
    start: dt.date | None = None,
    end: dt.date | None = None,
    format: Literal["json", "xlsx"] = "json",
) -> dict[str, Any] | Response:
    """The provider's statement for a period: debts by day, totals, the orders that pay them."""
    p = service.provider_or_404(await hub.catalog.get(), code, "postpaid")
    first, last = _range(start, end, 31, local_today(p.tz, utcnow()))
    st = await build_statement(session, p, first, last)
    if format == "xlsx":
        return attachment(to_xlsx(st, hub.settings.business_tz), f"statement-{code}-{first}-{last}.xlsx")
    snap = await hub.catalog.get()
    return {
        "provider": code,
        "period": [first.isoformat(), last.isoformat()],
        "timezone": p.tz.key,
        "withhold_remuneration": st.withhold,
        "currencies": {
            c: {"days": [views.debt_out(d, c) for d in days], "total": views.debt_out(st.totals[c], c)}
            for c, days in sorted(st.days.items())
        },
        "orders": [views.order_out(o, snap) for o in st.orders],
    }


# --- payment orders ----------------------------------------------------------------------------------------


class CreateOrdersBody(BaseModel):
    provider: StrictStr | None = Field(None, description="a postpaid provider's code; omit for all")
    through: dt.date | None = Field(None, description="last local day to cover (default: yesterday)")


@router.post("/payment-orders", status_code=201)
async def create_orders(
    body: CreateOrdersBody, me: Create, hub: HubDep, session: SessionDep
) -> list[dict[str, Any]]:
    """Create orders for the debts not yet covered (one provider or all postpaid providers)."""
    snap = await hub.catalog.get()
    made = await order_service.create_orders(
        session, snap, actor=order_service.actor_id(me), provider_code=body.provider, through=body.through
    )
    for o in made:
        await audit.record(
            session, me, "payment_order.create", f"payment_order:{o.number}", None, order_service.state(o)
        )
    await session.commit()
    return [views.order_out(o, snap) for o in made]


@router.get("/payment-orders")
async def list_orders(
    _: SRead,
    hub: HubDep,
    session: ReadSessionDep,
    status: str | None = None,
    provider: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    snap = await hub.catalog.get()
    q = select(PaymentOrder).order_by(PaymentOrder.id.desc()).limit(limit)
    if status:
        q = q.where(PaymentOrder.status == status)
    if provider:
        q = q.where(PaymentOrder.provider_id == service.provider_or_404(snap, provider).id)
    return [views.order_out(o, snap) for o in (await session.scalars(q)).all()]


@router.get("/payment-orders/{order_id}")
async def get_order(order_id: Id, _: SRead, hub: HubDep, session: ReadSessionDep) -> dict[str, Any]:
    return views.order_out(await order_service.get_order(session, order_id), await hub.catalog.get())


async def _transition(
    session: SessionDep, me: Principal, order_id: int, action: str, fn: Any, hub: HubDep
) -> dict[str, Any]:
    before = order_service.state(await order_service.locked_order(session, order_id))
    order = await fn()
    await audit.record(
        session,
        me,
        f"payment_order.{action}",
        f"payment_order:{order.number}",
        before,
        order_service.state(order),
    )
    await session.commit()
    return views.order_out(order, await hub.catalog.get())


@router.post("/payment-orders/{order_id}/approve")
async def approve_order(order_id: Id, me: Approve, hub: HubDep, session: SessionDep) -> dict[str, Any]:
    """Approve an order someone else created (maker-checker)."""
    return await _transition(
        session,
        me,
        order_id,
        "approve",
        lambda: order_service.approve(session, order_id, order_service.actor_id(me)),
        hub,
    )


@router.post("/payment-orders/{order_id}/cancel")
async def cancel_order(order_id: Id, me: Create, hub: HubDep, session: SessionDep) -> dict[str, Any]:
    return await _transition(
        session,
        me,
        order_id,
        "cancel",
        lambda: order_service.cancel(session, order_id, order_service.actor_id(me)),
        hub,
    )


@router.post("/payment-orders/{order_id}/mark-paid")
async def mark_order_paid(order_id: Id, me: Bank, hub: HubDep, session: SessionDep) -> dict[str, Any]:
    """Mark an approved order paid by hand (posts payable -> bank)."""
    return await _transition(
        session,
        me,
        order_id,
        "mark_paid",
        lambda: order_service.mark_paid(session, hub.accounts, order_id, order_service.actor_id(me)),
        hub,
    )


class ExportBody(BaseModel):
    ids: list[Id] = Field(min_length=1, max_length=10_000)
    format: Literal["pain001", "1c"] = "pain001"
    execution_date: dt.date | None = None


@router.post("/payment-orders/export", response_model=None)
async def export_orders(body: ExportBody, me: Bank, hub: HubDep, session: SessionDep) -> Response:
    """A pain.001.001.03 XML or 1CClientBankExchange file with approved orders (dates of the business
    timezone). 409 naming the ``PAYMUX_SETTLEMENT_DEBTOR_*`` settings or payee details it would lack."""
    data, name, ctype, orders = await service.export_orders(
        session, body.ids, body.format, tz=hub.settings.business_tz, execution_date=body.execution_date
    )
    await audit.record(
        session,
        me,
        "payment_order.export",
        f"payment_orders:{body.format}",
        None,
        {"orders": [o.number for o in orders], "file": name},
    )
    await session.commit()
    return attachment(data, name, ctype)


# --- bank statements ---------------------------------------------------------------------------------------


@router.post("/bank-statements", status_code=201)
async def import_statement(
    request: Request, me: Bank, hub: HubDep, session: SessionDep, file_name: str = ""
) -> dict[str, Any]:
    """Import a camt.053 or 1CClientBankExchange statement (the file as the request body)."""
    data = await request.body()
    if not data:
        raise invalid("empty-statement", "send the statement file as the request body")
    result = await service.import_statement(hub, session, data, file_name=file_name, actor=me.audit_name)
    await audit.record(
        session,
        me,
        "bank_statement.import",
        f"bank_statement:{result.statement.id}",
        None,
        {
            "file": file_name,
            "new_lines": len(result.new),
            "repeated": result.repeated,
            "orders_paid": result.orders_paid,
            "topups": result.topups,
        },
    )
    await session.commit()
    snap = await hub.catalog.get()
    return {
        **views.statement_out(result.statement),
        "repeated": result.repeated,
        "orders_paid": result.orders_paid,
        "topups": result.topups,
        "new": [views.line_out(ln, snap) for ln in result.new],
    }


@router.get("/bank-statements")
async def list_statements(
    _: SRead, session: ReadSessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    rows = (await session.scalars(select(BankStatement).order_by(BankStatement.id.desc()).limit(limit))).all()
    return [views.statement_out(s) for s in rows]


@router.get("/bank-statements/{statement_id}")
async def get_bank_statement(
    statement_id: Id, _: SRead, hub: HubDep, session: ReadSessionDep
) -> dict[str, Any]:
    st, lines = await service.statement_lines(session, statement_id)
    snap = await hub.catalog.get()
    return {**views.statement_out(st), "new": [views.line_out(ln, snap) for ln in lines]}
