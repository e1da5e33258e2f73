"""Status changes pushed to the biller, over real connections: a receiver on 127.0.0.1 verifies each
webhook with the biller's secret (``standardwebhooks``); retries for three days; the delivery log;
manual redelivery; secret rotation. And payments applied to invoices (``record_payment``): partial,
full, repeated (never twice), over-paid and late ones flagged for a refund decision."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from sqlalchemy import select

from invoices_support import AB, INV, Billing, billing_env, invoice
from paymux.db.base import utcnow
from paymux.invoices import service
from paymux.invoices.models import Invoice, InvoicePayment
from paymux.notifications.delivery import Senders
from paymux.notifications.settings import NotificationSettings
from paymux.notifications.worker import NotificationWorker
from paymux.providers.emulators.server import run_emulator
from test_notifications_delivery import Receiver


async def deliver_all(b: Billing) -> dict[int, str]:
    async with httpx.AsyncClient() as http:
        worker = NotificationWorker(b.env.hub, Senders(http, NotificationSettings()))
        return await worker.run_round()


async def pay(b: Billing, number: str, amount: int, method: str, ref: str) -> InvoicePayment:
    async with b.env.hub.sessions() as s:
        inv = await s.scalar(select(Invoice).where(Invoice.number == number))
        assert inv is not None
        p = await service.record_payment(s, inv, amount, method, ref)
        await s.commit()
        return p


async def test_status_changes_are_pushed_signed_and_verified(db_url: str) -> None:
    receiver = Receiver("")
    async with run_emulator(receiver.app()) as base, billing_env(db_url, webhook_url=f"{base}/hook") as b:
        biller = (await b.http.get(f"{AB}/power", headers=b.env.admin)).json()
        assert biller["webhook_secret"] == "***"
        # the secret was shown once, at creation: rotate to learn one here
        rotated = (await b.http.post(f"{AB}/power/webhook/secret", headers=b.env.admin)).json()
        receiver.secret = rotated["webhook_secret"]
        assert receiver.secret.startswith("whsec_")
        assert (await b.post(invoice("W-1"))).status_code == 201
        assert await deliver_all(b) == {}  # creation is not pushed: the biller has the intake's answer
        assert (
            await b.http.post(f"{INV}/W-1/cancel", json={"reason": "duplicate"}, headers=b.h)
        ).status_code == 200
        delivered = await deliver_all(b)
        assert list(delivered.values()) == ["delivered"]
        assert receiver.refused == []
        [got] = receiver.received
        payload: dict[str, Any] = got["payload"]
        assert payload["type"] == "invoice.cancelled"
        data = payload["data"]
        assert data["number"] == "W-1" and data["status"] == "cancelled" and data["previous_status"] == "open"
        assert data["reason"] == "duplicate" and data["amount"] == "120.50" and data["currency"] == "EUR"
        # the feed has the same change under the same id
        feed = (await b.http.get(f"{INV}/changes", headers=b.h)).json()["items"]
        assert feed[-1]["id"] == data["change_id"] and feed[-1]["to"] == "cancelled"
        # the delivery log and manual redelivery (the same webhook-id again)
        log = (await b.http.get(f"{AB}/power/webhook/deliveries", headers=b.env.admin)).json()["items"]
        [n] = log
        assert n["status"] == "delivered" and n["event"] == "invoice.cancelled"
        detail = (await b.http.get(f"{AB}/power/webhook/deliveries/{n['id']}", headers=b.env.admin)).json()
        assert [a["status_code"] for a in detail["log"]] == [200]
        r = await b.http.post(f"{AB}/power/webhook/deliveries/{n['id']}/redeliver", headers=b.env.admin)
        assert r.status_code == 200 and r.json()["status"] == "pending"
        assert list((await deliver_all(b)).values()) == ["delivered"]
        assert [x["id"] for x in receiver.received] == [got["id"], got["id"]]
        # another biller's webhook is not this biller's to redeliver
        await b.http.post(AB, json={"code": "water", "name": "Water"}, headers=b.env.admin)
        r = await b.http.post(f"{AB}/water/webhook/deliveries/{n['id']}/redeliver", headers=b.env.admin)
        assert r.status_code == 404
        # nor is it an agent's notification of the notifications admin API
        r = await b.http.post(f"/api/v1/admin/notifications/{n['id']}/redeliver", headers=b.env.admin)
        assert r.status_code == 404


async def test_failed_webhook_retried_for_three_days(db_url: str) -> None:
    receiver = Receiver("", statuses=[500, 503])
    async with run_emulator(receiver.app()) as base, billing_env(db_url) as b:
        r = await b.http.patch(f"{AB}/power", json={"webhook_url": f"{base}/hook"}, headers=b.env.admin)
        receiver.secret = r.json()["webhook_secret"]  # made with the first URL, shown once
        assert receiver.secret.startswith("whsec_")
        assert (await b.http.get(f"{AB}/power", headers=b.env.admin)).json()["webhook_secret"] == "***"
        await b.post(invoice("R-1"))
        await b.http.post(f"{INV}/R-1/cancel", headers=b.h)
        [status] = (await deliver_all(b)).values()
        assert status == "pending"
        [n] = (await b.http.get(f"{AB}/power/webhook/deliveries", headers=b.env.admin)).json()["items"]
        expires = dt.datetime.fromisoformat(n["expires_at"])
        assert dt.timedelta(days=2, hours=23) < expires - utcnow() <= dt.timedelta(days=3)
        assert n["last_error"].startswith("answered 500")
        # the next attempts are due later; run them now on a moved clock
        async with httpx.AsyncClient() as http:
            worker = NotificationWorker(b.env.hub, Senders(http, NotificationSettings()))
            later = utcnow() + dt.timedelta(hours=2)
            assert list((await worker.run_round(now=later)).values()) == ["pending"]
            assert list((await worker.run_round(now=later + dt.timedelta(hours=2))).values()) == ["delivered"]
        assert [x["status"] for x in receiver.received] == [500, 503, 200]
        assert len({x["id"] for x in receiver.received}) == 1


async def test_payments_applied_once_and_excess_flagged(db_url: str) -> None:
    receiver = Receiver("")
    async with run_emulator(receiver.app()) as base, billing_env(db_url) as b:
        r = await b.http.patch(f"{AB}/power", json={"webhook_url": f"{base}/hook"}, headers=b.env.admin)
        receiver.secret = r.json()["webhook_secret"]
        await b.post(invoice("P-1", partial_allowed=True))  # 120.50 EUR
        await b.post(invoice("P-2"))  # no partial payments
        await b.post(invoice("P-3"))
        p = await pay(b, "P-1", 5000, "card", "auth-1")
        assert p.applied == 5000 and not p.refund_review
        assert (await b.get("P-1"))["status"] == "partially_paid"
        again = await pay(b, "P-1", 5000, "card", "auth-1")  # a repeated callback
        assert again.id == p.id
        got = await b.get("P-1")
        assert got["paid_amount"] == "50.00"
        await pay(b, "P-1", 1000, "bank_transfer", "stmt-1")  # another part: still partially paid
        assert (await b.get("P-1"))["paid_amount"] == "60.00"
        over = await pay(b, "P-1", 9000, "card", "auth-2")  # 60.50 due: 29.50 too much
        assert over.applied == 6050 and over.excess == 2950 and over.refund_review
        got = await b.get("P-1")
        assert got["status"] == "paid" and got["paid_amount"] == "120.50" and got["refund_review"]
        late = await pay(b, "P-1", 100, "card", "auth-3")  # paid already: kept, flagged
        assert late.applied == 0 and late.refund_review and (await b.get("P-1"))["paid_amount"] == "120.50"
        part = await pay(b, "P-2", 100, "card", "auth-4")  # partial not allowed
        assert part.applied == 0 and part.refund_review and (await b.get("P-2"))["status"] == "open"
        await b.http.post(f"{INV}/P-3/cancel", headers=b.h)
        cancelled = await pay(b, "P-3", 12050, "card", "auth-5")
        assert cancelled.applied == 0 and cancelled.refund_review
        assert (await b.get("P-3"))["status"] == "cancelled"
        hist = (await b.get("P-1"))["history"]
        assert [(h["from"], h["to"]) for h in hist] == [
            (None, "open"),
            ("open", "partially_paid"),
            ("partially_paid", "partially_paid"),
            ("partially_paid", "paid"),
        ]
        await deliver_all(b)
        events = [(x["payload"]["type"], x["payload"]["data"]["number"]) for x in receiver.received]
        assert sorted(events) == sorted(
            [
                ("invoice.partially_paid", "P-1"),
                ("invoice.partially_paid", "P-1"),
                ("invoice.paid", "P-1"),
                ("invoice.cancelled", "P-3"),
            ]
        )
        assert receiver.refused == []


async def test_overdue_sweep_and_payment_link(db_url: str) -> None:
    async with billing_env(db_url) as b:
        await b.post(invoice("O-1", due_date="2020-01-01"))
        made = (await b.post(invoice("O-2"))).json()
        async with b.env.hub.sessions() as s:
            assert await service.mark_overdue(s, utcnow().date()) == 1
            await s.commit()
        assert (await b.get("O-1"))["status"] == "overdue"
        r = await b.http.patch(f"{INV}/O-1", json={"due_date": "2099-01-01"}, headers=b.h)
        assert r.json()["status"] == "open"
        token = made["payment_link"].removeprefix("/pay/")
        async with b.env.hub.read_sessions() as s:
            inv = await service.invoice_by_token(s, token)
            assert inv is not None and inv.number == "O-2"
            assert await service.invoice_by_token(s, token[:-1]) is None
            assert await service.invoice_by_token(s, "") is None
