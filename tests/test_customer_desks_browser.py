"""The Identification, Support and Texts desks in headless Chromium: Compliance identifies a customer
who uploaded a document, support opens a ticket after checking the client's codeword, the
Administrator edits a text and sees it. Screenshots are kept (phone width too)."""

from __future__ import annotations

from browser_support import backoffice_server, chromium, login, needs_chromium, screenshot
from customer_desks_support import png
from paymux.wallets.models import WalletCustomer
from test_backoffice_support import add_user
from wallets_support import AW, W

pytestmark = needs_chromium


async def test_identification_ticket_and_text_in_chromium(db_url: str) -> None:
    async with backoffice_server(db_url) as (env, base):
        r = await env.http.post(
            f"{AW}/issuers",
            json={"code": "rub", "name": "RUB", "kind": "emoney", "currency": "RUB"},
            headers=env.admin,
        )
        assert r.status_code == 201, r.text
        r = await env.http.post(
            f"{W}/customers",
            json={"external_ref": "c-77", "name": "Maria Browser", "phone": "+37369777000"},
            headers=env.headers(),
        )
        cid = r.json()["id"]
        token = (await env.http.post(f"{W}/customers/c-77/tokens", headers=env.headers())).json()["token"]
        h = {"Authorization": f"Bearer {token}"}
        r = await env.http.post(
            f"{W}/identification/documents",
            data={"kind": "passport"},
            files={"file": ("passport.png", png(), "image/png")},
            headers=h,
        )
        assert r.status_code == 201, r.text
        assert (
            await env.http.put(f"{W}/codeword", json={"codeword": "green river"}, headers=h)
        ).status_code == 204
        await add_user(env.hub, "comp", "compliance")
        await add_user(env.hub, "sup", "support")
        await add_user(env.hub, "root")
        async with chromium() as browser:
            page = await browser.new_page()
            await login(page, base, "comp")
            await page.click("nav.menu >> text=Identification")
            await page.wait_for_url("**/backoffice/kyc")
            await page.select_option("select[name=status]", "pending")
            await page.click("form.filters button[type=submit]")
            await page.wait_for_url("**status=pending**")
            assert await page.locator("#kyc tbody a.kyc-link").count() == 1
            await page.click("a.kyc-link")
            await page.wait_for_url(f"**/backoffice/kyc/{cid}")
            assert await page.locator("a.document-link").count() == 1
            await page.select_option("#kyc-new-status", "identified")
            await page.fill("#kyc-new-reason", "passport matches the holder")
            await page.click("#kyc-save")
            await page.wait_for_url(f"**/backoffice/kyc/{cid}")
            assert "The identification status was changed." in (await page.text_content(".flash") or "")
            assert (await page.text_content("#kyc-status") or "").strip() == "identified"
            await screenshot(page, "kyc-customer-identified")
            async with env.hub.read_sessions() as s:
                c = await s.get(WalletCustomer, cid)
                assert c is not None and c.identification == "identified"
            await page.context.clear_cookies()

            await login(page, base, "sup")
            await page.click("nav.menu >> text=Clients")
            await page.fill("input[name=q]", "777000")
            await page.click("form.filters button[type=submit]")
            await page.wait_for_url("**q=777000**")
            await page.click("a.client-link")
            await page.wait_for_url(f"**/backoffice/support/clients/{cid}")
            await page.fill("#ticket-codeword", "green river")
            await page.fill("#ticket-subject", "Cannot withdraw")
            await page.fill("#ticket-message", "Client says the withdrawal was refused.")
            await page.click("#ticket-create")
            await page.wait_for_url("**/backoffice/support/tickets/*")
            assert "The ticket was created." in (await page.text_content(".flash") or "")
            assert "Client says the withdrawal was refused." in (
                await page.text_content("#ticket-messages") or ""
            )
            await screenshot(page, "support-ticket-created")
            await page.set_viewport_size({"width": 390, "height": 844})
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, overflow
            await screenshot(page, "support-ticket-phone")
            await page.set_viewport_size({"width": 1280, "height": 900})
            await page.context.clear_cookies()

            await login(page, base, "root")
            await page.click("nav.menu >> text=Texts")
            await page.wait_for_url("**/backoffice/texts")
            await page.fill("#texts-search", "Log out")
            await page.click("#texts-find")
            await page.wait_for_url("**q=Log+out**")
            row = page.locator("#texts tbody tr", has=page.locator("code", has_text="Log out")).first
            await row.locator("form.text-edit").first.locator("textarea").fill("Sign out now")
            await row.locator("form.text-edit").first.locator("button").click()
            await page.wait_for_url("**/backoffice/texts?q=Log+out**")
            assert "The text was saved." in (await page.text_content(".flash") or "")
            assert (await page.text_content("#logout") or "").strip() == "Sign out now"
            await screenshot(page, "texts-edited")
