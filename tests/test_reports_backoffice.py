"""The back office's report pages: the turnover table, its chart and Excel export, readable errors, the
period comparison, and what an agent user sees (its channels only, no providers, no remuneration)."""

from __future__ import annotations

import asyncio
import io
import re
from typing import Any

import pytest
from openpyxl import load_workbook

from browser_support import backoffice_server, chromium, needs_chromium, screenshot
from browser_support import login as browser_login
from chart_support import charts
from paymux.auth.tokens import issue_token
from paymux.auth.user_models import User
from paymux.backoffice.sections import reports as reports_section
from paymux.backoffice.settings import BackofficeSettings
from paymux.rates.service import add_rate
from test_backoffice_ops_support import agent_org, pay_all
from test_backoffice_support import Bo, add_user, login
from test_reports import add
from test_settlement_support import at, catalog, settle_env


def cells(html: str, table_id: str) -> list[list[str]]:
    body = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S)]
        for r in rows
    ]


async def test_turnover_page_table_chart_export_and_errors(db_url: str) -> None:
    async with settle_env(db_url, catalog(p1="Europe/Moscow")) as env:
        env.app.state.backoffice_settings = BackofficeSettings(cookie_secure=False)
        bo = Bo(env.app, env.hub, env.http)
        await add(env, "p1", 1234_56, at("2026-05-01T22:00:00+00:00"), fee=12_35, remuneration=12_35)
        await add(env, "p2", 10_00, at("2026-05-01T10:00:00+00:00"), channel="web")
        await bo.user("cfo.ann", "cfo")
        assert (await login(bo.http, "cfo.ann")).status_code == 303
        params = "first=2026-05-01&last=2026-05-02&group_by=provider&grain=day&timezone=provider"
        page = await bo.http.get(f"/backoffice/reports?{params}")
        assert page.status_code == 200
        got = cells(page.text, "report")
        assert got[0] == ["Provider", "Period", "Currency", "Payments", "Amount", "Fee", "Total collected",
                          "Remuneration", "Commission"]  # fmt: skip
        assert got[1:] == [
            ["p2", "2026-05-01", "RUB", "1", "10.00", "0.00", "10.00", "0.00", "0.00"],
            ["p1", "2026-05-02", "RUB", "1", "1,234.56", "12.35", "1,246.91", "12.35", "0.00"],
            ["Total", "RUB", "2", "1,244.56", "12.35", "1,256.91", "12.35", "0.00"],
        ]
        assert len(charts(page.text)) == 1  # the amount by day, one chart per currency
        export = re.search(r'id="export" href="([^"]+)"', page.text)
        assert export is not None
        x = await bo.http.get("/backoffice/reports" + export.group(1).replace("&amp;", "&"))
        assert x.status_code == 200 and "spreadsheetml" in x.headers["content-type"]
        ws = load_workbook(io.BytesIO(x.content)).active
        assert ws is not None
        assert [c.value for c in ws[5]][:5] == ["p1", "2026-05-02", "RUB", 1, 1234.56]

        async with env.hub.sessions() as s:
            await add_rate(s, "EUR", "RUB", "100", effective_from=at("2026-05-01T00:00:00+00:00"))
            await s.commit()
        eur = await bo.http.get(f"/backoffice/reports?{params}&in_currency=EUR")
        assert cells(eur.text, "report")[-1] == [
            "Total in EUR", "EUR", "", "12.45", "0.12", "12.57", "0.12", "0.00"
        ]  # fmt: skip
        assert "RUB/EUR 0.0100000000" in eur.text
        usd = await bo.http.get(f"/backoffice/reports?{params}&in_currency=USD")
        assert "No rate for RUB: their amounts are left out of this total." in usd.text

        bad = await bo.http.get("/backoffice/reports?first=2026-13-01")
        assert bad.status_code == 422 and "first must be a date like 2026-12-31" in bad.text
        assert 'id="report-form"' in bad.text  # the form is there to correct it

        params = "first=2026-05-01&last=2026-05-31&earlier=2&timezone=UTC&group_by=provider"
        cmp = await bo.http.get(f"/backoffice/reports/comparison?{params}")
        assert cmp.status_code == 200
        rows = cells(cmp.text, "comparison")
        assert rows[0][2:5] == [
            "2026-05-01 – 2026-05-31",
            "2026-04-01 – 2026-04-30",
            "2026-03-01 – 2026-03-31",
        ]
        assert rows[1] == ["p1", "RUB", "1,234.56", "0.00", "0.00", "—", "—"]


