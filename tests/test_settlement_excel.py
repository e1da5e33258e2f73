"""Excel exports of the settlement tables, read back with openpyxl and compared with the same data as JSON
or as the page shows it: deposit balance history and the forecast (admin API and back office), the
balances list, the settlement overview, payment orders, bank statements and a statement's lines."""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl
from sqlalchemy import select

from browser_support import serving_backoffice
from paymux.money import format_amount, parse_amount
from paymux.settlement.models import PaymentOrder, StatementLine
from test_backoffice_support import add_user, login
from test_settlement_balances import _movements, _topup
from test_settlement_orders import _approved, _debts
from test_settlement_statements import camt053
from test_settlement_support import P2_IBAN, SEnv, catalog, settle_env

MSK = ZoneInfo("Europe/Moscow")


def sheets(data: bytes) -> dict[str, list[tuple[Any, ...]]]:
    assert data[:2] == b"PK"
    wb = openpyxl.load_workbook(io.BytesIO(data))
    return {ws.title: list(ws.iter_rows(values_only=True)) for ws in wb.worksheets}


def major(text: str) -> Decimal:
    """An amount as the JSON gives it ("-120.50"), as the number Excel holds."""
    return Decimal(text)


def num(v: Any) -> Decimal:
    return Decimal(str(v))


async def test_history_and_forecast_from_the_admin_api(db_url: str) -> None:
    async with settle_env(db_url, catalog(p1="Europe/Moscow")) as env:
        await _movements(env)
        params = {"granularity": "day", "start": "2026-02-27", "end": "2026-03-03"}
        url = "/api/v1/admin/providers/p1/deposit-history"
        body = (await env.http.get(url, params=params, headers=env.admin)).json()
        r = await env.http.get(url, params={**params, "format": "xlsx"}, headers=env.admin)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxml")
        assert (
            'filename="deposit-history-p1-RUB-2026-02-27-2026-03-03.xlsx"' in r.headers["content-disposition"]
        )
        (rows,) = sheets(r.content).values()
        assert rows[0] == (
            "From (Europe/Moscow)",
            "To (Europe/Moscow)",
            "Opening balance",
            "In",
            "Out",
            "Closing balance",
        )
        assert len(rows) - 1 == len(body["points"]) == 5
        for row, p in zip(rows[1:], body["points"], strict=True):
            assert row[0] == dt.datetime.fromisoformat(p["start"]).astimezone(MSK).replace(tzinfo=None)
            assert row[1] == dt.datetime.fromisoformat(p["end"]).astimezone(MSK).replace(tzinfo=None)
            assert [num(v) for v in row[2:]] == [
                major(p[k]) for k in ("opening", "inflow", "outflow", "closing")
            ]

        url = "/api/v1/admin/providers/p1/forecast"
        params = {"days": "3", "backtest_days": "5"}
        body = (await env.http.get(url, params=params, headers=env.admin)).json()
        r = await env.http.get(url, params={**params, "format": "xlsx"}, headers=env.admin)
        assert r.status_code == 200
        got = sheets(r.content)
        assert list(got) == ["Forecast", "Expected outflow by hour", "Forecast against actual"]
        summary = {row[0]: row[1] for row in got["Forecast"][1:]}
        assert num(summary["Available with overdraft"]) == major(body["available"])
        assert num(summary["Expected outflow"]) == major(body["expected_outflow"])
        assert num(summary["Top-up to last 3 days"]) == major(body["top_up"])
        assert summary["Hours left"] == body["hours_left"] and summary["Days to last"] == 3
        runs_out = summary["Runs out (Europe/Moscow)"]
        if body["runs_out_at"] is None:
            assert runs_out == "not within 90 days"
        else:
            expected = dt.datetime.fromisoformat(body["runs_out_at"]).astimezone(MSK)
            assert runs_out == expected.replace(tzinfo=None, microsecond=0)
        profile = got["Expected outflow by hour"]
        assert len(profile) == 1 + 168 and profile[1][:2] == ("Monday", "00:00")
        past = got["Forecast against actual"]
        assert [(r[0].date(), num(r[1]), num(r[2])) for r in past[1:]] == [
            (dt.date.fromisoformat(b["day"]), major(b["forecast"]), major(b["actual"]))
            for b in body["backtest"]
        ]


def export_link(page: str) -> str:
    m = re.search(r'<a class="button" href="([^"]*export=xlsx[^"]*)">Export to Excel</a>', page)
    assert m, "no Excel export link on the page"
    return html.unescape(m.group(1))


async def _download(bo: httpx.AsyncClient, path: str) -> dict[str, list[tuple[Any, ...]]]:
    page = await bo.get(path)
    assert page.status_code == 200, page.text
    link = export_link(page.text)
    r = await bo.get(path.split("?")[0] + link)
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment"), r.text[:200]
    return sheets(r.content)


