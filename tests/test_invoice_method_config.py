"""A biller's own settings of a payment method (both databases, over HTTP, against a second acquirer
emulator that knows only the biller's secret): set through the admin API, masked in every read and
in the audit log, kept when sent back masked; the biller's invoices are paid through its own
acquirer and merchant id; a callback signed with the hub's secret is refused for that biller and
accepted again once the biller's settings are dropped."""

from __future__ import annotations

import orjson
from sqlalchemy import select

from paymux.audit.models import AuditEvent
from paymux.invoices.methods.base import SIGNATURE_HEADER, sign
from paymux.invoices.models import Biller, InvoiceAttempt
from paymux.providers.emulators.acquirer import create_app as acquirer_app
from paymux.providers.emulators.server import run_emulator
from paypage_support import CARD_SECRET, pay_env

OWN_SECRET = "power-own-acquirer-secret-1f2e3d"
AB = "/api/v1/admin/billers"
CB = "/api/v1/paymethods/card/callback"


def signed(secret: str, body: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    raw = orjson.dumps(body)
    return raw, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, raw)}


async def test_biller_own_card_settings(db_url: str) -> None:
    async with run_emulator(acquirer_app(OWN_SECRET, late_seconds=0.2)) as own, pay_env(db_url) as p:
        admin = p.env.admin
        put = await p.http.put(
            f"{AB}/power/methods/card",
            json={"url": own, "merchant": "power-own-mid", "secret": OWN_SECRET},
            headers=admin,
        )
        assert put.status_code == 200, put.text
        shown = put.json()["method_config"]
        assert shown == {"card": {"url": own, "merchant": "power-own-mid", "secret": "***"}}
        for path in (f"{AB}/power", AB):
            r = await p.http.get(path, headers=admin)
            assert r.status_code == 200 and OWN_SECRET not in r.text and "power-own-mid" in r.text

        # paid through the biller's own acquirer (its secret signs the request and the callback)
        token = await p.invoice("OWN-1")
        start = await p.browser.post(p.url(f"/pay/{token}/methods/card"))
        assert start.status_code == 303 and start.headers["location"].startswith(own + "/checkout/")
        p.acquirer = own
        result = await p.pay_by_card_from(start, token, "4242424242424242")
        assert 'data-attempt="approved"' in result.text
        assert (await p.get_invoice("OWN-1"))["status"] == "paid"

        # a callback signed with the hub's secret: refused for this biller; with its own: applied
        token2 = await p.invoice("OWN-2")
        start = await p.browser.post(p.url(f"/pay/{token2}/methods/card"))
        assert start.status_code == 303
        async with p.env.hub.read_sessions() as s:
            ref = (
                await s.scalars(select(InvoiceAttempt.reference).order_by(InvoiceAttempt.id.desc()))
            ).first()
        assert ref is not None
        event = {"reference": ref, "status": "approved", "amount": 12050, "currency": "EUR", "id": "x1"}
        body, headers = signed(CARD_SECRET, event)
        r = await p.http.post(CB, content=body, headers=headers)
        assert r.status_code == 401 and r.json()["type"].endswith("invalid-signature")
        assert (await p.get_invoice("OWN-2"))["status"] == "open"

        # the settings sent back as read (the secret masked) keep the secret
        again = await p.http.put(f"{AB}/power/methods/card", json=shown["card"], headers=admin)
        assert again.status_code == 200
        async with p.env.hub.read_sessions() as s:
            stored = (await s.scalar(select(Biller).where(Biller.code == "power"))).method_config  # type: ignore[union-attr]
        assert stored["card"]["merchant"] == "power-own-mid"
        assert stored["card"]["secret"] == OWN_SECRET or stored["card"]["secret"].startswith("fernet:")
        body, headers = signed(OWN_SECRET, event)
        r = await p.http.post(CB, content=body, headers=headers)
        assert r.status_code == 200 and r.json()["status"] == "approved", r.text
        assert (await p.get_invoice("OWN-2"))["status"] == "paid"

        # bad settings: refused with a problem
        for bad in ({"secret": {"nested": "x"}}, {"Bad-Name": "x"}, {"k": "a\x00b"}):
            r = await p.http.put(f"{AB}/power/methods/open_banking", json=bad, headers=admin)
            assert r.status_code == 422, bad
        r = await p.http.put(f"{AB}/power/methods/open_banking", json={"secret": "***"}, headers=admin)
        assert r.status_code == 422 and "mask" in r.json()["detail"]  # a mask with nothing behind it
        r = await p.http.put(f"{AB}/power/methods/nope", json={}, headers=admin)
        assert r.status_code == 422

        # dropped: the hub's secret checks this biller's callbacks again
        token3 = await p.invoice("OWN-3")
        r = await p.http.delete(f"{AB}/power/methods/card", headers=admin)
        assert r.status_code == 200 and r.json()["method_config"] == {}
        start = await p.browser.post(p.url(f"/pay/{token3}/methods/card"))
        assert start.status_code == 303 and not start.headers["location"].startswith(own)
        async with p.env.hub.read_sessions() as s:
            ref3 = (
                await s.scalars(select(InvoiceAttempt.reference).order_by(InvoiceAttempt.id.desc()))
            ).first()
        body, headers = signed(CARD_SECRET, {**event, "reference": ref3, "id": "x3"})
        assert (await p.http.post(CB, content=body, headers=headers)).status_code == 200

        async with p.env.hub.read_sessions() as s:
            audit = (
                await s.scalars(select(AuditEvent).where(AuditEvent.action == "biller.method_config"))
            ).all()
        assert len(audit) == 3
        assert all(OWN_SECRET not in orjson.dumps([a.before, a.after]).decode() for a in audit)