async def test_agent_sees_its_channels_without_providers_or_remuneration(db_url: str) -> None:
    async with settle_env(db_url, catalog()) as env:
        env.app.state.backoffice_settings = BackofficeSettings(cookie_secure=False)
        bo = Bo(env.app, env.hub, env.http)
        await add(
            env, "p1", 30_00, at("2026-05-03T10:00:00+00:00"), channel="term", commission=15, remuneration=40
        )
        await add(env, "p2", 777_00, at("2026-05-03T10:00:00+00:00"), channel="web")  # not the dealer's
        await bo.user("dealer.kim", "agent", org=await agent_org(bo))
        assert (await login(bo.http, "dealer.kim")).status_code == 303
        page = await bo.http.get("/backoffice/reports?first=2026-05-01&last=2026-05-31&group_by=channel")
        assert page.status_code == 200
        assert cells(page.text, "report") == [
            ["Channel", "Currency", "Payments", "Amount", "Fee", "Total collected", "Commission"],
            ["term", "RUB", "1", "30.00", "0.00", "30.00", "0.15"],
            ["Total", "RUB", "1", "30.00", "0.00", "30.00", "0.15"],
        ]
        assert 'value="provider"' not in page.text and "777" not in page.text
        refused = await bo.http.get("/backoffice/reports?group_by=provider")
        assert refused.status_code == 422 and "agent users cannot" in refused.text


@needs_chromium
async def test_report_form_in_chromium(db_url: str) -> None:
    async with backoffice_server(db_url) as (env, base):
        await pay_all(env, [{"account": "9001111111"}, {"account": "9002222222", "amount": "250.00"}])
        await add_user(env.hub, "fin", "financial_specialist")
        async with chromium() as browser:
            page = await browser.new_page()
            await browser_login(page, base, "fin")
            await page.click("nav.menu >> text=Reports")
            await page.wait_for_url("**/backoffice/reports")
            assert await page.locator("nav.menu a.current").count() == 1
            await page.check("input[name=group_by][value=provider]")
            await page.check("input[name=group_by][value=channel]")
            await page.select_option("select[name=grain]", "day")
            await page.click("#report-form button[type=submit]")
            await page.wait_for_url("**group_by=provider&group_by=channel**")
            heads = [t.strip() for t in await page.locator("#report thead th").all_text_contents()]
            assert heads[:4] == ["Provider", "Channel", "Period", "Currency"]
            assert await page.locator("#report tbody tr").count() == 2  # one group-day, then the total
            assert await page.locator("svg.pmx-chart").count() == 1
            async with page.expect_download() as download:
                await page.click("#export")
            assert (await download.value).suggested_filename.startswith("turnover-")
            await screenshot(page, "e2e-report")


async def test_a_long_report_does_not_keep_payments_waiting(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a writable session holds the process's writer turn: the report pages sign in with one,
    close it, and read through a read-only session, so writes go on while a report is computed."""
    async with settle_env(db_url, catalog()) as env:
        env.app.state.backoffice_settings = BackofficeSettings(cookie_secure=False)
        bo = Bo(env.app, env.hub, env.http)
        await bo.user("acc", "accountant")
        assert (await login(bo.http, "acc")).status_code == 303
        computing, finish = asyncio.Event(), asyncio.Event()
        real = reports_section.turnover

        async def slow(session: Any, q: Any) -> Any:
            computing.set()
            await finish.wait()
            return await real(session, q)

        monkeypatch.setattr(reports_section, "turnover", slow)
        page = asyncio.create_task(bo.http.get("/backoffice/reports"))
        await asyncio.wait_for(computing.wait(), 10)
        await asyncio.wait_for(add(env, "p1", 5_00, at("2026-05-03T10:00:00+00:00")), 5)  # a write, meanwhile
        finish.set()
        assert (await page).status_code == 200


async def test_agent_api_token_gets_its_channels_without_remuneration(db_url: str) -> None:
    async with settle_env(db_url, catalog()) as env:
        bo = Bo(env.app, env.hub, env.http)
        await add(
            env, "p1", 30_00, at("2026-05-03T10:00:00+00:00"), channel="term", commission=15, remuneration=40
        )
        await add(env, "p2", 777_00, at("2026-05-03T10:00:00+00:00"), channel="web")
        user = await bo.user("dealer.api", "agent", org=await agent_org(bo))
        async with env.hub.sessions() as s:
            u = await s.get(User, user.id)
            assert u is not None
            token, _ = await issue_token(s, u, "reports", None)
            await s.commit()
        auth = {"Authorization": f"Bearer {token}"}
        params = {"first": "2026-05-01", "last": "2026-05-31", "group_by": "channel", "timezone": "UTC"}
        r = await env.http.get("/api/v1/admin/reports/turnover", params=params, headers=auth)
        assert r.status_code == 200, r.text
        assert "remuneration" not in r.json()["measures"]
        assert r.json()["rows"] == [
            {"channel": "term", "currency": "RUB", "payments": 1, "amount": "30.00", "fee": "0.00",
             "total": "30.00", "commission": "0.15"}
        ]  # fmt: skip
        refused = await env.http.get(
            "/api/v1/admin/reports/turnover", params={**params, "group_by": "provider"}, headers=auth
        )
        assert refused.status_code == 422 and "agent users cannot" in refused.json()["detail"]
        hidden = await env.http.get(
            "/api/v1/admin/reports/comparison", params={"measure": "remuneration"}, headers=auth
        )
        assert hidden.status_code == 422
