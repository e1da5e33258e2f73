"""Invoice reminders: the biller's policy days on a fake clock (in the biller's time zone), once per
day and policy day, none once paid or cancelled, requested dates, "send one now" over the biller's
API, the overdue move, and the e-mail received by an SMTP server on 127.0.0.1 with the pay link and QR."""

from __future__ import annotations

import asyncio
import datetime as dt
from email.header import decode_header, make_header

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from invoices_support import INV, Billing, billing_env, invoice
from paymux.errors import Problem
from paymux.invoices import reminders, service
from paymux.invoices.models import Biller, Invoice, InvoiceReminder
from paymux.notifications.delivery import Senders
from paymux.notifications.models import Notification
from paymux.notifications.settings import NotificationSettings, SmsSettings, SmtpSettings
from paymux.notifications.sms_emulator import create_app as sms_app
from paymux.notifications.worker import NotificationWorker
from paymux.providers.emulators.server import run_emulator
from registers_servers import SmtpHandler, free_port

POLICY = {"reminder_days": [-3, 0, 7], "timezone": "Europe/Chisinau"}


def at(day: str, hour: int = 10, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour, minute), tzinfo=dt.UTC)


async def rows(b: Billing, number: str = "INV-1") -> list[InvoiceReminder]:
    async with b.env.hub.read_sessions() as s:
        inv = await s.scalar(select(Invoice).where(Invoice.number == number))
        assert inv is not None
        return await reminders.reminders_of(s, inv.id)


async def notices(b: Billing) -> list[Notification]:
    async with b.env.hub.read_sessions() as s:
        q = select(Notification).where(Notification.event == "invoice.reminder").order_by(Notification.id)
        return list((await s.scalars(q)).all())


async def test_policy_days_on_a_fake_clock_once_each(db_url: str) -> None:
    async with billing_env(db_url, **POLICY) as b:
        assert (await b.post(invoice("INV-1", due_date="2030-01-31"))).status_code == 201
        hub = b.env.hub
        # four days before: not a policy day
        r = await reminders.run_round(hub, at("2030-01-27"))
        assert r.sent == [] and await rows(b) == []
        # 22:30 UTC on the 27th is 00:30 on the 28th in Chisinau: three days before, in the biller's zone
        r = await reminders.run_round(hub, at("2030-01-27", 22, 30))
        assert len(r.sent) == 1
        [first] = await rows(b)
        assert (first.kind, first.key, first.day.isoformat(), first.status) == (
            "policy",
            "policy:-3",
            "2030-01-28",
            "sent",
        )
        # the same day again, and again: nothing more
        for hour in (8, 12, 21):
            assert (await reminders.run_round(hub, at("2030-01-28", hour))).sent == []
        sent = await notices(b)
        assert sorted(n.channel for n in sent) == ["email", "sms"]
        sms = next(n for n in sent if n.channel == "sms")
        assert sms.address == "+37369123456" and sms.language == "ro"
        assert "INV-1" in sms.body and "120.50 EUR" in sms.body and "/pay/" in sms.body
        assert "scadentă pe 31.01.2030" in sms.body
        # on the due day; then overdue the next day (no reminder), then a week after
        assert len((await reminders.run_round(hub, at("2030-01-31"))).sent) == 1
        r = await reminders.run_round(hub, at("2030-02-01"))
        assert r.overdue == 1 and r.sent == []
        assert (await b.get("INV-1"))["status"] == "overdue"
        assert len((await reminders.run_round(hub, at("2030-02-07"))).sent) == 1
        assert (await reminders.run_round(hub, at("2030-02-07", 15))).sent == []
        assert (await reminders.run_round(hub, at("2030-02-14"))).sent == []  # not in the policy
        assert [x.key for x in await rows(b)] == ["policy:-3", "policy:0", "policy:7"]
        assert len(await notices(b)) == 6
        days = sorted({n.payload["data"]["days"] for n in await notices(b)})
        assert days == [-3, 0, 7]


