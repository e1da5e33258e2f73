"""The back office's unmatched receipts and payouts (Collections): a camt.054 uploaded through the page
(one line matched by its RF reference, the others queued), a queued receipt matched to an invoice
through the form (the invoice becomes paid), another ignored with a note, a wrong invoice number shown
as a message; the day's payouts made through the form, listed, their pain.001 downloaded (or the
missing bank details shown); both lists exported to Excel; refused without invoices.write."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from paymux.audit.models import AuditEvent
from paymux.db.base import utcnow
from paymux.invoices.models import Invoice, InvoicePayout, InvoiceReceipt
from statements_support import Entry, camt
from test_backoffice_invoices import book
from test_backoffice_support import bo_app, flash_of, follow, form_token, login, post_form

R = "/backoffice/collections/receipts"
PO = "/backoffice/collections/payouts"
DEBTOR = {
    "PAYMUX_SETTLEMENT_DEBTOR_NAME": "Paymux Hub SRL",
    "PAYMUX_SETTLEMENT_DEBTOR_IBAN": "MD24AG000225100013104168",
    "PAYMUX_SETTLEMENT_DEBTOR_BIC": "AGRNMD2X",
}


def rows_of(content: bytes) -> list[tuple[object, ...]]:
    assert content[:2] == b"PK"
    ws = load_workbook(io.BytesIO(content)).active
    assert ws is not None
    return list(ws.iter_rows(values_only=True))


async def test_statement_upload_match_ignore_and_payouts(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in DEBTOR:
        monkeypatch.delenv(k, raising=False)
    async with bo_app(db_url) as bo:
        await book(bo.hub)
        async with bo.hub.read_sessions() as s:
            late = await s.scalar(select(Invoice).where(Invoice.number == "LATE-1"))
        assert late is not None and late.reference
        await bo.user("olga", "operator")
        await login(bo.http, "olga")
        home = (await bo.http.get("/backoffice/")).text
        assert f'href="{R}"' in home and f'href="{PO}"' in home

        # without a status the page is the queue (waiting)
        r = await bo.http.get(R)
        assert r.status_code == 303 and r.headers["location"].endswith("status=waiting")
        page = await follow(bo.http, r)
        assert 'id="statement-form"' in page.text and "No receipts." in page.text

        statement = camt(
            [
                Entry("120.50", "BANK-1", payer="Maria Rusu", rf=late.reference),
                Entry("50.00", "BANK-2", payer="Somebody Else", text="for the power bill"),
                Entry("7.00", "BANK-3", payer="Stranger", text="wrong account"),
            ],
            kind="054",
        )
        token = form_token(page.text)
        r = await bo.http.post(
            f"{R}/upload",
            data={"csrf_token": token, "format": "camt054"},
            files={"file": ("notice.xml", statement, "application/xml")},
        )
        assert r.status_code == 200, r.text[:500]
        assert re.search(r'id="statement-matched">1<', r.text)
        assert re.search(r'id="statement-unmatched">2<', r.text)
        assert re.search(r'id="statement-duplicates">0<', r.text)
        # the same file again adds nothing
        r = await bo.http.post(
            f"{R}/upload",
            data={"csrf_token": token},
            files={"file": ("notice.xml", statement, "application/xml")},
        )
        assert re.search(r'id="statement-duplicates">3<', r.text) and re.search(
            r'id="statement-matched">0<', r.text
        )
        # a file that is not a statement: the reason, no 500
        r = await bo.http.post(
            f"{R}/upload", data={"csrf_token": token}, files={"file": ("x.xml", b"<nope/>", "text/xml")}
        )
        assert "cannot be read" in flash_of((await follow(bo.http, r)).text)
        r = await bo.http.post(
            f"{R}/upload",
            data={"csrf_token": token, "format": "pdf"},
            files={"file": ("n.xml", statement, "application/xml")},
        )
        assert flash_of((await follow(bo.http, r)).text) == "Unknown statement format."

        async with bo.hub.read_sessions() as s:
            ids = {r.method_reference: r.id for r in (await s.scalars(select(InvoiceReceipt))).all()}
            late = await s.get(Invoice, late.id)
            assert late is not None and late.status == "paid"
        queue = await bo.http.get(R, params={"status": "waiting"})
        assert "Waiting: 2" in queue.text and "2 found" in queue.text
        assert "Somebody Else" in queue.text and "for the power bill" in queue.text and "50.00" in queue.text
        assert f'id="receipt-{ids["BANK-1"]}"' not in queue.text
        dash = await bo.http.get("/backoffice/collections")
        assert re.search(r'id="receipts-waiting">[^<]*2<', dash.text)

        # match BANK-2 to OPEN-1: a wrong number is a message, then the right one pays the invoice
        action = f"{R}/{ids['BANK-2']}/resolve"
        page_q = f"{R}?status=waiting"
        r = await post_form(
            bo.http, page_q, action, {"action": "match", "biller": "power", "invoice": "NOPE-9"}
        )
        shown = await follow(bo.http, r)
        assert shown.status_code == 200 and "invoice NOPE-9 of biller power not found" in flash_of(shown.text)
        r = await post_form(bo.http, page_q, action, {"action": "match", "biller": "", "invoice": "OPEN-1"})
        assert flash_of((await follow(bo.http, r)).text) == "Choose the biller."
        r = await post_form(
            bo.http, page_q, action, {"action": "match", "biller": "power", "invoice": "OPEN-1"}
        )
        assert flash_of((await follow(bo.http, r)).text) == "The receipt is matched."
        # not waiting any more
        r = await post_form(bo.http, page_q, action, {"action": "ignore", "note": "x"})
        assert "matched already" in flash_of((await follow(bo.http, r)).text)
        # ignore BANK-3 with a note
        r = await post_form(
            bo.http, page_q, f"{R}/{ids['BANK-3']}/resolve", {"action": "ignore", "note": "not ours"}
        )
        assert flash_of((await follow(bo.http, r)).text) == "The receipt is ignored."
        r = await post_form(bo.http, page_q, f"{R}/999999/resolve", {"action": "ignore"})
        assert "not found" in flash_of((await follow(bo.http, r)).text)

        async with bo.hub.read_sessions() as s:
            opened = await s.scalar(select(Invoice).where(Invoice.number == "OPEN-1"))
            assert opened is not None and opened.status == "paid" and opened.paid_amount == 5000
            by_ref = {r.method_reference: r for r in (await s.scalars(select(InvoiceReceipt))).all()}
            actions = (await s.scalars(select(AuditEvent.action))).all()
        assert by_ref["BANK-2"].status == "matched" and by_ref["BANK-2"].invoice_id == opened.id
        assert by_ref["BANK-3"].status == "ignored" and by_ref["BANK-3"].note == "not ours"
        for a in ("invoice_statement.import", "invoice_receipt.match", "invoice_receipt.ignore"):
            assert a in actions, a
        assert "Waiting: 0" in (await bo.http.get(page_q)).text
        ignored = await bo.http.get(R, params={"status": "ignored"})
        assert "not ours" in ignored.text and "1 found" in ignored.text

        # the export of the list
        x = await bo.http.get(R, params={"status": "matched", "export": "xlsx"})
        assert x.status_code == 200
        rows = rows_of(x.content)
        assert rows[0][0] == "Receipt" and len(rows) == 3
        header = rows[0]
        got = {row[header.index("Bank reference")]: row for row in rows[1:]}
        assert got["BANK-2"][header.index("Invoice")] == "power/OPEN-1"
        assert got["BANK-2"][header.index("Amount")] == "50.00"
        assert got["BANK-1"][header.index("Payer")] == "Maria Rusu"

        # payouts of today through the form; listed; pain.001 needs our bank details
        today = utcnow().astimezone(bo.hub.settings.business_tz).date()
        page = await bo.http.get(PO)
        assert page.status_code == 200 and 'id="payouts-form"' in page.text and "No payouts." in page.text
        for bad in ("31.12.2030", "9999-12-31", "0001-01-01"):
            r = await post_form(bo.http, PO, PO, {"date": bad})
            assert flash_of((await follow(bo.http, r)).text) == "Give the date.", bad
        r = await post_form(bo.http, PO, PO, {"date": today.isoformat()})
        assert r.status_code == 200, r.text[:300]
        made = r.text.split('id="payouts-made"')[1]
        assert "power" in made and "EUR" in made and "made now" in made
        async with bo.hub.read_sessions() as s:
            payout = await s.scalar(select(InvoicePayout))
            actions = (await s.scalars(select(AuditEvent.action))).all()
        assert payout is not None and payout.payout_date == today and payout.amount > 0
        assert "invoice_payout.create" in actions
        again = await post_form(bo.http, PO, PO, {"date": today.isoformat()})
        assert "made before" in again.text
        listed = await bo.http.get(PO)
        assert payout.number in listed.text and "1 found" in listed.text
        assert f"{PO}/{payout.id}/pain001" in listed.text
        x = await bo.http.get(PO, params={"export": "xlsx"})
        rows = rows_of(x.content)
        assert rows[0][:5] == ("Biller", "Date", "Currency", "Amount", "Number") and len(rows) == 2
        assert rows[1][0] == "power" and rows[1][4] == payout.number and rows[1][1] == today.isoformat()

        r = await bo.http.get(f"{PO}/{payout.id}/pain001")
        assert r.status_code == 303
        assert "PAYMUX_SETTLEMENT_DEBTOR" in flash_of((await follow(bo.http, r)).text)
        for k, v in DEBTOR.items():
            monkeypatch.setenv(k, v)
        r = await bo.http.get(f"{PO}/{payout.id}/pain001")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
        doc = ET.fromstring(r.content)
        assert payout.number in r.text and doc.tag.endswith("Document")
        assert (await bo.http.get(f"{PO}/999999/pain001")).status_code == 404


async def test_reading_without_write_and_refused_actions(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await book(bo.hub)
        await bo.user("sam", "support")
        await login(bo.http, "sam")
        page = await bo.http.get(R, params={"status": "waiting"})
        assert page.status_code == 200 and 'id="statement-form"' not in page.text
        payouts = await bo.http.get(PO)
        assert payouts.status_code == 200 and 'id="payouts-form"' not in payouts.text
        token = form_token(page.text)
        r = await bo.http.post(
            f"{R}/upload",
            data={"csrf_token": token},
            files={"file": ("n.xml", camt([Entry("1.00", "B-1")], kind="054"), "application/xml")},
        )
        assert r.status_code == 403
        r = await post_form(
            bo.http, f"{R}?status=waiting", f"{R}/1/resolve", {"action": "ignore", "note": "x"}
        )
        assert r.status_code == 403
        r = await post_form(bo.http, PO, PO, {"date": "2030-01-10"})
        assert r.status_code == 403
        async with bo.hub.read_sessions() as s:
            assert (await s.scalar(select(InvoiceReceipt))) is None
            assert (await s.scalar(select(InvoicePayout))) is None

        await bo.user("cash", "cashier")
        http = bo.client()
        await login(http, "cash")
        assert (await http.get(R, params={"status": "waiting"})).status_code == 403
        assert (await http.get(PO)).status_code == 403
        await http.aclose()


async def test_the_pages_in_russian_and_romanian(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("ru_user", "operator", language="ru")
        await bo.user("ro_user", "operator", language="ro")
        for user, words in (
            ("ru_user", ("Несопоставленные поступления", "Загрузить банковскую выписку")),
            ("ro_user", ("Încasări neasociate", "Încarcă un extras bancar")),
        ):
            http = bo.client()
            await login(http, user)
            r = await http.get(R, params={"status": "waiting"})
            assert r.status_code == 200 and all(w in r.text for w in words), user
            assert (await http.get(PO)).status_code == 200
            await http.aclose()
