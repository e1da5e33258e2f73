"""The hosted payment page on both databases: rendering per language and brand, the elements (QR
codes read back with zxing-cpp, the badge with its ETag, the button), every payment method end to
end against its emulator over HTTP (the card's 3-D Secure redirect chain, approved, declined and
late; open banking; the generic redirect; bank transfer), callbacks (signature, idempotency,
payments to a cancelled invoice flagged)."""

from __future__ import annotations

import datetime as dt
import io
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from sqlalchemy import update

from paymux.db.base import utcnow
from paymux.invoices.methods.base import (
    BUILTIN,
    SIGNATURE_HEADER,
    CallbackRejected,
    method_class,
    sign,
    verify,
)
from paymux.invoices.models import InvoiceAttempt
from paymux.invoices.pagetext import TEXT
from paypage_support import (
    BANK_SECRET,
    CARD_SECRET,
    attempt_status,
    methods_shown,
    pay_env,
)


def decode_qr(png: bytes) -> str:
    import zxingcpp
    from PIL import Image

    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)), formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1
    text: str = found[0].text
    return text


async def test_page_renders_brand_languages_and_methods(db_url: str) -> None:
    async with pay_env(db_url) as p:
        token = await p.invoice()
        r = await p.http.get(f"/pay/{token}")  # the payer's language: ro
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        page = r.text
        assert '<html lang="ro">' in page and "Factura INV-1" in page
        assert "120,50 EUR" in page and "31.01.2030" in page and "Electricity, December" in page
        assert "Energy, kWh" in page and "241" in page and "0,50" in page
        assert (
            "#7a1f5c" in page
            and 'src="https://cdn.example/power.png"' in page
            and 'alt="Logo Power Co"' in page
        )
        assert "help@power.example" in page and 'href="tel:+37322123456"' in page
        assert methods_shown(page) == ["card", "open_banking", "redirect", "bank_transfer"]
        assert f'action="/pay/{token}/methods/card?lang=ro"' in page
        assert "MD24AG000225100013104168" in page and f'src="/pay/{token}/qr.svg?kind=epc"' in page
        assert "<script" not in page  # works without JavaScript
        assert r.headers["referrer-policy"] == "no-referrer"
        assert '<label for="lang">' in page and 'name="viewport"' in page
        for lang, word, amount in (("ru", "Счёт INV-1", "120,50 EUR"), ("en", "Invoice INV-1", "120.50 EUR")):
            r = await p.http.get(f"/pay/{token}", params={"lang": lang})
            assert f'<html lang="{lang}">' in r.text and word in r.text and amount in r.text
            assert TEXT[lang]["how_to_pay"] in r.text
        r = await p.http.get(f"/pay/{token}", params={"lang": "xx"})  # unknown: the payer's
        assert '<html lang="ro">' in r.text
        # unknown, malformed or too long tokens: 404 (a page for browsers, a problem otherwise)
        for bad in ("A" * 32, "abc", "x" * 65, "bad%24token%24" + "a" * 20):
            r = await p.http.get(f"/pay/{bad}")
            assert r.status_code == 404, bad
            assert r.headers["content-type"].startswith("application/problem+json")
            r = await p.http.get(f"/pay/{bad}", headers={"Accept": "text/html"})
            assert r.status_code == 404 and "<h1>" in r.text
        for path in ("qr.png", "qr.svg", "badge.svg", "button.html"):
            r = await p.http.get(f"/pay/{'B' * 32}/{path}")
            assert r.status_code == 404 and r.json()["status"] == 404


