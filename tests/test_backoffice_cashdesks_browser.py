"""The Cash area in headless Chromium: the cashier opens a day at the desk, tops a wallet up with cash,
closes the day with a difference; the accountant finds the day on the home page and accepts it.
Screenshots are kept (phone width too)."""

from __future__ import annotations

from sqlalchemy import select

from browser_support import chromium, login, needs_chromium, screenshot, serving_backoffice
from paymux.cashdesks.models import CashDay
from test_backoffice_support import add_user
from wallets_support import wallets_env

pytestmark = needs_chromium
C = "/api/v1/admin/cashdesks"


async def test_cashier_closes_a_day_with_a_difference_and_the_accountant_accepts_it(db_url: str) -> None:
    async with wallets_env(db_url) as w, serving_backoffice(w.env.hub) as base:
        await add_user(w.env.hub, "kass", "cashier")
        await add_user(w.env.hub, "acc", "accountant")
        alice = await w.customer("alice", name="Alice")
        wallet = await w.open(alice, "rub")
        r = await w.http.post(
            C,
            json={
                "code": "hall",
                "name": "Main hall",
                "organization": "operator",
                "currencies": ["RUB"],
                "cashiers": ["kass"],
            },
            headers=w.env.admin,
        )
        assert r.status_code == 201, r.text
        async with chromium() as browser:
            page = await browser.new_page()
            await login(page, base, "kass")
            await page.click("nav.menu >> text=Cash desks")
            await page.wait_for_url("**/backoffice/cash")
            await page.click("a.desk-link")
            await page.wait_for_url("**/backoffice/cash/desks/*")
            await page.fill("#open-form input[name=count_RUB]", "0.00")
            await page.click("#open-day-button")
            await page.wait_for_selector("#operation-form")
            assert "The cash day is open." in (await page.text_content(".flash") or "")
            await page.select_option("#operation-form select[name=type]", "topup")
            await page.fill("#operation-form input[name=wallet]", str(wallet))
            await page.fill("#operation-form input[name=amount]", "250.00")
            await page.click("#operation-button")
            await page.wait_for_selector("#day-operations tbody tr a.receipt-link")
            assert "is done." in (await page.text_content(".flash") or "")
            await screenshot(page, "cash-desk-day-open")
            await page.fill("#close-form input[name=count_RUB]", "245.00")
            await page.click("#close-day-button")
            await page.wait_for_url("**/backoffice/cash/days/*")
            assert (await page.text_content("#reconciliation .difference") or "").strip() == "-5.00"
            await screenshot(page, "cash-day-closed")
            await page.context.clear_cookies()

            await login(page, base, "acc")
            await page.click("text=1 closed cash days wait for acceptance")
            await page.wait_for_url("**/backoffice/cash/days?state=closed")
            await page.click("a.days-link")
            await page.wait_for_selector("#accept-form")
            await page.fill("#accept-form input[name=note]", "5.00 short, booked")
            await page.click("#accept-day-button")
            await page.wait_for_selector("#day-state.status-accepted")
            assert "The cash day is accepted." in (await page.text_content(".flash") or "")
            await screenshot(page, "cash-day-accepted")
            await page.set_viewport_size({"width": 390, "height": 844})
            await page.goto(f"{base}/backoffice/cash/operations")
            await screenshot(page, "cash-operations-phone")
        async with w.env.hub.read_sessions() as s:
            day = await s.scalar(select(CashDay))
            assert day is not None and day.state == "accepted" and day.difference == {"RUB": -500}
            assert day.accepted_by == "acc" and day.accept_note == "5.00 short, booked"