async def test_no_reminders_once_paid_or_cancelled(db_url: str) -> None:
    async with billing_env(db_url, **POLICY) as b:
        for n in ("P-1", "C-1", "O-1"):
            assert (await b.post(invoice(n, due_date="2030-01-31"))).status_code == 201
        async with b.env.hub.sessions() as s:
            inv = await s.scalar(select(Invoice).where(Invoice.number == "P-1"))
            assert inv is not None
            await service.record_payment(s, inv, 12050, "card", "pay-1")
            await s.commit()
        r = await b.http.post(f"{INV}/C-1/cancel", json={}, headers=b.h)
        assert r.status_code == 200
        r = await reminders.run_round(b.env.hub, at("2030-01-28"))
        assert len(r.sent) == 1
        assert [x.key for x in await rows(b, "O-1")] == ["policy:-3"]
        assert await rows(b, "P-1") == [] and await rows(b, "C-1") == []
        # a requested reminder of an invoice paid meanwhile is skipped with the reason
        async with b.env.hub.sessions() as s:
            inv = await s.scalar(select(Invoice).where(Invoice.number == "O-1"))
            assert inv is not None
            await reminders.request_reminder(s, inv, dt.date(2030, 1, 29), now=at("2030-01-28"))
            await service.record_payment(s, inv, 12050, "card", "pay-2")
            await s.commit()
        r = await reminders.run_round(b.env.hub, at("2030-01-29"))
        assert r.sent == [] and len(r.skipped) == 1
        last = (await rows(b, "O-1"))[-1]
        assert last.status == "skipped" and last.reason == "the invoice is paid"
        # the biller's "send now" of a paid invoice: 409
        r = await b.http.post(f"{INV}/O-1/remind", headers=b.h)
        assert r.status_code == 409 and r.json()["type"].endswith("/invoice-not-open")


async def test_send_now_at_most_once_a_day_and_requested_dates(db_url: str) -> None:
    async with billing_env(db_url, **POLICY) as b:
        assert (await b.post(invoice("INV-1", due_date="2030-01-31"))).status_code == 201
        today = reminders.local_day
        # "send one now" over the biller's API (on the real clock: today)
        r = await b.http.post(f"{INV}/INV-1/remind", headers=b.h)
        assert r.status_code == 200, r.text
        assert (
            r.json()["kind"] == "manual"
            and r.json()["status"] == "sent"
            and len(r.json()["notifications"]) == 2
        )
        r = await b.http.post(f"{INV}/INV-1/remind", headers=b.h)
        assert r.status_code == 409 and r.json()["type"].endswith("/reminded-today")
        assert (await b.http.post(f"{INV}/NOPE/remind", headers=b.h)).status_code == 404
        assert (await b.http.post(f"{INV}/INV-1/remind")).status_code == 401
        assert len(await notices(b)) == 2
        # a policy day on the day a reminder went out already: skipped, nothing sent
        async with b.env.hub.sessions() as s:
            inv = await s.scalar(select(Invoice).where(Invoice.number == "INV-1"))
            assert inv is not None
            biller = await s.get(Biller, inv.biller_id)
            assert biller is not None
            biller_day = today(biller, dt.datetime.now(dt.UTC))
            inv.due_date = biller_day + dt.timedelta(days=3)
            await s.commit()
        r = await reminders.run_round(b.env.hub)
        assert r.sent == [] and len(r.skipped) == 1
        assert [x.reason for x in await rows(b) if x.kind == "policy"] == [
            "a reminder was sent that day already"
        ]
        assert len(await notices(b)) == 2

        # remind me on a date: today or later, at most a year ahead; the same date twice is one
        async with b.env.hub.sessions() as s:
            inv = await s.scalar(select(Invoice).where(Invoice.number == "INV-1"))
            assert inv is not None
            now = at("2030-01-20")
            one = await reminders.request_reminder(s, inv, dt.date(2030, 1, 25), now=now)
            two = await reminders.request_reminder(s, inv, dt.date(2030, 1, 25), now=now)
            assert one.id == two.id and one.status == "pending"
            for bad in (dt.date(2030, 1, 19), dt.date(2031, 6, 1)):
                with pytest.raises(Problem) as e:
                    await reminders.request_reminder(s, inv, bad, now=now)
                assert e.value.status == 422
            await s.commit()
        assert (await reminders.run_round(b.env.hub, at("2030-01-24", 12))).sent == []
        r = await reminders.run_round(b.env.hub, at("2030-01-24", 22, 30))  # the 25th in Chisinau
        assert len(r.sent) == 1
        assert (await reminders.run_round(b.env.hub, at("2030-01-25", 12))).sent == []
        assert len(await notices(b)) == 4


async def test_a_payer_without_address_is_skipped(db_url: str) -> None:
    async with billing_env(db_url, **POLICY) as b:
        body = invoice("INV-1", due_date="2030-01-31", payer={"name": "Nobody"})
        assert (await b.post(body)).status_code == 201
        r = await reminders.run_round(b.env.hub, at("2030-01-28"))
        assert r.sent == [] and len(r.skipped) == 1
        [row] = await rows(b)
        assert row.status == "skipped" and "no e-mail" in row.reason
        r2 = await b.http.post(f"{INV}/INV-1/remind", headers=b.h)
        assert r2.status_code == 409 and "no e-mail" in r2.json()["detail"]


