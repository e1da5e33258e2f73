"""E-money anti-fraud in headless Chromium: a P2P transfer over a review limit, made over the customer
API, waits as an application; the Anti-fraud specialist sees it on the home page, finds it by the
customer's e-mail, approves it with a reason, and the balances move. Screenshots are kept (phone
width too)."""

from __future__ import annotations

from browser_support import chromium, login, needs_chromium, screenshot, serving_backoffice
from test_backoffice_support import add_user
from wallets_support import AW, wallets_env

pytestmark = needs_chromium


async def test_anti_fraud_approves_an_over_limit_transfer_in_chromium(db_url: str) -> None:
    async with wallets_env(db_url) as w, serving_backoffice(w.env.hub) as base:
        limit = {
            "issuer": "rub",
            "type": "p2p",
            "identification": "identified",
            "name": "p2p-review",
            "max_amount": "1000.00",
            "action": "review",
        }
        assert (await w.http.post(f"{AW}/limits", json=limit, headers=w.env.admin)).status_code == 201
        alice = await w.customer("alice", email="alice@example.md", name="Alice")
        bob = await w.customer("bob", email="bob@example.md", name="Bob")
        assert (await w.topup(alice, "rub", "5000.00")).status_code == 201
        to = await w.open(bob, "rub")
        r = await w.p2p(alice, alice.wallets["rub"], to, "2000.00")
        assert r.status_code == 202 and r.json()["state"] == "pending_review", r.text
        held = r.json()["id"]
        await add_user(w.env.hub, "af", "anti_fraud")

        async with chromium() as browser:
            page = await browser.new_page()
            await login(page, base, "af")
            await page.click("#waiting-wallet-applications a")
            await page.wait_for_url("**/backoffice/emoney/applications")
            await page.fill("form.filters input[name=email]", "alice@example.md")
            await page.click("form.filters button[type=submit]")
            await page.wait_for_url("**email=**")
            assert await page.locator("#applications tbody tr").count() == 1
            assert "p2p-review" in (await page.text_content("#applications") or "")
            await screenshot(page, "emoney-applications")
            await page.click("a.id-link")
            await page.wait_for_url(f"**/backoffice/emoney/operations/{held}")
            await page.fill("#approve-form input[name=reason]", "confirmed with the client by phone")
            await page.click("#approve-operation")
            await page.wait_for_url(f"**/backoffice/emoney/operations/{held}")
            assert "The operation is approved." in (await page.text_content(".flash") or "")
            assert (await page.text_content("#operation-state") or "").strip() == "done"
            await screenshot(page, "emoney-operation-approved")
            await page.set_viewport_size({"width": 390, "height": 844})
            await page.goto(f"{base}/backoffice/emoney/customers/{alice.id}")
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, overflow
            await screenshot(page, "emoney-customer-phone")

        assert await w.balance(alice, alice.wallets["rub"]) == "2980.00"  # 2000.00 and the 1 % fee
        assert await w.balance(bob, to) == "2000.00"
        await w.check_invariants()
