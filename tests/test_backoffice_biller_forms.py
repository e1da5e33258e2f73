"""The back office's biller forms: create and edit a biller (brand with the contrast check, legal
details, support, methods, account, webhook URL and secret kept masked, reminder policy, fee), every
problem named in words (also in Russian and Romanian), audited, refused without invoices.write."""

from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import select

from paymux.audit.models import AuditEvent
from paymux.invoices.models import Biller
from paymux.notifications.settings import NotificationSettings
from paymux.notifications.webhooks import generate_secret, unseal
from test_backoffice_support import bo_app, flash_of, follow, login, post_form

NEW = "/backoffice/billers/new"


def good(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "code": "water",
        "name": "Water Works",
        "enabled": "1",
        "brand_logo_url": "https://water.example/logo.png",
        "brand_primary_color": "#0B5394",
        "brand_accent_color": "#e69138",
        "legal_legal_name": "Water Works S.A.",
        "legal_registration_number": "1003600099999",
        "legal_vat_number": "",
        "legal_address": "Str. Apei 2, Chisinau",
        "support_email": "help@water.example",
        "support_phone": "+37322100300",
        "support_url": "https://water.example/help",
        "methods": ["card", "bank_transfer"],
        "account_holder": "Water Works S.A.",
        "account_iban": "MD24 AG00 0225 1000 1310 4168",
        "account_bic": "agrnmd2x",
        "webhook_url": "https://billing.water.example/hooks",
        "webhook_secret": "",
        "webhook_enabled": "1",
        "reminder_days": "14, -3, 0, 7",
        "timezone": "Europe/Chisinau",
        "fee_amount": "0.35",
        "fee_currency": "eur",
    }
    data.update(over)
    return data


def errors_of(page: str) -> list[str]:
    block = page.split('id="form-errors"')[1].split("</div>")[0]
    return [html.unescape(e) for e in re.findall(r"<li>(.*?)</li>", block)]


async def biller(bo: Any, code: str = "water") -> Biller:
    async with bo.hub.read_sessions() as s:
        b = await s.scalar(select(Biller).where(Biller.code == code))
        assert b is not None
        return b


