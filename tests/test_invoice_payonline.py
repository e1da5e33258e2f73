"""The ``payonline`` payment method (PayOnline's hosted form and CallbackUrl) against its emulator,
over real HTTP: the SecurityKey rule from PayOnline's published example, a card payment approved and
one declined, forged and repeated callbacks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from harness import hub_env
from invoices_support import AB
from paymux.invoices.methods.payonline import security_key
from paymux.providers.emulators.payonline import create_app
from paymux.providers.emulators.server import run_emulator
from paypage_support import BILLER, EMPTY_CATALOG, Pay, attempt_status, form_action, methods_shown

MERCHANT, KEY = "56123", "3844908d-4c2a-42e1-9be0-91bb5d068d22"
CALLBACK = "/api/v1/paymethods/payonline/callback"


def test_security_key_is_payonlines_published_example() -> None:
    fields = [
        ("MerchantId", "12345"),
        ("OrderId", "56789"),
        ("Amount", "9.99"),
        ("Currency", "USD"),
        ("ValidUntil", "2010-01-29 16:10:00"),
    ]
    assert security_key(fields, KEY) == "d31abce556db686f4b097392a00d7a27"


@contextlib.asynccontextmanager
async def payonline_env(db_url: str) -> AsyncIterator[tuple[Pay, str]]:
    async with contextlib.AsyncExitStack() as stack:
        emu = await stack.enter_async_context(run_emulator(create_app(MERCHANT, KEY)))
        methods = {
            "payonline": {"url": f"{emu}/ru/payment/", "merchant_id": MERCHANT, "private_security_key": KEY}
        }
        env = await stack.enter_async_context(
            hub_env(db_url, run_workers=False, catalog=EMPTY_CATALOG, deposits={}, paymethods=methods)
        )
        r = await env.http.post(
            AB, json={**BILLER, "methods": ["bank_transfer", "payonline"]}, headers=env.admin
        )
        assert r.status_code == 201, r.text
        assert r.json()["methods"] == ["bank_transfer", "payonline"]
        r = await env.http.post(f"{AB}/power/keys", json={"name": "billing"}, headers=env.admin)
        assert r.status_code == 201, r.text
        key = r.json()["key"]
        browser = await stack.enter_async_context(httpx.AsyncClient(timeout=20, follow_redirects=False))
        r = await browser.post(f"{emu}/_emulator/config", json={"callback_url": env.base + CALLBACK})
        assert r.status_code == 200
        yield Pay(env, key, emu, emu, browser), emu


async def _pay_on_form(pay: Pay, emu: str, token: str, action: str) -> httpx.Response:
    page = await pay.browser.get(pay.url(f"/pay/{token}?lang=ru"))
    assert page.status_code == 200 and "payonline" in methods_shown(page.text)
    assert "Карта (PayOnline)" in page.text  # the plug-in's own label, in the payer's language
    to_form = await pay.start(token, "payonline")
    location = to_form.headers["location"]
    assert location.startswith(f"{emu}/ru/payment/?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert (query["MerchantId"], query["Amount"], query["Currency"]) == (MERCHANT, "120.50", "EUR")
    signed = [
        (k, query[k])
        for k in ("MerchantId", "OrderId", "Amount", "Currency", "ValidUntil", "OrderDescription")
    ]
    assert query["SecurityKey"] == security_key(signed, KEY)
    form = await pay.follow(to_form)
    assert form.status_code == 200 and 'name="CardNumber"' in form.text, form.text
    hidden = dict(query)
    back = await pay.browser.post(
        f"{emu}{form_action(form.text)}", data={**hidden, "CardNumber": "4111111111111111", "action": action}
    )
    assert back.status_code == 303 and back.headers["location"].startswith(
        f"{pay.env.base}/pay/{token}/return/"
    )
    return await pay.follow(back)


async def test_card_payment_on_payonlines_form_pays_the_invoice_once(db_url: str) -> None:
    async with payonline_env(db_url) as (pay, emu):
        token = await pay.invoice("PO-1")
        result = await _pay_on_form(pay, emu, token, "pay")
        assert attempt_status(result.text) == "approved", result.text
        invoice = await pay.get_invoice("PO-1")
        assert invoice["status"] == "paid" and invoice["paid_amount"] == "120.50"
        [txn] = (await pay.browser.get(f"{emu}/_emulator/transactions")).json()
        assert txn["callbacks"] == [200]
        # the same callback again (PayOnline repeats until it gets 200): nothing is paid twice
        again = await pay.browser.post(f"{emu}/_emulator/transactions/{txn['id']}/callback")
        assert again.json()["status"] == 200
        assert (await pay.get_invoice("PO-1"))["paid_amount"] == "120.50"


async def test_declined_payment_leaves_the_invoice_open(db_url: str) -> None:
    async with payonline_env(db_url) as (pay, emu):
        token = await pay.invoice("PO-2")
        result = await _pay_on_form(pay, emu, token, "decline")
        assert attempt_status(result.text) == "declined", result.text
        assert (await pay.get_invoice("PO-2"))["status"] == "open"


async def test_forged_or_incomplete_callbacks_are_refused(db_url: str) -> None:
    async with payonline_env(db_url) as (pay, _emu):
        token = await pay.invoice("PO-3")
        to_form = await pay.start(token, "payonline")
        order = parse_qs(urlsplit(to_form.headers["location"]).query)["OrderId"][0]
        fields = [
            ("DateTime", "2026-12-07 10:00:00"),
            ("TransactionID", "1"),
            ("OrderId", order),
            ("Amount", "120.50"),
            ("Currency", "EUR"),
        ]
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        forged = urlencode([*fields, ("SecurityKey", security_key(fields, "not-the-key"))])
        r = await pay.http.post(CALLBACK, content=forged, headers=headers)
        assert r.status_code == 401 and "SecurityKey" in r.json()["detail"]
        r = await pay.http.post(CALLBACK, content=urlencode(fields[:3]), headers=headers)
        assert r.status_code == 401 and "lacks" in r.json()["detail"]
        assert (await pay.get_invoice("PO-3"))["status"] == "open"
        # signed with the real key: the callback pays
        genuine = urlencode([*fields, ("SecurityKey", security_key(fields, KEY))])
        r = await pay.http.post(CALLBACK, content=genuine, headers=headers)
        assert r.status_code == 200, r.text
        assert (await pay.get_invoice("PO-3"))["status"] == "paid"


async def test_billers_take_only_installed_methods(db_url: str) -> None:
    async with payonline_env(db_url) as (pay, _emu):
        r = await pay.http.post(
            AB, json={**BILLER, "code": "other", "methods": ["card", "no_such"]}, headers=pay.env.admin
        )
        assert r.status_code == 422 and "unknown payment method" in r.text


async def test_a_billers_own_merchant_account_signs_its_callbacks(db_url: str) -> None:
    async with payonline_env(db_url) as (pay, _emu):
        own = {"merchant_id": "77001", "private_security_key": "the-billers-own-key"}
        r = await pay.http.put(f"{AB}/power/methods/payonline", json=own, headers=pay.env.admin)
        assert r.status_code in (200, 201), r.text
        token = await pay.invoice("PO-4")
        to_form = await pay.start(token, "payonline")
        query = {k: v[0] for k, v in parse_qs(urlsplit(to_form.headers["location"]).query).items()}
        assert query["MerchantId"] == "77001"
        fields = [
            ("DateTime", "2026-12-07 10:00:00"),
            ("TransactionID", "9"),
            ("OrderId", query["OrderId"]),
            ("Amount", "120.50"),
            ("Currency", "EUR"),
        ]
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        hub_wide = urlencode([*fields, ("SecurityKey", security_key(fields, KEY))])
        r = await pay.http.post(CALLBACK, content=hub_wide, headers=headers)
        assert r.status_code == 401  # the hub-wide key does not sign for a biller with its own
        billers = urlencode([*fields, ("SecurityKey", security_key(fields, own["private_security_key"]))])
        r = await pay.http.post(CALLBACK, content=billers, headers=headers)
        assert r.status_code == 200, r.text
        assert (await pay.get_invoice("PO-4"))["status"] == "paid"
        shown = (await pay.http.get(f"{AB}/power", headers=pay.env.admin)).text
        assert "the-billers-own-key" not in shown
