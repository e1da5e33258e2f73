"""Cash moved with two people's agreement, in headless Chromium: the accountant proposes a cash input
into a desk and the CFO approves it from the home page; then a customer's cash redeem request is
approved by the accountant and paid out by the cashier at an open day. Screenshots are kept."""

from __future__ import annotations

from sqlalchemy import select

from browser_support import chromium, login, needs_chromium, screenshot, serving_backoffice
from paymux.cashdesks.models import CashOperation, CashSystemOperation, RedeemRequest
from test_backoffice_support import add_user
from wallets_support import W, wallets_env

pytestmark = needs_chromium
C = "/api/v1/admin/cashdesks"


async def test_system_input_then_cash_redeem_paid_in_chromium(db_url: str) -> None:
    async with wallets_env(db_url) as w, serving_backoffice(w.env.hub) as base:
        await add_user(w.env.hub, "kass", "cashier")
        await add_user(w.env.hub, "acc", "accountant")
        await add_user(w.env.hub, "boss", "cfo")
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
        desk = r.json()["id"]
        bob = await w.customer("bob", name="Bob")
        assert (await w.topup(bob, "rub", "500.00")).status_code == 201
        wallet = bob.wallets["rub"]
        r = await w.http.post(
            f"{W}/redeem-requests",
            json={"from_wallet": wallet, "amount": "120.00", "method": "cash"},
            headers={**bob.h, "Idempotency-Key": "rq-browser"},
        )
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        assert await w.balance(bob, wallet) == "380.00"  # held

        async with chromium() as browser:
            page = await browser.new_page()
            # (1) the accountant proposes a cash input of 1,000.00 into the desk
            await login(page, base, "acc")
            await page.click("nav.menu >> text=System operations")
            await page.wait_for_url("**/backoffice/cash/system")
            await page.select_option("#propose-form select[name=type]", "cash_input")
            await page.select_option("#propose-form select[name=desk]", str(desk))
            await page.fill("#propose-form input[name=currency]", "RUB")
            await page.fill("#propose-form input[name=amount]", "1000.00")
            await page.fill("#propose-form input[name=note]", "float for the hall")
            await page.click("#propose-form button[type=submit]")
            await page.wait_for_url("**/backoffice/cash/system?state=pending")
            assert "The operation waits for approval." in (await page.text_content(".flash") or "")
            assert await page.locator("#system-operations form.decide-form").count() == 0
            await page.goto(f"{base}/backoffice/cash/desks/{desk}")  # not yet in the desk
            assert (await page.text_content("#desk-cash td.num") or "").strip() == "0.00"
            await page.context.clear_cookies()

            # the CFO finds it on the home page and approves it
            await login(page, base, "boss")
            await page.click("text=1 system cash operations wait for your approval")
            await page.wait_for_url("**/backoffice/cash/system?state=pending")
            await page.fill("#system-operations form.decide-form input[name=note]", "ok")
            await page.click("#system-operations form.decide-form button.approve")
            await page.wait_for_selector(".flash")
            assert "The operation is approved." in (await page.text_content(".flash") or "")
            await page.click("nav.menu >> text=Desk balances")
            await page.wait_for_url("**/backoffice/cash/balances")
            assert "1,000.00" in (await page.text_content("table") or "")
            await screenshot(page, "cash-system-op-approved")
            await page.goto(f"{base}/backoffice/cash/desks/{desk}")
            assert (await page.text_content("#desk-cash td.num") or "").strip() == "1000.00"
            await page.context.clear_cookies()

            # (2) the accountant approves the customer's cash redeem request
            await login(page, base, "acc")
            await page.click("text=1 redeem requests wait for a decision")
            await page.wait_for_url("**/backoffice/cash/redeem?state=pending")
            await page.click("#redeem-requests form.decide-form button.approve")
            await page.wait_for_selector(".flash")
            assert "The request is approved." in (await page.text_content(".flash") or "")
            await page.context.clear_cookies()

            # the cashier opens the day and pays it out
            await login(page, base, "kass")
            assert await page.locator("text=1 redeem requests wait to be paid in cash").count() == 1
            await page.click("nav.menu >> text=Cash desks")
            await page.wait_for_url("**/backoffice/cash")
            await page.click("a.desk-link")
            await page.wait_for_url(f"**/backoffice/cash/desks/{desk}")
            await page.fill("#open-form input[name=count_RUB]", "1000.00")
            await page.click("#open-day-button")
            await page.wait_for_selector("#redeem-payouts")
            assert "120.00 RUB" in (await page.text_content("#redeem-payouts") or "")
            await page.click("#redeem-payouts button.pay-redeem")
            await page.wait_for_selector("#day-operations tbody tr a.receipt-link")
            assert "is done." in (await page.text_content(".flash") or "")
            assert await page.locator("#redeem-payouts").count() == 0
            assert (await page.text_content("#desk-cash td.num") or "").strip() == "880.00"
            assert "redeem_payout" in (await page.text_content("#day-operations") or "")
            await screenshot(page, "cash-redeem-paid")

        assert await w.balance(bob, wallet) == "380.00"
        r = await w.http.get(f"{W}/redeem-requests/{rid}", headers=bob.h)
        assert r.status_code == 200 and r.json()["state"] == "paid", r.text
        r = await w.http.get(f"{C}/{desk}", headers=w.env.admin)
        assert r.status_code == 200, r.text
        assert "880.00" in str(r.json()), r.json()
        async with w.env.hub.read_sessions() as s:
            sys_op = await s.scalar(select(CashSystemOperation))
            assert sys_op is not None and sys_op.state == "approved"
            assert sys_op.proposed_by == "acc" and sys_op.decided_by == "boss"
            req = await s.get(RedeemRequest, rid)
            assert req is not None and req.state == "paid" and req.decided_by == "acc"
            payout = await s.scalar(select(CashOperation).where(CashOperation.type == "redeem_payout"))
            assert payout is not None and payout.state == "done" and payout.cashier == "kass"
        await w.check_invariants()
