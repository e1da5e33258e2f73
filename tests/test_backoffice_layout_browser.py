"""Every back-office screen in headless Chromium at 1366x768 and at phone width (390x844): it renders,
its heading and menu are visible, and nothing widens the page past the screen (wide tables scroll inside
themselves). A screenshot of each screen at each size is kept as a test artifact."""

from __future__ import annotations

from typing import Any

import pytest

from browser_support import backoffice_server, chromium, login, needs_chromium, screenshot
from paymux.backoffice.framework import SECTIONS
from paymux.backoffice.sections import load
from test_backoffice_ops_support import pay_all
from test_backoffice_support import add_user

pytestmark = needs_chromium

VIEWPORTS = {"desktop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}

# How far the page is wider than the window, in CSS pixels (0 when it fits).
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def screens() -> list[str]:
    load()
    return sorted({m.path for s in SECTIONS.values() for m in s.menu})


async def check(page: Any, url: str, name: str) -> None:
    response = await page.goto(url)
    assert response is not None and response.ok, (url, response and response.status)
    assert await page.locator("h1").first.is_visible(), url
    overflow = await page.evaluate(OVERFLOW)
    await screenshot(page, name)
    assert overflow <= 0, f"{url} is {overflow}px wider than the window"


@pytest.mark.parametrize("size", sorted(VIEWPORTS))
async def test_every_screen_fits_the_window(db_url: str, size: str) -> None:
    async with backoffice_server(db_url) as (env, base):
        done = await pay_all(env, [{"account": "9001111111"}, {"account": "9002222222", "amount": "250.00"}])
        await add_user(env.hub, "admin", "administrator")
        async with chromium() as browser:
            page = await browser.new_page(viewport=VIEWPORTS[size])
            await check(page, f"{base}/backoffice/login", f"{size}-login")
            await login(page, base, "admin")
            if size == "phone":  # the menu folded under one line, opened by a tap
                assert not await page.locator("nav.menu").is_visible()
                await page.click("details.phone-menu summary")
                assert await page.locator("nav.phone-nav").is_visible()
            else:
                assert await page.locator("nav.menu").is_visible()
                assert not await page.locator("details.phone-menu").is_visible()
            paths = screens()
            assert len(paths) >= 15
            for path in paths:
                await check(page, base + path, f"{size}-{path.strip('/').replace('/', '-')}")
            await check(page, f"{base}/backoffice/payments/{done[1]['id']}", f"{size}-payment-details")
            await check(page, f"{base}/backoffice/balances/p1", f"{size}-balance-details")
