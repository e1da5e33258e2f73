"""The refund decision about what the refund hold keeps (both databases, over HTTP, the card acquirer
emulator refunding): a card payment to a paid invoice refunded through the acquirer, a bank transfer's
over-payment refunded by a payment order (its pain.001 read back), another released to the biller and
paid out with its payout; each decision once (the same again answers it, another is refused), audited,
the ledger balanced and the hold back to zero."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select

from paymux.audit.models import AuditEvent
from paymux.db.base import utcnow
from paymux.invoices.ledger import COLLECTED, HOLD, PAYABLE
from paymux.invoices.models import Biller, Invoice, InvoicePayment
from paymux.ledger.models import Account
from paymux.ledger.service import verify_ledger
from paypage_support import Pay, pay_env
from statements_support import Entry, camt

IA = "/api/v1/admin/invoices"
DEBTOR = {
    "PAYMUX_SETTLEMENT_DEBTOR_NAME": "Paymux Hub SRL",
    "PAYMUX_SETTLEMENT_DEBTOR_IBAN": "MD24AG000225100013104168",
    "PAYMUX_SETTLEMENT_DEBTOR_BIC": "AGRNMD2X",
}


async def balances(p: Pay) -> dict[str, int]:
    async with p.env.hub.read_sessions() as s:
        bid = await s.scalar(select(Biller.id).where(Biller.code == "power"))
        rows = (
            await s.execute(
                select(Account.kind, Account.balance).where(
                    Account.owner_id == bid, Account.currency == "EUR"
                )
            )
        ).all()
    return {kind: bal for kind, bal in rows if kind.startswith("biller_")}


async def payment_of(p: Pay, number: str, reference: str | None = None) -> InvoicePayment:
    async with p.env.hub.read_sessions() as s:
        q = (
            select(InvoicePayment)
            .join(Invoice, Invoice.id == InvoicePayment.invoice_id)
            .where(Invoice.number == number, InvoicePayment.excess > 0)
        )
        if reference is not None:
            q = q.where(InvoicePayment.method_reference == reference)
        found = (await s.scalars(q)).one()
    return found


async def decide(p: Pay, payment_id: int, decision: str, status: int = 200) -> dict[str, object]:
    r = await p.http.post(
        f"{IA}/payments/{payment_id}/refund-decision",
        json={"decision": decision, "note": "agreed with the payer"},
        headers=p.env.admin,
    )
    assert r.status_code == status, r.text
    out: dict[str, object] = r.json()
    return out


async def test_refund_and_release_empty_the_hold(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in DEBTOR.items():
        monkeypatch.setenv(k, v)
    async with pay_env(db_url) as p:
        # a card payment to an invoice paid meanwhile (by another attempt): all of it held
        token = await p.invoice("CARD-1")
        first = await p.start(token, "card")
        await p.pay_by_card(token, "4242424242424242")
        await p.pay_by_card_from(first, token, "5555555555554444")
        card = await payment_of(p, "CARD-1")
        assert card.excess == 12050 and card.refund_review
        # bank transfers: two over-payments of 30.00 and 5.00
        for number in ("TR-1", "TR-2"):
            await p.invoice(number, amount="50.00")
        refs = {n: (await p.get_invoice(n))["reference"] for n in ("TR-1", "TR-2")}
        st = camt(
            [
                Entry("80.00", "BANK-1", "Ana Rusu", rf=refs["TR-1"]),
                Entry("55.00", "BANK-2", "Ion", rf=refs["TR-2"]),
            ]
        )
        r = await p.http.post(f"{IA}/statements", files={"file": ("s.xml", st)}, headers=p.env.admin)
        assert r.status_code == 200 and r.json()["matched"] == 2, r.text
        tr1, tr2 = await payment_of(p, "TR-1"), await payment_of(p, "TR-2")
        assert (tr1.excess, tr2.excess) == (3000, 500)
        assert (await balances(p))[HOLD] == -(12050 + 3000 + 500)
        listed = (await p.http.get(f"{IA}/refunds", headers=p.env.admin)).json()
        assert [w["payment_id"] for w in listed["waiting"]] == [card.id, tr1.id, tr2.id] and listed[
            "decided"
        ] == []
        assert listed["waiting"][0]["held"] == "120.50"
        collected = (await balances(p))[COLLECTED]

        # the card payment refunded through the acquirer
        made = await decide(p, card.id, "refund")
        assert made["channel"] == "method" and made["amount"] == "120.50" and made["created"] is True
        sessions = (await p.browser.get(p.acquirer + "/_emulator/sessions")).json()
        refunded = [r for s in sessions for r in s["extra"].get("refunds", [])]
        assert [(r["reference"], r["amount"]) for r in refunded] == [(made["number"], 12050)]
        assert made["processor_ref"] == refunded[0]["id"]
        again = await decide(p, card.id, "refund")  # the same decision again: the same answer, no refund
        assert again["created"] is False and again["id"] == made["id"]
        assert (
            len(
                [
                    r
                    for s in (await p.browser.get(p.acquirer + "/_emulator/sessions")).json()
                    for r in s["extra"].get("refunds", [])
                ]
            )
            == 1
        )
        other = await decide(p, card.id, "release", 409)
        assert str(other["type"]).endswith("refund-decided")

        # a transfer's over-payment refunded by a payment order to the payer's account
        order = await decide(p, tr1.id, "refund")
        assert order["channel"] == "payment_order" and order["payee"] == {
            "name": "Ana Rusu",
            "iban": "DE89370400440532013000",
        }
        r = await p.http.get(str(order["pain001"]), headers=p.env.admin)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
        root = ET.fromstring(r.content)
        ns = {"p": root.tag.split("}")[0][1:]}
        tx = root.find(".//p:CdtTrfTxInf", ns)
        assert tx is not None
        assert tx.findtext("p:PmtId/p:EndToEndId", namespaces=ns) == order["number"]
        assert tx.findtext("p:Amt/p:InstdAmt", namespaces=ns) == "30.00"
        assert tx.findtext("p:CdtrAcct/p:Id/p:IBAN", namespaces=ns) == "DE89370400440532013000"

        # the other released to the biller: paid out with the day's payout
        payable = (await balances(p))[PAYABLE]
        released = await decide(p, tr2.id, "release")
        assert released["channel"] == "biller" and "pain001" not in released
        bal = await balances(p)
        assert bal[HOLD] == 0  # the hold is back to zero
        assert bal[PAYABLE] == payable - 500
        assert bal[COLLECTED] == collected - 12050 - 3000
        today = utcnow().astimezone(p.env.hub.settings.business_tz).date()
        r = await p.http.post(f"{IA}/payouts", json={"date": today.isoformat()}, headers=p.env.admin)
        assert r.status_code == 200, r.text
        assert (await balances(p))[PAYABLE] == 0

        # nothing held, unknown payment: refused
        async with p.env.hub.read_sessions() as s:
            plain = await s.scalar(select(InvoicePayment.id).where(InvoicePayment.excess == 0))
        assert plain is not None
        assert str((await decide(p, plain, "release", 409))["type"]).endswith("nothing-held")
        await decide(p, 999_999, "refund", 404)
        r = await p.http.post(
            f"{IA}/payments/{card.id}/refund-decision", json={"decision": "keep"}, headers=p.env.admin
        )
        assert r.status_code == 422
        r = await p.http.get(f"{IA}/refunds/{made['id']}/pain001", headers=p.env.admin)
        assert r.status_code == 404  # refunded through the method: no payment order

        listed = (await p.http.get(f"{IA}/refunds", headers=p.env.admin)).json()
        assert listed["waiting"] == [] and len(listed["decided"]) == 3
        for number in ("CARD-1", "TR-1", "TR-2"):
            assert (await p.get_invoice(number))["refund_review"] is False
        async with p.env.hub.read_sessions() as s:
            assert (await verify_ledger(s)).balanced
            actions = sorted(
                (
                    await s.scalars(
                        select(AuditEvent.action).where(AuditEvent.action.like("invoice_refund.%"))
                    )
                ).all()
            )
        assert actions == ["invoice_refund.refund", "invoice_refund.refund", "invoice_refund.release"]


async def test_back_office_buttons_decide_the_hold(db_url: str) -> None:
    """On the invoice's page: the held payments with "Refund to the payer" and "Release to the biller";
    a payment no method can refund is refused with the reason; released, audited, the hold empty;
    a reader sees the hold and no buttons."""
    from paymux.invoices import service
    from test_backoffice_support import bo_app, flash_of, follow, login, post_form

    async with bo_app(db_url) as bo:
        async with bo.hub.sessions() as s:
            now = utcnow()
            b = Biller(
                code="gas",
                name="Gas Co",
                brand={},
                legal={},
                support={},
                methods=["bank_transfer"],
                account={"iban": "MD24AG000225100013104168"},
                reminder_days=[],
                timezone="UTC",
                fee_amount=0,
                fee_currency="EUR",
                webhook_enabled=False,
                method_config={},
                enabled=True,
                created_at=now,
                updated_at=now,
            )
            s.add(b)
            await s.flush()
            body = {"number": "G-1", "amount": "10.00", "currency": "EUR", "due_date": "2030-01-01"}
            [res] = await service.intake(s, b, [body])
            inv = await service.invoice_of(s, b, "G-1")
            paid = await service.record_payment(s, inv, 1500, "open_banking", "ob-1")
            await s.commit()
            invoice_id, payment_id, bid = inv.id, paid.id, b.id
        assert paid.excess == 500 and res.status == 201
        await bo.user("olga", "operator")
        await bo.user("sam", "support")
        await login(bo.http, "olga")
        page = f"/backoffice/invoices/{invoice_id}"
        r = await bo.http.get(page)
        assert f'id="held-{payment_id}"' in r.text and f'id="refund-{payment_id}"' in r.text
        assert f'id="release-{payment_id}"' in r.text
        action = f"{page}/payments/{payment_id}/refund-decision"
        # open banking cannot refund here: the reason shown, nothing changed
        r = await post_form(bo.http, page, action, {"decision": "refund"})
        assert "can be refunded neither through its method" in flash_of((await follow(bo.http, r)).text)
        r = await post_form(bo.http, page, action, {"decision": "release", "note": "payer agreed"})
        shown = await follow(bo.http, r)
        assert flash_of(shown.text) == "The amount is released to the biller."
        assert f'id="decided-{payment_id}"' in shown.text and f'id="release-{payment_id}"' not in shown.text
        assert "payer agreed" in shown.text
        # another invoice's payment through this invoice's address: not found
        r = await post_form(
            bo.http,
            page,
            f"/backoffice/invoices/{invoice_id + 1}/payments/{payment_id}/refund-decision",
            {"decision": "release"},
        )
        assert r.status_code == 404
        async with bo.hub.read_sessions() as s:
            hold = await s.scalar(
                select(Account.balance).where(Account.kind == HOLD, Account.owner_id == bid)
            )
            payable = await s.scalar(
                select(Account.balance).where(Account.kind == PAYABLE, Account.owner_id == bid)
            )
            assert (await verify_ledger(s)).balanced
            actions = (
                await s.scalars(select(AuditEvent.action).where(AuditEvent.action.like("invoice_refund.%")))
            ).all()
        assert hold == 0 and payable == -1500 and actions == ["invoice_refund.release"]
        # a reader: the hold shown, no buttons, the action refused
        async with bo.client() as reader:
            await login(reader, "sam")
            r = await reader.get(page)
            assert f'id="decided-{payment_id}"' in r.text and "refund-decision" not in r.text
            r = await post_form(reader, page, action, {"decision": "refund"})
            assert r.status_code == 403