async def _statement(env: SEnv, order: PaymentOrder) -> int:
    data = camt053(
        [
            {
                "bank_ref": "B-1",
                "amount": format_amount(order.amount, "RUB"),
                "e2e": order.number,
                "iban": P2_IBAN,
            },
            {"bank_ref": "B-2", "amount": "55.00", "iban": "DE02120300000000202051", "name": "Someone"},
        ]
    )
    r = await env.http.post(
        "/api/v1/admin/bank-statements", params={"file_name": "camt.xml"}, content=data, headers=env.admin
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_back_office_pages_export_their_tables(db_url: str) -> None:
    async with settle_env(db_url, catalog(p1="Europe/Moscow", p2="Europe/Moscow")) as env:
        now = dt.datetime.now(dt.UTC)
        await _topup(env, "p1", 500_000, now - dt.timedelta(days=3))
        await env.pay("p1", 12_345, now - dt.timedelta(days=2))
        await env.pay("p1", 6_789, now - dt.timedelta(hours=5))
        await _debts(env)
        await env.details("p2", beneficiary="Provider Two", iban=P2_IBAN)
        (order,) = await _approved(env)
        statement_id = await _statement(env, order)
        await add_user(env.hub, "cfo", "cfo", timezone="Asia/Tokyo")
        async with serving_backoffice(env.hub) as base, httpx.AsyncClient(base_url=base, timeout=30) as bo:
            assert (await login(bo, "cfo")).status_code == 303

            # the balance page: history, forecast, hourly profile, forecast against actual, alerts
            got = await _download(bo, "/backoffice/balances/p1?currency=RUB&granularity=day&days=5")
            assert list(got) == [
                "Balance history",
                "Forecast",
                "Expected outflow by hour",
                "Forecast against actual",
                "Alerts sent",
            ]
            history = got["Balance history"]
            assert history[0][0] == "From (Europe/Moscow)"
            closing = [num(r[5]) for r in history[1:]]
            assert closing[-1] == Decimal(500_000 - 12_345 - 6_789).scaleb(-2)
            assert sum(num(r[4]) for r in history[1:]) == Decimal(12_345 + 6_789).scaleb(-2)
            summary = {r[0]: r[1] for r in got["Forecast"][1:]}
            assert num(summary["Available with overdraft"]) == closing[-1] and summary["Days to last"] == 5
            assert len(got["Forecast against actual"]) == 1 + 14
            assert got["Alerts sent"][0][0] == "Created (Asia/Tokyo)"

            got = await _download(bo, "/backoffice/balances")
            (balances,) = got.values()
            row = next(r for r in balances[1:] if r[0] == "p1")
            assert row[2] == "RUB" and num(row[3]) == closing[-1]

            got = await _download(bo, "/backoffice/settlement")
            assert list(got) == ["Settlement", "Latest payment orders"]
            debts = {r[0]: r for r in got["Settlement"][1:]}
            assert debts["p2"][2] == "Europe/Moscow" and debts["p2"][5] == dt.datetime(2026, 3, 2)
            latest = got["Latest payment orders"]
            assert [r[0] for r in latest[1:]] == [order.number]

            got = await _download(bo, "/backoffice/settlement/orders?status=paid")
            (orders,) = got.values()
            header = orders[0]
            (o,) = [dict(zip(header, r, strict=True)) for r in orders[1:]]
            assert (o["Number"], o["Provider"], o["Status"], o["Currency"]) == (
                order.number,
                "p2",
                "paid",
                "RUB",
            )
            assert num(o["Amount"]) == Decimal(order.amount).scaleb(-2)
            assert num(o["Gross"]) == Decimal(order.gross).scaleb(-2)
            assert (o["From"], o["To"]) == (dt.datetime(2026, 3, 1), dt.datetime(2026, 3, 2))
            async with env.hub.read_sessions() as s:
                paid = await s.get(PaymentOrder, order.id)
            assert paid is not None and paid.paid_at is not None
            tokyo = paid.paid_at.astimezone(ZoneInfo("Asia/Tokyo")).replace(tzinfo=None, microsecond=0)
            assert o["Paid (Asia/Tokyo)"] == tokyo
            got = await _download(bo, "/backoffice/settlement/orders?status=created")
            assert len(next(iter(got.values()))) == 1  # the header only: the filter applies

            got = await _download(bo, "/backoffice/settlement/statements")
            (statements,) = got.values()
            assert [r[1:5] for r in statements[1:]] == [
                ("camt.xml", "camt053", "FR1420041010050500013M02606", 2)
            ]

            got = await _download(bo, f"/backoffice/settlement/statements/{statement_id}")
            (lines,) = got.values()
            async with env.hub.read_sessions() as s:
                stored = (
                    await s.scalars(
                        select(StatementLine)
                        .where(StatementLine.statement_id == statement_id)
                        .order_by(StatementLine.id)
                    )
                ).all()
            assert [(num(r[2]), r[3], r[8] or "") for r in lines[1:]] == [
                (Decimal(x.amount).scaleb(-2), x.currency, x.reference) for x in stored
            ]
            assert lines[1][10] == f"payment order {order.number}" and lines[2][10] == "unmatched"
            assert parse_amount(format_amount(stored[0].amount, "RUB"), "RUB") == order.amount

            # an export is the user's language
            await add_user(env.hub, "cfo_ru", "cfo", language="ru")
            async with httpx.AsyncClient(base_url=base, timeout=30) as ru:
                assert (await login(ru, "cfo_ru")).status_code == 303
                page = await ru.get("/backoffice/settlement/orders")
                link = re.search(r'href="([^"]*export=xlsx[^"]*)"', page.text)
                assert link
                r = await ru.get("/backoffice/settlement/orders" + html.unescape(link.group(1)))
                (title,) = sheets(r.content)
                assert title == "Платёжные поручения"
