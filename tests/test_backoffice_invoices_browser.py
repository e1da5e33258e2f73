"""The Collections area in headless Chromium at phone width (390x844): every page fits the screen (wide
tables scroll in their own box); the operator finds an invoice from the menu and sends a reminder
with the button. Screenshots are kept."""

from __future__ import annotations

from browser_support import backoffice_server, chromium, login, needs_chromium, screenshot
from test_backoffice_invoices import book
from test_backoffice_support import add_user

pytestmark = needs_chromium

PHONE = {"width": 390, "height": 844}
WIDTH = "() => document.scrollingElement.scrollWidth"


async def test_the_collections_pages_fit_a_phone_and_the_reminder_button_works(db_url: str) -> None:
    async with backoffice_server(db_url) as (env, base):
        ids = await book(env.hub)
        await add_user(env.hub, "op", "operator")
        async with chromium() as browser:
            page = await browser.new_page(viewport=PHONE)
            await login(page, base, "op")
            for path, name in (
                ("/backoffice/collections", "collections-dashboard"),
                ("/backoffice/invoices", "collections-invoices"),
                (f"/backoffice/invoices/{ids['PAID-1']}", "collections-invoice"),
                ("/backoffice/billers", "collections-billers"),
                ("/backoffice/billers/power", "collections-biller"),
                ("/backoffice/billers/power/deliveries", "collections-deliveries"),
            ):
                response = await page.goto(f"{base}{path}")
                assert response is not None and response.status == 200, path
                width = await page.evaluate(WIDTH)
                assert width <= PHONE["width"], (path, width)
                await screenshot(page, name)
            await page.set_viewport_size({"width": 1280, "height": 900})
            await page.goto(f"{base}/backoffice/")
            await page.click("nav.menu >> text=Invoices")
            await page.wait_for_url("**/backoffice/invoices")
            await page.fill("input[name=q]", "OPEN-1")
            await page.click("form.filters button[type=submit]")
            await page.wait_for_url("**q=**")
            assert await page.locator("#invoices tbody tr").count() == 1
            await page.click("a.invoice-link")
            await page.wait_for_url(f"**/backoffice/invoices/{ids['OPEN-1']}")
            await page.click("#send-reminder")
            await page.wait_for_url(f"**/backoffice/invoices/{ids['OPEN-1']}")
            assert "The reminder is sent." in (await page.text_content(".flash") or "")
            assert await page.locator("#timeline tr.event-reminder").count() == 1
            await screenshot(page, "collections-reminded")
