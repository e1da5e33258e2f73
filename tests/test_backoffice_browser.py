"""Headless Chromium (Playwright) on the real server: login, TOTP enrolment and check, pages, language."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator

from sqlalchemy import update

from browser_support import chromium, needs_chromium, screenshot, serving_backoffice
from harness import test_settings as hub_settings
from paymux.auth import totp
from paymux.auth.user_models import Role
from paymux.runtime import Hub
from test_backoffice_support import PASSWORD, add_user

pytestmark = needs_chromium


@contextlib.asynccontextmanager
async def serving(db_url: str) -> AsyncIterator[tuple[Hub, str]]:
    hub = Hub(hub_settings(db_url))
    try:
        async with serving_backoffice(hub, lifespan="on") as base:
            yield hub, base
    finally:
        await hub.close()


async def test_login_with_totp_enrolment_and_pages_in_chromium(db_url: str) -> None:
    async with serving(db_url) as (hub, base):
        await add_user(hub, "cfo.ana", "cfo")
        async with hub.sessions() as s:
            await s.execute(update(Role).where(Role.code == "cfo").values(require_second_factor=True))
            await s.commit()
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(f"{base}/backoffice/audit")  # not signed in: to the login page
            assert "/backoffice/login" in page.url
            await page.fill("#username", "cfo.ana")
            await page.fill("#password", PASSWORD)
            await page.click("#login")
            await page.wait_for_url("**/backoffice/2fa/enrol")
            assert await page.locator(".qr svg").count() == 1
            await screenshot(page, "e2e-totp-enrolment")
            secret = (await page.text_content("#totp-secret") or "").strip()
            await page.fill("#totp-code", totp.code_at(secret, dt.datetime.now(dt.UTC)))
            await page.click("#enrol-totp")
            await page.wait_for_url("**/backoffice/audit")  # back where the user wanted to go
            assert "Audit log" in (await page.text_content("h1") or "")
            rows = await page.locator("table tbody tr").count()
            assert rows >= 2  # the first login step and the enrolment at least

            # language and timezone, remembered on the account
            await page.goto(f"{base}/backoffice/account")
            await page.select_option("#timezone", "Europe/Chisinau")
            await page.select_option("select[name=language]", "ru")
            await page.click("#save-settings")
            await page.wait_for_url("**/backoffice/account**")
            assert "Мой профиль" in (await page.text_content("h1") or "")
            assert "Europe/Chisinau" in (await page.text_content(".who") or "")

            # log out, log in again: the authenticator's next code is asked for
            await page.click("#logout")
            await page.wait_for_url("**/backoffice/login**")
            await page.fill("#username", "cfo.ana")
            await page.fill("#password", PASSWORD)
            await page.click("#login")
            await page.wait_for_url("**/backoffice/2fa")
            later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
            await page.fill("#code", totp.code_at(secret, later))
            await page.click("#verify")
            await page.wait_for_url(f"{base}/backoffice/")
            menu = await page.text_content("nav.menu") or ""
            assert "Журнал аудита" in menu and "Пользователи" not in menu  # a CFO has no Users screen
            await screenshot(page, "e2e-start-ru")
