"""The hosted payment page in headless Chromium: a payer opens the link at desktop and phone width,
pays by card through the acquirer emulator's checkout and 3-D Secure challenge, and lands on the
result page; screenshots are kept in the test's tmp dir."""

from __future__ import annotations

from pathlib import Path

from browser_support import chromium, needs_chromium
from paypage_support import pay_env

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@needs_chromium
async def test_pay_by_card_in_chromium(db_url: str, tmp_path: Path) -> None:
    async with pay_env(db_url) as p, chromium() as browser:
        tokens = {"phone": await p.invoice("INV-P"), "desktop": await p.invoice("INV-D")}
        for name, size in (("phone", PHONE), ("desktop", DESKTOP)):
            context = await browser.new_context(viewport=size, java_script_enabled=False)
            page = await context.new_page()
            await page.goto(f"{p.env.base}/pay/{tokens[name]}?lang=en")
            assert await page.title() == f"Invoice INV-{name[0].upper()} - Power Co"
            # nothing wider than the screen, the keyboard reaches the controls
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= size["width"], width
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.tagName") == "A"  # the skip link
            await page.screenshot(path=str(tmp_path / f"pay-{name}.png"), full_page=True)
            await page.click("#method-card button")
            assert page.url.startswith(p.acquirer + "/checkout/")
            await page.fill("#number", "4242 4242 4242 4242")
            await page.fill("#expiry", "12/34")
            await page.fill("#cvc", "123")
            await page.click("#pay")
            assert "/acs/" in page.url
            await page.click("#confirm")
            assert page.url.startswith(f"{p.env.base}/pay/{tokens[name]}/return/at_")
            status = page.locator("[data-attempt]")
            assert await status.get_attribute("data-attempt") == "approved"
            assert "Payment approved" in await status.inner_text()
            await page.screenshot(path=str(tmp_path / f"paid-{name}.png"), full_page=True)
            await page.click("text=Back to the invoice")
            assert await page.locator("[data-closed=paid]").count() == 1
            await context.close()
        for name in ("pay-phone", "pay-desktop", "paid-phone", "paid-desktop"):
            assert (tmp_path / f"{name}.png").stat().st_size > 5000
        assert (await p.get_invoice("INV-P"))["status"] == "paid"
        assert (await p.get_invoice("INV-D"))["status"] == "paid"
