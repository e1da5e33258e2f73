"""Headless Chromium (Playwright) on the real server with emulated providers: payment search → details,
the provider switch through its confirmation page, the tariff maker-checker approval."""

from __future__ import annotations

from sqlalchemy import select

from browser_support import backoffice_server, chromium, login, needs_chromium, screenshot
from paymux.catalog.models import Provider
from paymux.routing.models import RouteCandidate
from paymux.tariffs.proposals import TariffProposal
from test_backoffice_ops_support import pay_all
from test_backoffice_support import add_user

pytestmark = needs_chromium


async def test_payment_search_to_details_and_switch_confirmation_in_chromium(db_url: str) -> None:
    async with backoffice_server(db_url) as (env, base):
        done = await pay_all(env, [{"account": "9001111111"}, {"account": "9002222222", "amount": "250.00"}])
        await add_user(env.hub, "sup", "support")
        await add_user(env.hub, "op", "operator")
        async with chromium() as browser:
            page = await browser.new_page()
            await login(page, base, "sup")
            await page.click("nav.menu >> text=Payments")
            await page.wait_for_url("**/backoffice/payments")
            assert await page.locator("#payments tbody tr").count() == 2
            await page.fill("input[name=account]", "9002222222")
            await page.click("form.filters button[type=submit]")
            await page.wait_for_url("**account=9002222222**")
            assert await page.locator("#payments tbody tr").count() == 1
            await page.click("a.payment-link")
            await page.wait_for_url(f"**/backoffice/payments/{done[1]['id']}")
            assert f"#{done[1]['id']}" in (await page.text_content("h1") or "")
            assert (await page.text_content("#external-id") or "").strip() == done[1]["external_id"]
            assert await page.locator(".attempt").count() == 1
            await page.click(".attempt summary")
            assert "9002222222" in (await page.text_content(".attempt pre.exchange") or "")
            assert await page.locator("#postings tbody tr").count() >= 2
            await screenshot(page, "e2e-payment-details")
            await page.context.clear_cookies()

            await login(page, base, "op")
            await page.goto(f"{base}/backoffice/routing")
            await page.click("#new-switch")
            await page.select_option("#off", "p1")
            await page.select_option("#onto", "p2")
            await page.click("#preview-switch")
            await page.wait_for_url("**/backoffice/routing/switch/confirm")
            assert (await page.text_content("#switch-services") or "").strip() == "topup"
            await screenshot(page, "e2e-switch-confirmation")
            async with env.hub.read_sessions() as s:  # still untouched while confirming
                p1 = await s.scalar(select(Provider.id).where(Provider.code == "p1"))
                assert await s.scalar(select(RouteCandidate.enabled).where(RouteCandidate.provider_id == p1))
            await page.click("#confirm-switch")
            await page.wait_for_url("**/backoffice/routing")
            assert "The switch was made." in (await page.text_content(".flash") or "")
            await screenshot(page, "e2e-switch-made")
            async with env.hub.read_sessions() as s:
                assert not await s.scalar(
                    select(RouteCandidate.enabled).where(RouteCandidate.provider_id == p1)
                )
            after = await pay_all(env, [{}])
            assert after[0]["provider"] == "p2"


async def test_tariff_proposal_and_approval_in_chromium(db_url: str) -> None:
    async with backoffice_server(db_url) as (env, base):
        await add_user(env.hub, "fin", "financial_specialist")
        await add_user(env.hub, "cfo", "cfo", language="ru")
        async with chromium() as browser:
            page = await browser.new_page()
            await login(page, base, "fin")
            await page.goto(f"{base}/backoffice/tariffs")
            await page.click("#propose")
            await page.select_option("#kind", "fee")
            await page.select_option("#channel_group", "self")
            await page.select_option("#currency", "RUB")
            await page.fill("#percent", "2")
            await page.fill("#min", "1.00")
            await page.fill("#note", "two percent")
            await page.click("#submit-proposal")
            await page.wait_for_url("**/backoffice/tariffs/proposals/*")
            assert await page.locator("#own-proposal").count() == 1
            assert await page.locator("#approve").count() == 0
            await screenshot(page, "e2e-tariff-proposed")
            await page.context.clear_cookies()

            await login(page, base, "cfo")
            await page.goto(f"{base}/backoffice/tariffs/proposals?status=pending")
            await page.click("a.proposal-link")
            assert "percent 2" in (await page.text_content("#proposed-rule") or "")
            await page.fill("#decision-note", "согласовано")
            await page.click("#approve")
            await page.wait_for_url("**/backoffice/tariffs/proposals/*")
            assert await page.locator("#version-created").count() == 1
            assert "одобрено" in (await page.text_content("#proposal-status") or "")
            await screenshot(page, "e2e-tariff-approved-ru")
        async with env.hub.read_sessions() as s:
            row = await s.scalar(select(TariffProposal))
        assert row is not None and row.status == "approved" and row.decision_note == "согласовано"
        done = await pay_all(env, [{"amount": "100.00"}])
        assert done[0]["fee"] == "2.00"
