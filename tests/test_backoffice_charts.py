"""The back office's charts, read back from the SVG pygal draws: every period of the page is on the x axis
(zeros where nothing happened, in the days the page counts in), one series per group with its legend, a
tooltip per value, and nothing fetched from elsewhere."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from chart_support import charts, no_outside_references
from paymux.backoffice.settings import BackofficeSettings
from test_backoffice_ops_support import agent_org
from test_backoffice_support import Bo, login
from test_reports import add
from test_settlement_support import at, catalog, settle_env


def days(first: str, n: int) -> list[str]:
    start = dt.date.fromisoformat(first)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(n)]


async def test_report_chart_covers_every_day_with_a_series_per_group(db_url: str) -> None:
    async with settle_env(db_url, catalog(p1="Europe/Moscow")) as env:
        env.app.state.backoffice_settings = BackofficeSettings(cookie_secure=False)
        bo = Bo(env.app, env.hub, env.http)
        # 22:00 UTC on May 1st is May 2nd in Moscow: the report (and its chart) count it on the 2nd
        await add(env, "p1", 1234_56, at("2026-05-01T22:00:00+00:00"))
        await add(env, "p2", 10_00, at("2026-05-01T10:00:00+00:00"), channel="web")
        await add(env, "p2", 5_00, at("2026-05-20T10:00:00+00:00"), channel="web", currency="EUR")
        await bo.user("cfo.ann", "cfo")
        assert (await login(bo.http, "cfo.ann")).status_code == 303

        base = "first=2026-05-01&last=2026-05-30&timezone=provider"
        page = await bo.http.get(f"/backoffice/reports?{base}&grain=day&group_by=provider")
        assert page.status_code == 200 and no_outside_references(page.text)
        eur, rub = charts(page.text)  # one per currency
        assert rub.title == "Amount, RUB" and rub.x_labels == days("2026-05-01", 30)
        assert rub.legend == ["p1", "p2"]
        p1 = ["0.00"] * 30
        p1[1] = "1,234.56"
        p2 = ["0.00"] * 30
        p2[0] = "10.00"
        assert rub.values("p1") == p1 and rub.values("p2") == p2
        assert [x for x, _ in rub.series["p1"]] == days("2026-05-01", 30)
        assert "p1 · 2026-05-02: 1,234.56" in rub.tooltips and "p2 · 2026-05-03: 0.00" in rub.tooltips
        assert eur.legend == ["p2"] and eur.values("p2")[19] == "5.00" and len(eur.x_labels) == 30

        # by month: every month the period touches, zeros included
        page = await bo.http.get(
            "/backoffice/reports?first=2026-03-15&last=2026-05-30&timezone=UTC&grain=month&group_by=provider"
        )
        rub = charts(page.text)[1]
        assert rub.x_labels == ["2026-03", "2026-04", "2026-05"]
        assert rub.values("p1") == ["0.00", "0.00", "1,234.56"] and rub.values("p2") == [
            "0.00",
            "0.00",
            "10.00",
        ]

        # the whole period: one bar, a series per group (two dimensions named together)
        page = await bo.http.get(f"/backoffice/reports?{base}&group_by=provider&group_by=channel")
        rub = charts(page.text)[1]
        assert rub.x_labels == ["2026-05-01 – 2026-05-30"] and rub.legend == ["p1 · term", "p2 · web"]

        # without grouping: one series, the amount
        page = await bo.http.get(f"/backoffice/reports?{base}&grain=day")
        rub = charts(page.text)[1]
        assert rub.legend == ["Amount"] and rub.values("Amount")[:3] == ["10.00", "1,234.56", "0.00"]


async def test_report_chart_keeps_the_largest_groups_and_adds_up_the_rest(db_url: str) -> None:
    async with settle_env(db_url, catalog()) as env:
        env.app.state.backoffice_settings = BackofficeSettings(cookie_secure=False, chart_series=2)
        bo = Bo(env.app, env.hub, env.http)
        await add(env, "p1", 300_00, at("2026-05-02T10:00:00+00:00"))
        await add(env, "p2", 20_00, at("2026-05-02T10:00:00+00:00"))
        await add(env, "p3", 10_00, at("2026-05-03T10:00:00+00:00"))
        await bo.user("cfo.ann", "cfo")
        await login(bo.http, "cfo.ann")
        page = await bo.http.get(
            "/backoffice/reports?first=2026-05-01&last=2026-05-03&timezone=UTC&grain=day&group_by=provider"
        )
        (rub,) = charts(page.text)
        assert rub.legend == ["p1", "Other"]
        assert rub.values("p1") == ["0.00", "300.00", "0.00"]
        assert rub.values("Other") == ["0.00", "20.00", "10.00"]


async def test_balance_charts_cover_every_day_and_hour(db_url: str) -> None:
    async with settle_env(db_url, catalog(p1="Asia/Vladivostok")) as env:
        env.app.state.backoffice_settings = BackofficeSettings(cookie_secure=False)
        bo = Bo(env.app, env.hub, env.http)
        now = dt.datetime.now(dt.UTC)
        await env.pay("p1", 250_00, now - dt.timedelta(days=3))
        await bo.user("fin", "financial_specialist")
        await login(bo.http, "fin")
        page = await bo.http.get("/backoffice/balances/p1?currency=RUB")
        assert page.status_code == 200 and no_outside_references(page.text)
        history, backtest = charts(page.text)
        assert history.legend == ["Closing balance"]
        # every local day of the last 30 (Vladivostok's), the quiet ones included
        today = now.astimezone(dt.timezone(dt.timedelta(hours=10))).date()
        expected = [(today - dt.timedelta(days=i)).strftime("%d.%m") for i in range(30, -1, -1)]
        assert history.x_labels[-len(expected) :] == expected and len(history.x_labels) in (30, 31)
        closing = history.values("Closing balance")
        assert closing[-1] == "-250.00" and closing[0] == "0.00"
        assert backtest.legend == ["Forecast", "Actual"] and len(backtest.x_labels) == 14
        assert all(len(backtest.series[s]) == 14 for s in backtest.legend)
        hourly = charts((await bo.http.get("/backoffice/balances/p1?currency=RUB&granularity=hour")).text)[0]
        assert len(hourly.x_labels) in (48, 49) and len(hourly.values("Closing balance")) == len(
            hourly.x_labels
        )


async def test_the_chart_style_sheet_is_served_from_the_site(db_url: str) -> None:
    async with settle_env(db_url, catalog()) as env:
        r = await env.http.get("/backoffice/charts.css")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
        assert "svg.pmx-chart .color-0" in r.text and "#chart-" not in r.text


async def test_dashboard_charts_turnover_success_rate_and_queue_by_provider(db_url: str) -> None:
    async with settle_env(db_url, catalog()) as env:
        env.app.state.backoffice_settings = BackofficeSettings(cookie_secure=False)
        bo = Bo(env.app, env.hub, env.http)
        tz = ZoneInfo("Asia/Kathmandu")  # +05:45: local hours are not whole UTC hours
        midnight = dt.datetime.combine(dt.datetime.now(tz).date(), dt.time(), tz).astimezone(dt.UTC)
        # created at 00:30 and 13:50 local time (``add`` creates a payment 5 minutes before it is final)
        early, late = midnight + dt.timedelta(minutes=35), midnight + dt.timedelta(hours=13, minutes=55)
        await add(env, "p1", 100_00, early)
        await add(env, "p2", 20_00, late)
        await add(env, "p2", 1_00, late, status="failed")
        await add(env, "p3", 5_00, late, status="failed")
        await add(env, "p1", 7_00, late, status="accepted")
        await add(env, "p1", 7_00, late, status="accepted")
        await add(env, "p3", 7_00, late, status="processing")
        await add(env, "p1", 999_00, midnight - dt.timedelta(minutes=20))  # yesterday, local time
        await bo.user("cfo", "cfo", timezone="Asia/Kathmandu")
        await login(bo.http, "cfo")
        page = await bo.http.get("/backoffice/dashboard")
        assert page.status_code == 200 and no_outside_references(page.text)
        turnover, rate, queue = charts(page.text)

        assert turnover.title == "Turnover today by provider, RUB"
        assert turnover.x_labels == [f"{h:02d}:00" for h in range(24)]
        assert turnover.legend == ["p1", "p2"]
        p1, p2 = ["0.00"] * 24, ["0.00"] * 24
        p1[0], p2[13] = "100.00", "20.00"
        assert turnover.values("p1") == p1 and turnover.values("p2") == p2

        assert rate.x_labels == ["p1", "p2", "p3"] and rate.legend == ["Success rate, %"]
        assert rate.series["Success rate, %"] == [("p1", "100"), ("p2", "50"), ("p3", "0")]

        assert queue.x_labels == ["p1", "p2", "p3"] and queue.legend == ["accepted", "processing"]
        assert queue.values("accepted") == ["2", "0", "0"] and queue.values("processing") == ["0", "0", "1"]

        # an agent's user: its channels' turnover by service, nothing about providers
        await bo.user("dealer.kim", "agent", org=await agent_org(bo), timezone="Asia/Kathmandu")
        async with bo.client() as agent:
            await login(agent, "dealer.kim")
            (only,) = charts((await agent.get("/backoffice/dashboard")).text)
            assert only.title == "Turnover today by service, RUB" and only.legend == ["topup"]
            assert only.values("topup")[0] == "100.00" and only.values("topup")[13] == "20.00"
