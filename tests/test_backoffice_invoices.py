"""The back office's collections: billers (keys and secret masked, webhook deliveries, upload),
invoices (search, filters, timeline, send a reminder now, cancel), the collections dashboard, every
list exported to Excel; refused without invoices.read, read-only without invoices.write."""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import select

from paymux.audit.models import AuditEvent
from paymux.db.base import utcnow
from paymux.invoices import reminders, service
from paymux.invoices.models import Biller, Invoice, InvoiceAttempt
from paymux.notifications.webhooks import generate_secret
from paymux.runtime import Hub
from test_backoffice_support import bo_app, flash_of, follow, login, post_form

TODAY = dt.date.today()


def item(number: str, due: dt.date, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "number": number,
        "amount": "120.50",
        "currency": "EUR",
        "due_date": due.isoformat(),
        "payer": {
            "name": "Ion Popescu",
            "email": "ion@example.md",
            "phone": "+37369123456",
            "language": "ro",
        },
    }
    body.update(over)
    return body


async def book(hub: Hub) -> dict[str, int]:
    """A biller with a webhook and a key, three invoices: one paid by card, one overdue, one open."""
    async with hub.sessions() as s:
        now = utcnow()
        b = Biller(
            code="power",
            name="Power Co",
            brand={"logo_url": "https://power.example/logo.png", "primary_color": "#112233"},
            legal={},
            support={},
            methods=["card", "bank_transfer"],
            account={"iban": "MD24AG000225100013104168"},
            reminder_days=[-3, 0, 7],
            timezone="Europe/Chisinau",
            fee_amount=35,
            fee_currency="EUR",
            webhook_url="https://hooks:secret-in-url@billing.power.example/hook",
            webhook_secret=generate_secret(),
            webhook_enabled=True,
            enabled=True,
            created_at=now,
            updated_at=now,
        )
        s.add(b)
        await s.flush()
        _, key = await service.issue_biller_key(s, b, "billing")
        results = await service.intake(
            s,
            b,
            [
                item("PAID-1", TODAY + dt.timedelta(days=10)),
                item(
                    "LATE-1",
                    TODAY - dt.timedelta(days=5),
                    payer={"name": "Maria Rusu", "email": "maria@example.md"},
                ),
                item("OPEN-1", TODAY + dt.timedelta(days=20), amount="50.00"),
            ],
        )
        assert [r.status for r in results] == [201, 201, 201]
        await s.flush()
        paid = await s.scalar(select(Invoice).where(Invoice.number == "PAID-1"))
        assert paid is not None
        await service.record_payment(s, paid, 12050, "card", "card-txn-1")
        await service.mark_overdue(s, TODAY)
        await s.commit()
        ids = {n: i for n, i in (await s.execute(select(Invoice.number, Invoice.id))).all()}
        return {**ids, "key": len(key)}