async def test_the_email_and_sms_reach_their_servers_with_the_pay_link_and_qr(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYMUX_INVOICES_PUBLIC_URL", "https://pay.example/")
    handler = SmtpHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    app = sms_app(token="sms-token")
    try:
        async with billing_env(db_url, **POLICY) as b, run_emulator(app) as sms_base:
            body = invoice("INV-7", due_date="2030-01-31")
            body["payer"] = {
                "name": "Иван",
                "email": "ivan@example.com",
                "phone": "+37369000777",
                "language": "ru",
            }
            assert (await b.post(body)).status_code == 201
            token = (await b.get("INV-7"))["payment_link"].rsplit("/", 1)[-1]
            assert len((await reminders.run_round(b.env.hub, at("2030-01-31"))).sent) == 1
            smtp = SmtpSettings(host="127.0.0.1", port=port, sender="billing@example.com")
            sms = SmsSettings(url=sms_base, token="sms-token", sender="POWER")
            async with httpx.AsyncClient() as http:
                senders = Senders.from_settings(http, NotificationSettings(), sms, smtp)
                done = await NotificationWorker(b.env.hub, senders).run_round()
                assert sorted(done.values()) == ["delivered", "delivered"]
                [text_message] = (await http.get(f"{sms_base}/messages")).json()["messages"]
            [msg] = handler.messages
            assert msg["To"] == "ivan@example.com"
            assert str(make_header(decode_header(msg["Subject"]))) == "Счёт INV-7 от Power Co: 120.50 EUR"
            plain, rich = msg.get_payload()
            text = plain.get_payload(decode=True).decode()
            assert text.startswith("Здравствуйте, Иван!")
            page = rich.get_payload(decode=True).decode()
            assert f'<img src="https://pay.example/pay/{token}/qr.png"' in page
            assert f'<a href="https://pay.example/pay/{token}" style=' in page
            assert "нужно оплатить сегодня" in text
            assert f"https://pay.example/pay/{token}" in text
            assert f"https://pay.example/pay/{token}/qr.png" in text
            assert text_message["to"] == "+37369000777" and text_message["from"] == "POWER"
            assert f"Оплатить: https://pay.example/pay/{token}" in text_message["text"]
    finally:
        controller.stop()


def test_the_worker_is_a_background_service() -> None:
    from paymux.worker.background import SERVICES, _load

    spec = "paymux.invoices.reminders:running_invoice_reminder_worker"
    assert spec in SERVICES and _load(spec) is reminders.running_invoice_reminder_worker


async def test_the_worker_runs_in_the_background_and_can_be_off(db_url: str) -> None:
    async with billing_env(db_url, **POLICY) as b:
        settings = reminders.InvoiceSettings(poll_seconds=0.05)
        async with reminders.running_invoice_reminder_worker(b.env.hub, settings) as w:
            assert w is not None
        off = reminders.InvoiceSettings(reminders_enabled=False)
        async with reminders.running_invoice_reminder_worker(b.env.hub, off) as w2:
            assert w2 is None


async def test_overdue_from_the_billers_next_day_and_two_workers_remind_once(db_url: str) -> None:
    async with billing_env(db_url, **POLICY) as b:
        for n in ("INV-1", "INV-2", "INV-3"):
            assert (await b.post(invoice(n, due_date="2030-01-31"))).status_code == 201
        # 21:30 UTC on the 31st is already the 1st of February in Chisinau: overdue there
        first = await reminders.run_round(b.env.hub, at("2030-01-31", 21, 0))  # 23:00 there: due today
        assert first.overdue == 0 and len(first.sent) == 3
        # two workers at once: each invoice moved (and reported) once
        late = at("2030-01-31", 22, 30)
        moved = await asyncio.gather(
            reminders.run_round(b.env.hub, late), reminders.run_round(b.env.hub, late)
        )
        assert sum(x.overdue for x in moved) == 3 and (await b.get("INV-1"))["status"] == "overdue"
        feed = (await b.http.get(f"{INV}/changes", headers=b.h)).json()["items"]
        assert sorted(x["number"] for x in feed if x["to"] == "overdue") == ["INV-1", "INV-2", "INV-3"]
        # two workers at the same moment on a policy day: each invoice reminded once
        when = at("2030-02-07")
        both = await asyncio.gather(
            reminders.run_round(b.env.hub, when), reminders.run_round(b.env.hub, when)
        )
        assert sum(len(x.sent) for x in both) == 3
        assert len(await notices(b)) == 12  # an e-mail and an SMS each, on two policy days
        view = await b.get("INV-2")
        assert [(x["kind"], x["day"], x["status"]) for x in view["reminders"]] == [
            ("policy", "2030-01-31", "sent"),
            ("policy", "2030-02-07", "sent"),
        ]