async def test_elements(db_url: str) -> None:
    async with pay_env(db_url) as p:
        token = await p.invoice()
        r = await p.http.get(f"/pay/{token}/qr.png")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert decode_qr(r.content) == f"{p.env.base}/pay/{token}"
        r = await p.http.get(f"/pay/{token}/qr.png", params={"kind": "epc"})
        epc = decode_qr(r.content).split("\n")
        assert epc[0] == "BCD" and "MD24AG000225100013104168" in epc and "EUR120.50" in epc
        reference = (await p.get_invoice())["reference"]
        assert reference in epc
        r = await p.http.get(f"/pay/{token}/qr.png", params={"kind": "gost"})  # EUR invoice
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        r = await p.http.get(f"/pay/{token}/qr.png", params={"kind": "nope"})
        assert r.status_code == 422
        for kind in ("link", "epc"):
            r = await p.http.get(f"/pay/{token}/qr.svg", params={"kind": kind})
            assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
            root = ET.fromstring(r.content)
            assert root.tag.endswith("svg") and root.get("role") == "img"
        r = await p.http.get(f"/pay/{token}/badge.svg")
        assert r.status_code == 200 and "de plată" in r.text
        ET.fromstring(r.content)
        tag = r.headers["etag"]
        assert "max-age" in r.headers["cache-control"]
        again = await p.http.get(f"/pay/{token}/badge.svg", headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.headers["etag"] == tag and not again.content
        en = await p.http.get(f"/pay/{token}/badge.svg", params={"lang": "en"})
        assert en.headers["etag"] != tag and ">open<" in en.text
        r = await p.http.get(f"/pay/{token}/button.html", params={"lang": "en"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert f'href="{p.env.base}/pay/{token}"' in r.text and "Pay 120.50 EUR" in r.text
        assert "background:#7a1f5c" in r.text
        r = await p.http.get(f"/pay/{token}/button.html", params={"variant": "email"})
        assert r.text.startswith('<table role="presentation"') and 'bgcolor="#7a1f5c"' in r.text


async def test_gost_qr_for_rub(db_url: str) -> None:
    account = {
        "holder": "ООО Энерго",
        "bank_name": "ПАО Банк",
        "account_number": "40702810900000000001",
        "bik": "044525225",
        "correspondent_account": "30101810400000000225",
        "inn": "7701234567",
        "kpp": "770101001",
    }
    async with pay_env(db_url, account=account, methods=["bank_transfer"]) as p:
        token = await p.invoice(currency="RUB", amount="1500.00", payer={"language": "ru"})
        page = (await p.http.get(f"/pay/{token}")).text
        assert "40702810900000000001" in page and f"/pay/{token}/qr.svg?kind=gost" in page
        text = decode_qr((await p.http.get(f"/pay/{token}/qr.png", params={"kind": "gost"})).content)
        assert text.startswith("ST00012|Name=ООО Энерго|PersonalAcc=40702810900000000001")
        assert "|Sum=150000|" in text and "PayeeINN=7701234567" in text
        # the transfer attempt: instructions, no processor, no refresh
        r = await p.start(token, "transfer")
        result = await p.follow(r)
        assert attempt_status(result.text) == "pending" and 'http-equiv="refresh"' not in result.text
        assert "40702810900000000001" in result.text and TEXT["ru"]["result_transfer"] in result.text


async def test_card_approved_through_3ds_pays_once(db_url: str) -> None:
    async with pay_env(db_url) as p:
        token = await p.invoice()
        result = await p.pay_by_card(token, "4242 4242 4242 4242")
        assert attempt_status(result.text) == "approved" and 'http-equiv="refresh"' not in result.text
        got = await p.get_invoice()
        assert got["status"] == "paid" and got["paid_amount"] == "120.50" and not got["refund_review"]
        # the processor repeats its callback: nothing more is paid
        sessions = (await p.browser.get(f"{p.acquirer}/_emulator/sessions")).json()
        [session] = sessions
        assert session["callbacks"] == [200]
        for _ in range(2):
            r = await p.browser.post(f"{p.acquirer}/_emulator/sessions/{session['id']}/callback")
            assert r.json()["status"] == 200
        got = await p.get_invoice()
        assert got["paid_amount"] == "120.50"
        assert [h["to"] for h in got["history"]] == ["open", "paid"]
        # the paid invoice's page: its status, no methods; starting a method goes back to it
        page = (await p.http.get(f"/pay/{token}")).text
        assert methods_shown(page) == [] and 'data-closed="paid"' in page
        r = await p.browser.post(p.url(f"/pay/{token}/methods/card"))
        assert r.status_code == 303 and r.headers["location"].startswith(f"/pay/{token}")


@pytest.mark.parametrize(
    ("number", "action"), [("4000 0000 0000 0002", "confirm"), ("4242424242424242", "cancel")]
)
async def test_card_declined(db_url: str, number: str, action: str) -> None:
    async with pay_env(db_url) as p:
        token = await p.invoice()
        result = await p.pay_by_card(token, number, action)
        assert attempt_status(result.text) == "declined"
        assert TEXT["ro"]["result_declined"] in result.text
        got = await p.get_invoice()
        assert got["status"] == "open" and got["paid_amount"] == "0.00"
        page = (await p.http.get(f"/pay/{token}")).text
        assert "card" in methods_shown(page)  # the payer may try again


async def test_card_late_by_callback(db_url: str) -> None:
    async with pay_env(db_url, late_seconds=1.0) as p:
        token = await p.invoice()
        result = await p.pay_by_card(token, "4000 0000 0000 0259")
        assert attempt_status(result.text) == "pending" and 'http-equiv="refresh"' in result.text
        assert (await p.get_invoice())["status"] == "open"
        result = await p.wait_attempt(result, "approved")
        got = await p.get_invoice()
        assert got["status"] == "paid" and got["paid_amount"] == "120.50"
        [session] = (await p.browser.get(f"{p.acquirer}/_emulator/sessions")).json()
        assert session["callbacks"] == [200]


async def test_card_late_callback_lost_status_poll_pays_once(db_url: str) -> None:
    async with pay_env(db_url, late_seconds=0.5) as p:
        await p.browser.post(f"{p.acquirer}/_emulator/callbacks", json={"drop": True})
        token = await p.invoice()
        result = await p.pay_by_card(token, "4000000000000259")
        assert attempt_status(result.text) == "pending"
        result = await p.wait_attempt(result, "approved")  # by the return page's status poll
        [session] = (await p.browser.get(f"{p.acquirer}/_emulator/sessions")).json()
        assert session["callbacks"] == [0]  # the callback never arrived
        await p.browser.post(f"{p.acquirer}/_emulator/callbacks", json={"drop": False})
        r = await p.browser.post(f"{p.acquirer}/_emulator/sessions/{session['id']}/callback")
        assert r.json()["status"] == 200  # the late callback after all: accepted, paid once
        got = await p.get_invoice()
        assert got["paid_amount"] == "120.50" and [h["to"] for h in got["history"]] == ["open", "paid"]


async def test_callback_signature_and_lookup(db_url: str) -> None:
    async with pay_env(db_url) as p:
        token = await p.invoice()
        checkout = await p.follow(await p.start(token, "card"))
        [session] = (await p.browser.get(f"{p.acquirer}/_emulator/sessions")).json()
        body = orjson.dumps(
            {
                "id": session["id"],
                "reference": session["reference"],
                "status": "approved",
                "amount": 12050,
                "currency": "EUR",
            }
        )
        url = "/api/v1/paymethods/card/callback"
        for headers in (
            {},
            {SIGNATURE_HEADER: sign("wrong-secret", body)},
            {SIGNATURE_HEADER: sign(CARD_SECRET, body + b" ")},
            {SIGNATURE_HEADER: sign(CARD_SECRET, body, at=1_000_000_000)},  # too old
            {SIGNATURE_HEADER: "t=abc,v1=00"},
        ):
            r = await p.http.post(url, content=body, headers=headers)
            assert r.status_code == 401, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
        r = await p.http.post(
            "/api/v1/paymethods/bank_transfer/callback",
            content=body,
            headers={SIGNATURE_HEADER: sign(CARD_SECRET, body)},
        )
        assert r.status_code == 401  # a method without a processor takes no callbacks
        r = await p.http.post("/api/v1/paymethods/nope/callback", content=body)
        assert r.status_code == 404
        # the open banking method does not confirm a card attempt
        r = await p.http.post(
            "/api/v1/paymethods/open_banking/callback",
            content=body,
            headers={SIGNATURE_HEADER: sign("bank-secret-for-tests", body)},
        )
        assert r.status_code == 404
        other = orjson.dumps({"reference": "at_unknownunknownunknown", "status": "approved"})
        r = await p.http.post(url, content=other, headers={SIGNATURE_HEADER: sign(CARD_SECRET, other)})
        assert r.status_code == 404
        junk = b"[1, 2"
        r = await p.http.post(url, content=junk, headers={SIGNATURE_HEADER: sign(CARD_SECRET, junk)})
        assert r.status_code == 401
        got = await p.get_invoice()
        assert got["status"] == "open" and got["paid_amount"] == "0.00"
        # a good one, twice: paid once
        for _ in range(2):
            r = await p.http.post(url, content=body, headers={SIGNATURE_HEADER: sign(CARD_SECRET, body)})
            assert r.status_code == 200 and r.json()["status"] == "approved"
        got = await p.get_invoice()
        assert got["status"] == "paid" and got["paid_amount"] == "120.50"
        # a late decline never undoes an approval
        declined = orjson.dumps({"reference": session["reference"], "status": "declined"})
        r = await p.http.post(url, content=declined, headers={SIGNATURE_HEADER: sign(CARD_SECRET, declined)})
        assert r.status_code == 200 and r.json()["status"] == "approved"
        assert checkout.status_code == 200


async def test_payment_to_cancelled_invoice_is_flagged(db_url: str) -> None:
    async with pay_env(db_url) as p:
        token = await p.invoice()
        checkout = await p.follow(await p.start(token, "card"))
        r = await p.http.post("/api/v1/invoices/INV-1/cancel", json={"reason": "sent twice"}, headers=p.h)
        assert r.status_code == 200
        to_acs = await p.submit(checkout, {"number": "4242424242424242", "expiry": "12/34", "cvc": "123"})
        acs = await p.follow(to_acs)
        result = await p.follow(await p.submit(acs, {"action": "confirm"}))
        assert attempt_status(result.text) == "approved"
        got = await p.get_invoice()
        assert got["status"] == "cancelled" and got["paid_amount"] == "0.00" and got["refund_review"]
        page = (await p.http.get(f"/pay/{token}")).text
        assert methods_shown(page) == [] and 'data-closed="cancelled"' in page


async def test_open_banking_end_to_end(db_url: str) -> None:
    async with pay_env(db_url, confirm_seconds=0.4) as p:
        token = await p.invoice()
        to_bank = await p.start(token, "openbanking")  # the alias of open_banking
        assert to_bank.headers["location"].startswith(p.bank + "/consent/")
        consent = await p.follow(to_bank)
        assert "Power Co" in consent.text and "MD24AG000225100013104168" in consent.text
        result = await p.follow(await p.submit(consent, {"action": "authorise"}))
        assert attempt_status(result.text) == "pending" and 'http-equiv="refresh"' in result.text
        await p.wait_attempt(result, "approved")
        assert (await p.get_invoice())["status"] == "paid"
        token2 = await p.invoice("INV-2")
        consent = await p.follow(await p.start(token2, "open_banking"))
        result = await p.follow(await p.submit(consent, {"action": "reject"}))
        await p.wait_attempt(result, "declined")
        assert (await p.get_invoice("INV-2"))["status"] == "open"


async def test_redirect_method_end_to_end(db_url: str) -> None:
    async with pay_env(db_url, confirm_seconds=0.2) as p:
        token = await p.invoice(partial_allowed=True, payer={"language": "en"})
        # a first attempt the processor confirms for a part only (50.00 of 120.50)
        first = await p.start(token, "redirect")
        ref = parse_qs(urlsplit(first.headers["location"]).query)["reference"][0]
        body = orjson.dumps({"reference": ref, "status": "approved", "amount": 5000, "currency": "EUR"})
        r = await p.http.post(
            "/api/v1/paymethods/redirect/callback",
            content=body,
            headers={SIGNATURE_HEADER: sign(BANK_SECRET, body)},
        )
        assert r.status_code == 200 and r.json()["status"] == "approved"
        got = await p.get_invoice()
        assert got["status"] == "partially_paid" and got["paid_amount"] == "50.00"
        page = (await p.http.get(f"/pay/{token}")).text
        assert "70.50 EUR" in page and "Paid" in page and "partially paid" in page
        assert "redirect" in methods_shown(page)
        # the rest through the processor's pages
        to_proc = await p.start(token, "redirect")
        assert "amount=7050" in to_proc.headers["location"]
        assert to_proc.headers["location"].startswith(p.bank + "/redirect?reference=at_")
        consent = await p.follow(await p.follow(to_proc))
        result = await p.follow(await p.submit(consent, {"action": "authorise"}))
        await p.wait_attempt(result, "approved")
        got = await p.get_invoice()
        assert got["status"] == "paid" and got["paid_amount"] == "120.50"


async def test_method_not_accepted_or_failing(db_url: str) -> None:
    async with pay_env(db_url, methods=["card", "open_banking"], brand={"primary_color": "#7a7a7a"}) as p:
        token = await p.invoice()
        page = (await p.http.get(f"/pay/{token}")).text
        assert methods_shown(page) == ["card", "open_banking"]
        # a brand colour on which no text meets WCAG AA contrast: the default colour instead
        assert "#7a7a7a" not in page and "#0b5cad" in page
        r = await p.browser.post(p.url(f"/pay/{token}/methods/redirect"))
        assert r.status_code == 404  # the biller does not take it
        r = await p.browser.post(p.url(f"/pay/{token}/methods/{'x' * 40}"))
        assert r.status_code == 404
        # the processor is down: the page again, with the error, and nothing paid
        p.env.hub.settings.paymethods["card"]["url"] = "http://127.0.0.1:9"
        r = await p.browser.post(p.url(f"/pay/{token}/methods/card"))
        assert r.status_code == 502 and TEXT["ro"]["start_failed"] in r.text
        assert 'role="alert"' in r.text


async def test_invalid_card_and_return_page_of_another_invoice(db_url: str) -> None:
    async with pay_env(db_url) as p:
        token = await p.invoice()
        other = await p.invoice("INV-2")
        checkout = await p.follow(await p.start(token, "card"))
        r = await p.submit(checkout, {"number": "4242424242424241", "expiry": "12/34", "cvc": "123"})
        assert r.status_code == 422 and "not valid" in r.text  # the acquirer keeps the payer there
        [session] = (await p.browser.get(f"{p.acquirer}/_emulator/sessions")).json()
        r = await p.http.get(f"/pay/{other}/return/{session['reference']}")
        assert r.status_code == 404
        r = await p.http.get(f"/pay/{token}/return/{session['reference']}")
        assert r.status_code == 200 and attempt_status(r.text) == "pending"
        # still pending long after: expired (the payer may start again)
        async with p.env.hub.sessions() as s:
            await s.execute(
                update(InvoiceAttempt)
                .where(InvoiceAttempt.reference == session["reference"])
                .values(created_at=utcnow() - dt.timedelta(hours=2))
            )
            await s.commit()
        r = await p.http.get(f"/pay/{token}/return/{session['reference']}")
        assert attempt_status(r.text) == "expired" and 'http-equiv="refresh"' not in r.text
        # the acquirer confirms after all: the payment is not lost
        body = orjson.dumps({"reference": session["reference"], "status": "approved", "amount": 12050})
        r = await p.http.post(
            "/api/v1/paymethods/card/callback",
            content=body,
            headers={SIGNATURE_HEADER: sign(CARD_SECRET, body)},
        )
        assert r.json()["status"] == "approved" and (await p.get_invoice())["status"] == "paid"


def test_registry_and_signatures() -> None:
    assert set(BUILTIN) == {"card", "open_banking", "redirect", "bank_transfer", "payonline"}
    assert method_class("transfer") is method_class("bank_transfer")
    assert method_class("openbanking").name == "open_banking"
    body = b'{"a":1}'
    verify("s", {SIGNATURE_HEADER: sign("s", body)}, body)
    with pytest.raises(CallbackRejected):
        verify("", {SIGNATURE_HEADER: sign("", body)}, body)
    with pytest.raises(CallbackRejected):
        verify("s", {SIGNATURE_HEADER: sign("t", body)}, body)


def test_every_language_has_every_text() -> None:
    keys = set(TEXT["en"])
    assert all(set(TEXT[lang]) == keys for lang in TEXT)


def test_emulator_commands_exist() -> None:
    from typer.testing import CliRunner

    from paymux.cli import app

    for name in ("acquirer", "openbank"):
        r = CliRunner().invoke(app, ["emulator", name, "--help"])
        assert r.exit_code == 0 and "--secret" in r.output


def test_migration_0019_downgrades_and_upgrades(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import create_engine, inspect

    from paymux.db.migrate import alembic_config, upgrade

    path = tmp_path / "m.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    command.downgrade(alembic_config(url), "0018")
    engine = create_engine(f"sqlite:///{path}")
    tables = set(inspect(engine).get_table_names())
    assert "invoice_attempts" not in tables and "invoices" in tables
    engine.dispose()
    upgrade(url)
    engine = create_engine(f"sqlite:///{path}")
    assert "invoice_attempts" in inspect(engine).get_table_names()
    engine.dispose()


async def test_the_payer_asks_to_be_reminded_on_a_date(db_url: str) -> None:
    async with pay_env(db_url) as p:
        token = await p.invoice(payer={"name": "Ion Popescu", "language": "ro", "email": "ion@example.com"})
        page = await p.browser.get(p.url(f"/pay/{token}"))
        assert f'action="/pay/{token}/remind?lang=ro"' in page.text and 'name="day"' in page.text
        html = {"accept": "text/html"}
        day = (utcnow() + dt.timedelta(days=10)).date()  # the biller's calendar is UTC here
        for _ in range(2):  # asking again for the same day changes nothing
            r = await p.browser.post(
                p.url(f"/pay/{token}/remind"), data={"day": day.isoformat()}, headers=html
            )
            assert r.status_code == 303 and r.headers["location"].endswith(f"reminded={day.isoformat()}"), (
                r.text
            )
        shown = await p.follow(r)
        assert (
            shown.status_code == 200
            and 'id="reminded"' in shown.text
            and day.strftime("%d.%m.%Y") in shown.text
        )
        asked = [x for x in (await p.get_invoice())["reminders"] if x["kind"] == "requested"]
        assert [(x["day"], x["status"]) for x in asked] == [(day.isoformat(), "pending")]
        # a day in the past, or not a date: a readable message on the page, a problem for programs
        past = await p.browser.post(p.url(f"/pay/{token}/remind"), data={"day": "2001-01-01"}, headers=html)
        assert past.status_code == 422 and 'role="alert"' in past.text and "today or later" in past.text
        bad = await p.browser.post(p.url(f"/pay/{token}/remind"), data={"day": "soon"})
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
        assert len([x for x in (await p.get_invoice())["reminders"] if x["kind"] == "requested"]) == 1
        missing = await p.browser.post(p.url("/pay/" + "x" * 32 + "/remind"), data={"day": "2030-01-20"})
        assert missing.status_code == 404
