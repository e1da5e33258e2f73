"""The hosted payment page in headless Chromium: a payer opens the link at desktop and phone width,
pays by card through the acquirer emulator's checkout and 3-D Secure challenge, and lands on the
result page; screenshots are kept in the test's tmp dir."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from browser_support import chromium, needs_chromium
from paymux.notifications.delivery import Senders
from paymux.notifications.settings import NotificationSettings
from paymux.notifications.worker import NotificationWorker
from paymux.providers.emulators.server import run_emulator
from paypage_support import pay_env
from statements_support import Entry, camt
from test_notifications_delivery import Receiver


async def deliver_all(hub: Any) -> dict[int, str]:
    """One round of the notifications worker (webhooks to the biller)."""
    async with httpx.AsyncClient() as http:
        return await NotificationWorker(hub, Senders(http, NotificationSettings())).run_round()


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


@needs_chromium
async def test_card_and_bank_transfer_with_the_billers_webhooks_verified(db_url: str, tmp_path: Path) -> None:
    """End to end: one invoice paid by card in Chromium, another by bank transfer confirmed by a
    camt.054 notification; the biller's billing system (a real receiver verifying Standard Webhooks
    signatures) is told of both."""
    receiver = Receiver("")
    async with (
        run_emulator(receiver.app()) as hook_base,
        pay_env(db_url, webhook_url=f"{hook_base}/hook") as p,
        chromium() as browser,
    ):
        rotated = await p.http.post("/api/v1/admin/billers/power/webhook/secret", headers=p.env.admin)
        receiver.secret = rotated.json()["webhook_secret"]
        card, transfer = await p.invoice("INV-C"), await p.invoice("INV-T")
        context = await browser.new_context(viewport=PHONE, java_script_enabled=False)
        page = await context.new_page()
        await page.goto(f"{p.env.base}/pay/{card}?lang=en")
        await page.click("#method-card button")
        await page.fill("#number", "4242 4242 4242 4242")
        await page.fill("#expiry", "12/34")
        await page.fill("#cvc", "123")
        await page.click("#pay")
        await page.click("#confirm")
        assert await page.locator("[data-attempt]").get_attribute("data-attempt") == "approved"
        # the bank transfer: the page shows the account, the reference and the QR code to scan
        await page.goto(f"{p.env.base}/pay/{transfer}?lang=en")
        reference = (await p.get_invoice("INV-T"))["reference"]
        block = await page.locator("#method-bank_transfer").inner_text()
        assert "MD24AG000225100013104168" in block and reference.replace(" ", "") in block.replace(" ", "")
        assert await page.locator("#method-bank_transfer img").count() == 1
        await page.screenshot(path=str(tmp_path / "transfer-phone.png"), full_page=True)
        statement = camt([Entry("120.50", "BR-77", payer="Ion Popescu", rf=reference)], kind="054")
        r = await p.http.post(
            "/api/v1/admin/invoices/statements",
            files={"file": ("notification.xml", statement, "application/xml")},
            headers=p.env.admin,
        )
        assert r.status_code == 200 and r.json()["matched"] == 1, r.text
        await page.reload()
        assert await page.locator("[data-closed=paid]").count() == 1
        await page.screenshot(path=str(tmp_path / "transfer-paid-phone.png"), full_page=True)
        await context.close()
        paid: set[str] = set()
        for _ in range(100):
            await deliver_all(p.env.hub)
            paid = {
                x["payload"]["data"]["number"]
                for x in receiver.received
                if x["payload"]["type"] == "invoice.paid"
            }
            if paid == {"INV-C", "INV-T"}:
                break
            await asyncio.sleep(0.1)
        assert paid == {"INV-C", "INV-T"} and receiver.refused == []
        assert (tmp_path / "transfer-paid-phone.png").stat().st_size > 5000
