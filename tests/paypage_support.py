"""Helpers for the hosted payment page tests (no tests here): a hub on loopback with the card
acquirer and open banking emulators, a biller taking every method, and walking the redirects."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import urljoin

import httpx

from harness import Env, hub_env
from invoices_support import AB, INV
from paymux.providers.emulators.acquirer import create_app as acquirer_app
from paymux.providers.emulators.openbank import create_app as openbank_app
from paymux.providers.emulators.server import run_emulator

CARD_SECRET = "card-secret-for-tests"
BANK_SECRET = "bank-secret-for-tests"
EMPTY_CATALOG: dict[str, Any] = {"providers": [], "channels": []}  # the page needs none

BILLER: dict[str, Any] = {
    "code": "power",
    "name": "Power Co",
    "brand": {"logo_url": "https://cdn.example/power.png", "primary_color": "#7a1f5c"},
    "support": {"email": "help@power.example", "phone": "+37322123456", "url": "https://power.example/help"},
    "methods": ["card", "open_banking", "redirect", "bank_transfer"],
    "account": {"holder": "Power Co", "iban": "MD24AG000225100013104168", "bic": "AGRNMD2X"},
}


def inv(number: str = "INV-1", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "number": number,
        "amount": "120.50",
        "currency": "EUR",
        "due_date": "2030-01-31",
        "payer": {"name": "Ion Popescu", "language": "ro"},
        "description": "Electricity, December",
        "lines": [{"description": "Energy, kWh", "quantity": 241, "amount": "0.50"}],
    }
    body.update(over)
    return body


@dataclass
class Pay:
    env: Env
    key: str
    acquirer: str
    bank: str
    browser: httpx.AsyncClient  # the payer: absolute URLs, redirects walked by hand

    @property
    def http(self) -> httpx.AsyncClient:
        return self.env.http

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def invoice(self, number: str = "INV-1", **over: Any) -> str:
        """A new invoice; its payment link token."""
        r = await self.http.post(INV, json=inv(number, **over), headers=self.h)
        assert r.status_code == 201, r.text
        link: str = r.json()["payment_link"]
        return link.rsplit("/", 1)[1]

    async def get_invoice(self, number: str = "INV-1") -> dict[str, Any]:
        r = await self.http.get(f"{INV}/{number}", headers=self.h)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def url(self, path: str) -> str:
        return self.env.base + path

    async def start(self, token: str, method: str) -> httpx.Response:
        r = await self.browser.post(self.url(f"/pay/{token}/methods/{method}"))
        assert r.status_code == 303, r.text
        return r

    async def follow(self, r: httpx.Response) -> httpx.Response:
        assert r.status_code in (302, 303), (r.status_code, r.text)
        return await self.browser.get(urljoin(str(r.request.url), r.headers["location"]))

    async def submit(self, page: httpx.Response, data: dict[str, str]) -> httpx.Response:
        action = form_action(page.text)
        return await self.browser.post(urljoin(str(page.request.url), action), data=data)

    async def pay_by_card(self, token: str, number: str, action: str = "confirm") -> httpx.Response:
        """Our page -> the acquirer's checkout -> the ACS challenge -> our return page."""
        return await self.pay_by_card_from(await self.start(token, "card"), token, number, action)

    async def pay_by_card_from(
        self, to_checkout: httpx.Response, token: str, number: str, action: str = "confirm"
    ) -> httpx.Response:
        """:meth:`pay_by_card` from our page's redirect to the acquirer's checkout."""
        assert to_checkout.headers["location"].startswith(self.acquirer + "/checkout/")
        checkout = await self.follow(to_checkout)
        assert checkout.status_code == 200 and 'name="number"' in checkout.text
        to_acs = await self.submit(checkout, {"number": number, "expiry": "12/34", "cvc": "123"})
        assert to_acs.status_code == 303 and to_acs.headers["location"].startswith("/acs/"), to_acs.text
        acs = await self.follow(to_acs)
        assert acs.status_code == 200 and "3-D Secure" in acs.text
        back = await self.submit(acs, {"action": action})
        assert back.status_code == 303
        assert back.headers["location"].startswith(f"{self.env.base}/pay/{token}/return/at_")
        result = await self.follow(back)
        assert result.status_code == 200, result.text
        return result

    async def wait_attempt(self, page: httpx.Response, want: str, within: float = 10) -> httpx.Response:
        """Reload the return page (as its meta refresh does) until the attempt is ``want``."""
        deadline = time.monotonic() + within
        while attempt_status(page.text) != want:
            assert time.monotonic() < deadline, attempt_status(page.text)
            assert 'http-equiv="refresh"' in page.text
            await asyncio.sleep(0.2)
            page = await self.browser.get(str(page.request.url))
        return page


def form_action(html: str) -> str:
    m = re.search(r'<form method="post" action="([^"]+)"', html)
    assert m, html
    return unescape(m.group(1))


def attempt_status(html: str) -> str | None:
    m = re.search(r'data-attempt="([a-z]+)"', html)
    return m.group(1) if m else None


def methods_shown(html: str) -> list[str]:
    return re.findall(r'data-method="([a-z_]+)"', html)


@contextlib.asynccontextmanager
async def pay_env(
    db_url: str,
    *,
    late_seconds: float = 1.0,
    confirm_seconds: float = 0.3,
    settings: dict[str, Any] | None = None,
    **biller: Any,
) -> AsyncIterator[Pay]:
    async with contextlib.AsyncExitStack() as stack:
        acq = await stack.enter_async_context(
            run_emulator(acquirer_app(CARD_SECRET, late_seconds=late_seconds))
        )
        bank = await stack.enter_async_context(
            run_emulator(openbank_app(BANK_SECRET, confirm_seconds=confirm_seconds))
        )
        template = (
            bank + "/redirect?reference={reference}&amount={amount}&currency={currency}"
            "&return_url={return_url}&callback_url={callback_url}"
        )
        methods = {
            "card": {"url": acq, "secret": CARD_SECRET, "merchant": "power"},
            "open_banking": {"url": bank, "secret": BANK_SECRET},
            "redirect": {
                "url_template": template,
                "status_url_template": bank + "/api/references/{reference}",
                "secret": BANK_SECRET,
            },
        }
        env = await stack.enter_async_context(
            hub_env(
                db_url,
                run_workers=False,
                catalog=EMPTY_CATALOG,
                deposits={},
                paymethods=methods,
                **(settings or {}),
            )
        )
        r = await env.http.post(AB, json={**BILLER, **biller}, headers=env.admin)
        assert r.status_code == 201, r.text
        r = await env.http.post(f"{AB}/power/keys", json={"name": "billing"}, headers=env.admin)
        assert r.status_code == 201, r.text
        browser = await stack.enter_async_context(httpx.AsyncClient(timeout=20, follow_redirects=False))
        yield Pay(env, r.json()["key"], acq, bank, browser)
