"""The Recurring section in headless Chromium: support finds a subscriber from the menu, opens a
subscription and pauses it with a reason; the operator reads the dashboard and the failed-runs queue,
and edits a notification template. Screenshots are kept (phone width too)."""

from __future__ import annotations

import pytest

from browser_support import backoffice_server, chromium, login, needs_chromium, screenshot
from paymux.recurring.models import Subscription
from test_backoffice_recurring import _book
from test_backoffice_support import add_user

pytestmark = needs_chromium


@pytest.fixture(autouse=True)
def _engine_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMUX_RECURRING_ENABLED", "false")


async def test_support_and_operator_work_the_recurring_section_in_chromium(db_url: str) -> None:
    async with backoffice_server(db_url) as (env, base):
        ids = await _book(env.hub)
        await add_user(env.hub, "sup", "support")
        await add_user(env.hub, "op", "operator")
        async with chromium() as browser:
            page = await browser.new_page()
            await login(page, base, "sup")
            await page.click("nav.menu >> text=Subscribers")
            await page.wait_for_url("**/backoffice/recurring/customers")
            await page.fill("input[name=q]", "+37369000001")
            await page.click("form.filters button[type=submit]")
            await page.wait_for_url("**q=**")
            assert await page.locator("#customers tbody tr").count() == 1
            await page.click("a.customer-link")
            await page.wait_for_url(f"**/backoffice/recurring/customers/{ids['anna']}")
            assert await page.locator("a.subscription-link").count() == 2
            await screenshot(page, "recurring-subscriber")
            await page.goto(f"{base}/backoffice/recurring/subscriptions/{ids['monthly']}")
            await page.fill("#pause-form input[name=reason]", "customer asked by phone")
            await page.click("#pause-subscription")
            await page.wait_for_url(f"**/backoffice/recurring/subscriptions/{ids['monthly']}")
            assert "The subscription is paused." in (await page.text_content(".flash") or "")
            assert "customer asked by phone" in (await page.text_content("#sub-status") or "")
            await screenshot(page, "recurring-subscription-paused")
            async with env.hub.read_sessions() as s:
                sub = await s.get(Subscription, ids["monthly"])
                assert sub is not None and sub.status == "paused"
            await page.context.clear_cookies()

            await login(page, base, "op")
            await page.click("nav.menu >> text=Recurring")
            await page.wait_for_url("**/backoffice/recurring")
            assert await page.locator("#charts svg").count() >= 2
            await screenshot(page, "recurring-dashboard")
            await page.click("#failed-queue")
            await page.wait_for_url("**queue=failed**")
            assert await page.locator("#runs tbody tr").count() == 3
            await screenshot(page, "recurring-failed-runs")
            await page.goto(f"{base}/backoffice/notification-templates/run.paid/sms/en")
            await page.fill("textarea[name=body]", "Paid {{ amount|money(currency) }} for {{ service }}.")
            await page.click("#save-template")
            await page.wait_for_url("**/backoffice/notification-templates/run.paid/sms/en")
            preview = await page.text_content("#template-preview") or ""
            assert "Paid 150.00 RUB for Mobile top-up." in preview
            await screenshot(page, "notification-template-edited")
            await page.set_viewport_size({"width": 390, "height": 844})
            await page.goto(f"{base}/backoffice/recurring/runs")
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, overflow
            await screenshot(page, "recurring-runs-phone")