async def test_support_reads_the_collections_section_and_exports(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        ids = await book(bo.hub)
        await bo.user("sam", "support")
        await login(bo.http, "sam")
        home = await bo.http.get("/backoffice/")
        for path in ("/backoffice/collections", "/backoffice/invoices", "/backoffice/billers"):
            assert f'href="{path}"' in home.text

        # the dashboard: collected today, outstanding, overdue, charts with a legend over the period
        r = await bo.http.get("/backoffice/collections")
        assert r.status_code == 200
        collected = r.text.split('id="collected-today"')[1].split("</div>\n</div>")[0]
        assert "120.50" in collected
        outstanding = r.text.split('id="outstanding"')[1].split('id="overdue"')[0]
        assert "170.50" in outstanding and "2" in outstanding
        assert "120.50" in r.text.split('id="overdue"')[1].split('id="charts"')[0]
        assert r.text.count("<svg") == 2 and "Collected by day and method, EUR" in r.text
        assert 'class="legend' in r.text and ">card<" in r.text
        assert (
            TODAY.strftime("%d.%m") in r.text and (TODAY - dt.timedelta(days=29)).strftime("%d.%m") in r.text
        )

        # billers: list, detail (keys and secrets masked), deliveries
        r = await bo.http.get("/backoffice/billers")
        assert r.status_code == 200 and 'href="/backoffice/billers/power"' in r.text and "1 found" in r.text
        r = await bo.http.get("/backoffice/billers/power")
        assert r.status_code == 200 and "Power Co" in r.text and "card, bank_transfer" in r.text
        assert "-3, 0, 7" in r.text and "#112233" in r.text and "pmx_bl_" in r.text
        assert "secret-in-url" not in r.text and "whsec_" not in r.text and "***" in r.text
        assert 'id="upload-form"' not in r.text  # read-only
        latest = r.text.split('id="latest-deliveries"')[1].split("</table>")[0]
        assert "invoice.paid" in latest and "PAID-1" in latest and "LATE-1" in latest
        r = await bo.http.get("/backoffice/billers/power/deliveries")
        assert r.status_code == 200 and "invoice.paid" in r.text and "invoice.overdue" in r.text
        assert (await bo.http.get("/backoffice/billers/nope")).status_code == 404
        assert (await bo.http.get("/backoffice/billers/BAD CODE")).status_code == 404

        # invoices: search by number and payer, status, biller and due date range
        r = await bo.http.get("/backoffice/invoices")
        assert r.status_code == 200 and "3 found" in r.text
        assert "1 found" in (await bo.http.get("/backoffice/invoices", params={"q": "LATE"})).text
        assert "1 found" in (await bo.http.get("/backoffice/invoices", params={"q": "Maria"})).text
        r = await bo.http.get("/backoffice/invoices", params={"status": "overdue"})
        assert "1 found" in r.text and "LATE-1" in r.text
        r = await bo.http.get(
            "/backoffice/invoices",
            params={"due_from": TODAY.isoformat(), "due_to": (TODAY + dt.timedelta(days=15)).isoformat()},
        )
        assert "1 found" in r.text and "PAID-1" in r.text
        r = await bo.http.get("/backoffice/invoices", params={"due_from": "not-a-date", "biller": "power"})
        assert r.status_code == 200 and "3 found" in r.text

        # an invoice's timeline: created, the payment page first viewed, a method chosen there, status
        # changes, payment, webhooks
        async with bo.hub.sessions() as s:
            paid = await s.get(Invoice, ids["PAID-1"])
            assert paid is not None and paid.first_viewed_at is None
            s.add(
                InvoiceAttempt(
                    invoice_id=paid.id,
                    method="card",
                    reference="at_bo1",
                    status="approved",
                    amount=12050,
                    currency="EUR",
                )
            )
            await s.commit()
            token = paid.link_token
        for _ in range(2):  # the first view is noted, later ones change nothing
            assert (await bo.http.get(f"/pay/{token}")).status_code == 200
        async with bo.hub.read_sessions() as s:
            first = (await s.get(Invoice, ids["PAID-1"])).first_viewed_at  # type: ignore[union-attr]
        assert first is not None
        r = await bo.http.get(f"/backoffice/invoices/{ids['PAID-1']}")
        assert r.status_code == 200
        timeline = r.text.split('id="timeline"')[1]
        for kind in ("created", "viewed", "method", "status", "payment", "webhook"):
            assert f'class="event-{kind}"' in timeline, kind
        assert "at_bo1" in timeline
        assert "card-txn-1" in timeline and "120.50" in timeline
        assert "/pay/" in r.text and "/qr.png" in r.text
        assert 'id="send-reminder"' not in r.text
        assert (await bo.http.get("/backoffice/invoices/999999")).status_code == 404

        # every list exports to Excel
        for path, head, n in (
            ("/backoffice/invoices", "Invoice", 3),
            ("/backoffice/billers", "Code", 1),
            ("/backoffice/billers/power/deliveries", "Notification", 2),
        ):
            x = await bo.http.get(path, params={"export": "xlsx"})
            assert x.status_code == 200 and x.content[:2] == b"PK", path
            ws = load_workbook(io.BytesIO(x.content)).active
            assert ws is not None
            rows = list(ws.iter_rows(values_only=True))
            assert rows[0][0] == head and len(rows) == n + 1, (path, rows)
        x = await bo.http.get("/backoffice/invoices", params={"export": "xlsx", "status": "paid"})
        ws = load_workbook(io.BytesIO(x.content)).active
        assert ws is not None
        [header, row] = list(ws.iter_rows(values_only=True))
        assert row[0] == "PAID-1" and header[-1] == "Created" and row[3] == "120.50"

        # acting needs invoices.write
        page = f"/backoffice/invoices/{ids['OPEN-1']}"
        assert (await post_form(bo.http, page, f"{page}/remind", {})).status_code == 403
        assert (await post_form(bo.http, page, f"{page}/cancel", {"reason": "x"})).status_code == 403
        r = await post_form(bo.http, "/backoffice/billers/power", "/backoffice/billers/power/upload", {})
        assert r.status_code == 403


async def test_operator_reminds_cancels_and_uploads(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        ids = await book(bo.hub)
        await bo.user("olga", "operator")
        await login(bo.http, "olga")
        page = f"/backoffice/invoices/{ids['OPEN-1']}"
        r = await bo.http.get(page)
        assert 'id="send-reminder"' in r.text and 'id="cancel-invoice"' in r.text
        r = await post_form(bo.http, page, f"{page}/remind", {})
        assert r.status_code == 303
        shown = await follow(bo.http, r)
        assert flash_of(shown.text) == "The reminder is sent."
        assert 'class="event-reminder"' in shown.text and "manual" in shown.text
        # at most one a day
        r = await post_form(bo.http, page, f"{page}/remind", {})
        assert "at most one a day" in flash_of((await follow(bo.http, r)).text)
        async with bo.hub.read_sessions() as s:
            rows = await reminders.reminders_of(s, ids["OPEN-1"])
        assert [(x.kind, x.status, len(x.notifications)) for x in rows] == [("manual", "sent", 2)]

        # cancel: a reason is needed; then cancelled, audited, no more actions
        r = await post_form(bo.http, page, f"{page}/cancel", {"reason": "  "})
        assert flash_of((await follow(bo.http, r)).text) == "Give the reason."
        r = await post_form(bo.http, page, f"{page}/cancel", {"reason": "sent twice"})
        shown = await follow(bo.http, r)
        assert flash_of(shown.text) == "The invoice is cancelled."
        assert (
            'id="invoice-status" class="state-cancelled"' in shown.text
            and 'id="send-reminder"' not in shown.text
        )
        async with bo.hub.read_sessions() as s:
            actions = (await s.scalars(select(AuditEvent.action).order_by(AuditEvent.seq))).all()
        assert "invoice.remind" in actions and "invoice.cancel" in actions
        # a paid invoice cannot be cancelled: the reason is shown
        paid = f"/backoffice/invoices/{ids['PAID-1']}"
        r = await post_form(bo.http, page, f"{paid}/cancel", {"reason": "oops"})
        assert "paid" in flash_of((await follow(bo.http, r)).text)

        # upload a CSV for the biller: a result per row
        biller_page = "/backoffice/billers/power"
        token = re.search(r'name="csrf_token" value="([^"]+)"', (await bo.http.get(biller_page)).text)
        assert token is not None
        csv = (
            b"number,amount,currency,due_date\n"
            b"UP-1,10.00,EUR,2031-01-01\nUP-2,x,EUR,2031-01-01\nOPEN-1,1,EUR,2031-01-01\n"
        )
        r = await bo.http.post(
            f"{biller_page}/upload",
            data={"csrf_token": token.group(1), "mapping": ""},
            files={"file": ("batch.csv", csv, "text/csv")},
        )
        assert r.status_code == 200, r.text[:500]
        assert re.search(r'id="upload-created">1<', r.text) and re.search(r'id="upload-error">2<', r.text)
        assert (
            "amount &#39;x&#39; is not a number" in r.text
            or "amount 'x' is not a number" in html.unescape(r.text)
        )
        assert "exists with other content" in r.text
        assert "1 found" in (await bo.http.get("/backoffice/invoices", params={"q": "UP-1"})).text
        # a bad file: the reason shown, nothing taken
        r = await bo.http.post(
            f"{biller_page}/upload",
            data={"csrf_token": token.group(1), "mapping": "{bad"},
            files={"file": ("batch.csv", csv, "text/csv")},
        )
        assert "the mapping is not JSON" in flash_of((await follow(bo.http, r)).text)
        r = await bo.http.post(f"{biller_page}/upload", data={"csrf_token": token.group(1)})
        assert flash_of((await follow(bo.http, r)).text) == "Choose a CSV or Excel file."


async def test_pages_render_for_each_permitted_role_and_are_refused_otherwise(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        ids = await book(bo.hub)
        pages = [
            "/backoffice/collections",
            "/backoffice/billers",
            "/backoffice/billers/power",
            "/backoffice/billers/power/deliveries",
            "/backoffice/invoices",
            f"/backoffice/invoices/{ids['LATE-1']}",
        ]
        for role, allowed in (
            ("accountant", True),
            ("administrator", True),
            ("cashier", False),
            ("agent", False),
        ):
            await bo.user(f"u_{role}", role)
            http = bo.client()
            await login(http, f"u_{role}")
            for path in pages:
                r = await http.get(path)
                assert r.status_code == (200 if allowed else 403), (role, path, r.status_code)
            menu = (await http.get("/backoffice/")).text
            assert ('href="/backoffice/invoices"' in menu) is allowed
            await http.aclose()


async def test_the_pages_in_russian_and_romanian(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        ids = await book(bo.hub)
        await bo.user("ru_user", "operator", language="ru")
        await bo.user("ro_user", "operator", language="ro")
        for user, words in (
            ("ru_user", ("Счета", "История", "Отправить напоминание сейчас")),
            ("ro_user", ("Facturi", "Cronologie", "Trimite un memento acum")),
        ):
            http = bo.client()
            await login(http, user)
            r = await http.get(f"/backoffice/invoices/{ids['OPEN-1']}")
            assert r.status_code == 200 and all(w in r.text for w in words), user
            assert (await http.get("/backoffice/collections")).status_code == 200
            await http.aclose()