async def test_operator_creates_and_edits_a_biller(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("olga", "operator")
        await login(bo.http, "olga")
        assert 'id="new-biller"' in (await bo.http.get("/backoffice/billers")).text
        r = await bo.http.get(NEW)
        assert r.status_code == 200 and 'id="biller-form"' in r.text

        # what is wrong is named, field by field, and nothing is saved
        bad = good(
            code="Bad Code",
            brand_primary_color="#777777",
            brand_logo_url="http://water.example/logo.png",
            account_iban="MD25AG000225100013104168",
            support_email="not-an-address",
            reminder_days="3, soon",
            methods=[],
            fee_amount="1.234",
            webhook_secret="whsec_short",
        )
        r = await post_form(bo.http, NEW, NEW, bad)
        assert r.status_code == 422
        errors = errors_of(r.text)
        for expected in (
            "The code is 1 to 64 lower-case letters",
            "contrast of 4.48:1 at best",
            "The logo URL must be an https:// address.",
            "The IBAN's check digits are wrong",
            "The support e-mail is not an e-mail address.",
            "Reminder days are whole numbers",
            "Choose at least one method.",
            "The fee is an amount such as 0.50",
            "The webhook secret is whsec_",
        ):
            assert any(expected in e for e in errors), (expected, errors)
        assert 'value="Water Works"' in r.text  # the form keeps what was typed
        async with bo.hub.read_sessions() as s:
            assert await s.scalar(select(Biller.id)) is None

        # created: a webhook URL without a secret makes one, shown this once
        r = await post_form(bo.http, NEW, NEW, good())
        assert r.status_code == 200, r.text[:2000]
        shown = re.search(r'id="new-webhook-secret">(whsec_[^<]+)<', r.text)
        assert shown is not None
        b = await biller(bo)
        assert b.name == "Water Works" and b.enabled
        assert b.brand == {
            "logo_url": "https://water.example/logo.png",
            "primary_color": "#0b5394",
            "accent_color": "#e69138",
        }
        assert b.legal == {
            "legal_name": "Water Works S.A.",
            "registration_number": "1003600099999",
            "address": "Str. Apei 2, Chisinau",
        }
        assert b.support["email"] == "help@water.example" and b.support["phone"] == "+37322100300"
        assert b.account == {
            "holder": "Water Works S.A.",
            "iban": "MD24AG000225100013104168",
            "bic": "AGRNMD2X",
        }
        assert b.methods == ["card", "bank_transfer"] and b.reminder_days == [-3, 0, 7, 14]
        assert (b.fee_amount, b.fee_currency, b.timezone) == (35, "EUR", "Europe/Chisinau")
        assert b.webhook_secret and unseal(b.webhook_secret, NotificationSettings()) == shown.group(1)
        first_secret = b.webhook_secret

        # the code is taken now
        r = await post_form(bo.http, NEW, NEW, good(name="Other"))
        assert r.status_code == 422 and "A biller with the code water exists." in errors_of(r.text)

        # the edit form: today's values, the secret masked, never shown
        edit = "/backoffice/billers/water/edit"
        page = (await bo.http.get("/backoffice/billers/water")).text
        assert 'id="edit-biller"' in page and "whsec_" not in page
        r = await bo.http.get(edit)
        assert r.status_code == 200 and 'value="Water Works S.A."' in r.text and "0.35" in r.text
        assert "whsec_" not in r.text and "***" in r.text and "-3, 0, 7, 14" in r.text

        # saved with the secret field empty: the secret is kept
        changes = good(
            name="Water Works North", methods=["open_banking", "card"], legal_vat_number="MD0609999"
        )
        changes.pop("code")
        r = await post_form(bo.http, edit, edit, changes)
        assert r.status_code == 303
        assert flash_of((await follow(bo.http, r)).text) == "The biller is saved."
        b = await biller(bo)
        assert b.name == "Water Works North" and b.methods == ["card", "open_banking"]
        assert b.legal["vat_number"] == "MD0609999" and b.webhook_secret == first_secret

        # a secret typed in replaces it; a bad colour there is refused as on creation
        mine = generate_secret()
        r = await post_form(bo.http, edit, edit, {**changes, "webhook_secret": mine})
        assert r.status_code == 303
        b = await biller(bo)
        assert b.webhook_secret and unseal(b.webhook_secret, NotificationSettings()) == mine
        r = await post_form(bo.http, edit, edit, {**changes, "brand_primary_color": "#808080"})
        assert r.status_code == 422 and any("WCAG AA" in e for e in errors_of(r.text))
        assert (await biller(bo)).brand["primary_color"] == "#0b5394"
        # removing the webhook URL while typing a secret makes no sense
        r = await post_form(bo.http, edit, edit, {**changes, "webhook_url": "", "webhook_secret": mine})
        assert r.status_code == 422 and "A webhook secret needs a webhook URL." in errors_of(r.text)

        # audited, with the secret never in the audit log
        async with bo.hub.read_sessions() as s:
            events = (
                await s.scalars(
                    select(AuditEvent).where(AuditEvent.target == "biller:water").order_by(AuditEvent.seq)
                )
            ).all()
        assert [e.action for e in events] == ["biller.create", "biller.update", "biller.update"]
        assert events[1].before["name"] == "Water Works" and events[1].after["name"] == "Water Works North"
        assert events[2].after.get("webhook_secret_changed") is True
        assert all("whsec_" not in str(e.before) + str(e.after) for e in events)
        assert (await bo.http.get("/backoffice/billers/nope/edit")).status_code == 404


async def test_reading_is_not_editing(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("admin")
        await login(bo.http, "admin")
        r = await post_form(bo.http, NEW, NEW, good(webhook_url=""))
        assert r.status_code == 303  # no webhook, no secret to show
        await bo.user("sam", "support")
        http = bo.client()
        await login(http, "sam")
        assert 'id="new-biller"' not in (await http.get("/backoffice/billers")).text
        assert 'id="edit-biller"' not in (await http.get("/backoffice/billers/water")).text
        assert (await http.get(NEW)).status_code == 403
        assert (await http.get("/backoffice/billers/water/edit")).status_code == 403
        r = await post_form(http, "/backoffice/billers", "/backoffice/billers/water/edit", good(name="X"))
        assert r.status_code == 403
        r = await post_form(http, "/backoffice/billers", NEW, good(code="other"))
        assert r.status_code == 403
        assert (await biller(bo)).name == "Water Works"
        await http.aclose()


async def test_the_form_in_russian_and_romanian(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        for user, lang, words, error in (
            (
                "ru_user",
                "ru",
                ("Новый поставщик счетов", "Юридические реквизиты", "Принимаемые способы оплаты"),
                "Выберите хотя бы один способ.",
            ),
            (
                "ro_user",
                "ro",
                ("Emitent nou", "Date juridice", "Metode acceptate"),
                "Alegeți cel puțin o metodă.",
            ),
        ):
            await bo.user(user, "operator", language=lang)
            http = bo.client()
            await login(http, user)
            r = await http.get(NEW)
            assert all(w in r.text for w in words), (user, [w for w in words if w not in r.text])
            r = await post_form(http, NEW, NEW, good(methods=[]))
            assert r.status_code == 422 and error in errors_of(r.text), errors_of(r.text)
            await http.aclose()
