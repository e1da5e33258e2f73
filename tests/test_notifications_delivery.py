"""Delivering notifications over real connections: webhooks to an HTTP receiver on 127.0.0.1 that
verifies the Standard Webhooks signature, retries with backoff, giving up after the window (on an
injected clock), lease fencing, e-mail to aiosmtpd, SMS through the SMS gateway emulator."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from cryptography.fernet import Fernet
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError

from conftest import requires_postgres
from harness import test_settings as hub_settings
from paymux.catalog.models import Agent
from paymux.db.base import utcnow
from paymux.notifications.delivery import Senders, deliver
from paymux.notifications.models import DeliveryAttempt, Notification, WebhookEndpoint
from paymux.notifications.service import Action, Recipient, notify
from paymux.notifications.settings import NotificationSettings, SmsSettings, SmtpSettings
from paymux.notifications.sms_emulator import create_app as sms_app
from paymux.notifications.webhooks import generate_secret, seal
from paymux.notifications.worker import NotificationWorker, running_notification_worker
from paymux.providers.emulators.server import run_emulator
from paymux.runtime import Hub
from paymux.worker.jobs import claim_due
from registers_servers import SmtpHandler, free_port
from test_cli import Cli

DATA = {"service": "Mobile top-up", "account": "9161234567", "amount": 15000, "currency": "RUB"}


@dataclass
class Receiver:
    """A webhook receiver that verifies every request with the agent's secret."""

    secret: str
    statuses: list[int] = field(default_factory=list)  # answers to give, in turn (then 200)
    received: list[dict[str, Any]] = field(default_factory=list)  # verified payloads with their headers
    refused: list[str] = field(default_factory=list)  # why verification failed

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> JSONResponse:
            body = await request.body()
            try:
                payload = Webhook(self.secret).verify(body, dict(request.headers))
            except WebhookVerificationError as e:
                self.refused.append(str(e))
                return JSONResponse({"error": "bad signature"}, status_code=400)
            status = self.statuses.pop(0) if self.statuses else 200
            self.received.append({"payload": payload, "id": request.headers["webhook-id"], "status": status})
            return JSONResponse({"ok": status < 300}, status_code=status)

        return app


@contextlib.asynccontextmanager
async def env(db_url: str) -> AsyncIterator[Hub]:
    hub = Hub(hub_settings(db_url))
    try:
        yield hub
    finally:
        await hub.close()


async def agent_with_endpoint(hub: Hub, url: str | None, secret: str, settings: NotificationSettings) -> int:
    async with hub.sessions() as s:
        agent = Agent(code="bank", name="Bank", enabled=True)
        s.add(agent)
        await s.flush()
        if url is not None:
            s.add(WebhookEndpoint(agent_id=agent.id, url=url, secret=seal(secret, settings)))
        await s.commit()
        return agent.id


async def notify_now(
    hub: Hub, agent: int, key: str, recipient: Recipient | None = None, **kw: Any
) -> list[int]:
    async with hub.sessions() as s:
        ids = await notify(s, agent_id=agent, event="run.paid", recipient=recipient, data=DATA, key=key, **kw)
        await s.commit()
    return ids


async def row(hub: Hub, nid: int) -> Notification:
    async with hub.read_sessions() as s:
        n = await s.get(Notification, nid)
        assert n is not None
        return n


async def log_of(hub: Hub, nid: int) -> list[DeliveryAttempt]:
    async with hub.read_sessions() as s:
        q = select(DeliveryAttempt).where(DeliveryAttempt.notification_id == nid).order_by(DeliveryAttempt.id)
        return list((await s.scalars(q)).all())


async def test_webhook_signed_delivered_and_verified(db_url: str) -> None:
    # the secret sealed at rest with a key: the worker opens it to sign
    settings = NotificationSettings(secret_key=Fernet.generate_key().decode())
    secret = generate_secret()
    receiver = Receiver(secret)
    async with env(db_url) as hub, run_emulator(receiver.app()) as base:
        agent = await agent_with_endpoint(hub, f"{base}/hook", secret, settings)
        async with hub.read_sessions() as s:
            stored = await s.scalar(select(WebhookEndpoint.secret))
        assert stored is not None and stored.startswith("fernet:") and secret not in stored
        [nid] = await notify_now(hub, agent, "k-1", actions=[Action("repeat", "https://b.example/r", "t-1")])
        async with httpx.AsyncClient() as http:
            worker = NotificationWorker(hub, Senders(http, settings))
            assert await worker.run_round() == {nid: "delivered"}
            assert await worker.run_round() == {}  # nothing more to send
        assert receiver.refused == []
        [got] = receiver.received
        assert got["id"] == f"ntf_{nid}"
        assert got["payload"]["type"] == "run.paid"
        assert got["payload"]["data"] == DATA
        assert got["payload"]["actions"] == [{"name": "repeat", "url": "https://b.example/r", "token": "t-1"}]
        n = await row(hub, nid)
        assert n.status == "delivered" and n.delivered_at is not None and n.attempts == 1
        [attempt] = await log_of(hub, nid)
        assert attempt.ok and attempt.status_code == 200 and attempt.error is None
        assert attempt.target == f"{base}/hook" and attempt.duration_ms >= 0


async def test_a_wrong_secret_is_refused_by_the_receiver(db_url: str) -> None:
    """The receiver's verification is real: signed with another secret, it refuses (400)."""
    settings = NotificationSettings()
    receiver = Receiver(generate_secret())
    async with env(db_url) as hub, run_emulator(receiver.app()) as base:
        agent = await agent_with_endpoint(hub, f"{base}/hook", generate_secret(), settings)
        [nid] = await notify_now(hub, agent, "k-1")
        async with httpx.AsyncClient() as http:
            worker = NotificationWorker(hub, Senders(http, settings))
            assert await worker.run_round() == {nid: "pending"}
        assert receiver.refused == ["No matching signature found"] and receiver.received == []
        [attempt] = await log_of(hub, nid)
        assert attempt.status_code == 400 and not attempt.ok


async def test_retries_with_backoff_then_success(db_url: str) -> None:
    settings = NotificationSettings(retry_base_seconds=30, retry_max_seconds=3600)
    secret = generate_secret()
    receiver = Receiver(secret, statuses=[500, 503])
    async with env(db_url) as hub, run_emulator(receiver.app()) as base:
        agent = await agent_with_endpoint(hub, f"{base}/hook", secret, settings)
        [nid] = await notify_now(hub, agent, "k-1")
        created = (await row(hub, nid)).created_at
        async with httpx.AsyncClient() as http:
            worker = NotificationWorker(hub, Senders(http, settings))
            t0 = utcnow()
            assert await worker.run_round(t0) == {nid: "pending"}
            n = await row(hub, nid)
            first_delay = (n.due_at - t0).total_seconds()
            assert 30 <= first_delay <= 33 and n.last_error is not None and "500" in n.last_error
            assert await worker.run_round(t0 + dt.timedelta(seconds=29)) == {}  # not due yet
            t1 = n.due_at
            assert await worker.run_round(t1) == {nid: "pending"}
            n = await row(hub, nid)
            assert 60 <= (n.due_at - t1).total_seconds() <= 66  # doubled
            assert await worker.run_round(n.due_at) == {nid: "delivered"}
        assert [r["status"] for r in receiver.received] == [500, 503, 200]
        assert {r["id"] for r in receiver.received} == {f"ntf_{nid}"}  # one message id on every retry
        assert [(a.ok, a.status_code) for a in await log_of(hub, nid)] == [
            (False, 500),
            (False, 503),
            (True, 200),
        ]
        n = await row(hub, nid)
        assert n.status == "delivered" and n.attempts == 3 and n.last_error is None
        assert n.expires_at == created + dt.timedelta(days=1)


async def test_gives_up_after_the_window(db_url: str) -> None:
    settings = NotificationSettings(retry_base_seconds=600, retry_max_seconds=6 * 3600)
    secret = generate_secret()
    receiver = Receiver(secret, statuses=[500] * 100)
    async with env(db_url) as hub, run_emulator(receiver.app()) as base:
        agent = await agent_with_endpoint(hub, f"{base}/hook", secret, settings)
        [nid] = await notify_now(hub, agent, "k-1")
        n = await row(hub, nid)
        async with httpx.AsyncClient() as http:
            worker = NotificationWorker(hub, Senders(http, settings))
            clock = n.created_at
            rounds = 0
            while True:
                done = await worker.run_round(clock)
                rounds += 1
                assert done == {nid: "pending"} or done == {nid: "failed"}, done
                if done[nid] == "failed":
                    break
                clock = (await row(hub, nid)).due_at  # jump to the next attempt
                assert rounds < 50
        n = await row(hub, nid)
        assert n.status == "failed" and "500" in (n.last_error or "")
        # 600 s doubling, capped at 6 h: the attempts span the day, the last one within it
        log = await log_of(hub, nid)
        assert len(log) == n.attempts == rounds >= 6
        assert log[-1].at <= n.expires_at and log[-1].at > n.expires_at - dt.timedelta(hours=7)
        assert len(receiver.received) == rounds
        async with httpx.AsyncClient() as http:  # and never again
            worker = NotificationWorker(hub, Senders(http, settings))
            assert await worker.run_round(n.expires_at + dt.timedelta(days=30)) == {}


async def test_a_worker_that_lost_its_lease_sends_nothing(db_url: str) -> None:
    settings = NotificationSettings(lease_seconds=60)
    secret = generate_secret()
    receiver = Receiver(secret)
    async with env(db_url) as hub, run_emulator(receiver.app()) as base:
        agent = await agent_with_endpoint(hub, f"{base}/hook", secret, settings)
        [nid] = await notify_now(hub, agent, "k-1")
        t0 = utcnow()
        assert await claim_due(hub, Notification, "old.1", 10, 60, t0) == [nid]
        # the old worker paused past its lease; another claims the notification
        assert await claim_due(hub, Notification, "new.1", 10, 60, t0 + dt.timedelta(seconds=61)) == [nid]
        async with httpx.AsyncClient() as http:
            senders = Senders(http, settings)
            assert await deliver(hub, nid, "old.1", senders, t0 + dt.timedelta(seconds=62)) == "lost"
            assert receiver.received == []
            assert await deliver(hub, nid, "new.1", senders, t0 + dt.timedelta(seconds=62)) == "delivered"
        assert len(receiver.received) == 1


async def test_email_received_by_an_smtp_server(db_url: str) -> None:
    handler = SmtpHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        async with env(db_url) as hub:
            agent = await agent_with_endpoint(hub, None, "", NotificationSettings())
            person = Recipient(name="Иван", email="ivan@example.com", language="ru", reference="c-1")
            [nid] = await notify_now(hub, agent, "k-1", recipient=person)
            smtp = SmtpSettings(host="127.0.0.1", port=port, sender="bank@example.com")
            async with httpx.AsyncClient() as http:
                senders = Senders.from_settings(http, NotificationSettings(), SmsSettings(), smtp)
                worker = NotificationWorker(hub, senders)
                assert await worker.run_round() == {nid: "delivered"}
            [msg] = handler.messages
            assert msg["To"] == "ivan@example.com" and msg["From"] == "bank@example.com"
            assert str(make_header(decode_header(msg["Subject"]))) == "Платёж выполнен: Mobile top-up"
            assert msg.get_content_type() == "multipart/alternative"
            plain, rich = msg.get_payload()
            text = plain.get_payload(decode=True).decode()
            assert text.startswith("Здравствуйте, Иван!") and "Оплачено 150.00 RUB за Mobile top-up" in text
            assert rich.get_content_type() == "text/html"
            page = rich.get_payload(decode=True).decode()
            assert '<html lang="ru">' in page and "Здравствуйте, Иван!" in page
            assert "Оплачено 150.00 RUB за Mobile top-up" in page and "<script" not in page
            # the server refusing: retried later
            handler.refuse = True
            [nid2] = await notify_now(hub, agent, "k-2", recipient=person)
            async with httpx.AsyncClient() as http:
                worker = NotificationWorker(
                    hub, Senders.from_settings(http, NotificationSettings(), SmsSettings(), smtp)
                )
                assert await worker.run_round() == {nid2: "pending"}
            assert "451" in ((await row(hub, nid2)).last_error or "")
    finally:
        controller.stop()


async def test_sms_through_the_emulator(db_url: str) -> None:
    app = sms_app(token="sms-token")
    outbox = app.state.outbox
    async with env(db_url) as hub, run_emulator(app) as base:
        agent = await agent_with_endpoint(hub, None, "", NotificationSettings())
        person = Recipient(phone="+37369123456", language="ro", reference="c-1")
        sms = SmsSettings(url=base, token="sms-token", sender="BANK")
        async with httpx.AsyncClient() as http:
            worker = NotificationWorker(
                hub, Senders.from_settings(http, NotificationSettings(), sms, SmtpSettings())
            )
            # the gateway fails once (500): retried, then accepted
            r = await http.post(f"{base}/_emulator/fail", json={"count": 1, "status": 500})
            assert r.status_code == 200
            [nid] = await notify_now(hub, agent, "k-1", recipient=person)
            assert await worker.run_round() == {nid: "pending"}
            assert await worker.run_round((await row(hub, nid)).due_at) == {nid: "delivered"}
            listed = (await http.get(f"{base}/messages")).json()["messages"]
            assert [(m["id"], m["to"], m["from"]) for m in listed] == [(f"ntf_{nid}", "+37369123456", "BANK")]
            assert listed[0]["text"].startswith("Au fost plătiți 150.00 RUB pentru Mobile top-up")
            assert [(a.ok, a.status_code) for a in await log_of(hub, nid)] == [(False, 500), (True, None)]
            # a refusal that cannot succeed later (422) fails at once
            await http.post(f"{base}/_emulator/fail", json={"count": 1, "status": 422})
            [nid2] = await notify_now(hub, agent, "k-2", recipient=person)
            assert await worker.run_round() == {nid2: "failed"}
            # a wrong token (401) is permanent too
            bad = SmsSettings(url=base, token="wrong")
            worker2 = NotificationWorker(
                hub, Senders.from_settings(http, NotificationSettings(), bad, SmtpSettings())
            )
            [nid3] = await notify_now(hub, agent, "k-3", recipient=person)
            assert await worker2.run_round() == {nid3: "failed"}
        assert outbox.refused == 2 and len(outbox.messages) == 1


async def test_unconfigured_channels_wait_and_the_background_service_runs(db_url: str) -> None:
    """Without a gateway an SMS is retried (the operator may configure one within the window); the
    service ``paymux serve`` runs delivers what is due."""
    secret = generate_secret()
    receiver = Receiver(secret)
    async with env(db_url) as hub, run_emulator(receiver.app()) as base:
        agent = await agent_with_endpoint(hub, f"{base}/hook", secret, NotificationSettings())
        [nid] = await notify_now(
            hub, agent, "k-0", recipient=Recipient(phone="+37369123456"), channels=["sms"]
        )
        async with httpx.AsyncClient() as http:
            worker = NotificationWorker(hub, Senders(http, NotificationSettings()))
            assert await worker.run_round() == {nid: "pending"}
        assert "no SMS gateway" in ((await row(hub, nid)).last_error or "")
        [hook] = await notify_now(hub, agent, "k-1")
        async with running_notification_worker(hub, NotificationSettings(poll_seconds=0.05)):
            for _ in range(200):
                if (await row(hub, hook)).status == "delivered":
                    break
                await asyncio.sleep(0.05)
        assert (await row(hub, hook)).status == "delivered" and len(receiver.received) == 1


@pytest.mark.parametrize("status", [301, 404])
async def test_a_non_2xx_answer_is_not_delivered(db_url: str, status: int) -> None:
    secret = generate_secret()
    receiver = Receiver(secret, statuses=[status])
    async with env(db_url) as hub, run_emulator(receiver.app()) as base:
        agent = await agent_with_endpoint(hub, f"{base}/hook", secret, NotificationSettings())
        [nid] = await notify_now(hub, agent, "k-1")
        async with httpx.AsyncClient() as http:
            worker = NotificationWorker(hub, Senders(http, NotificationSettings()))
            assert await worker.run_round() == {nid: "pending"}
        [attempt] = await log_of(hub, nid)
        assert attempt.status_code == status and not attempt.ok


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path, tmp_path / "paymux.db")


def test_the_sms_emulator_command(cli: Cli) -> None:
    """``paymux emulator sms --port P``: accepts messages (with its token), lists them, fails on request."""
    port = free_port()
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
        cli.background(
            "emulator",
            "sms",
            "--port",
            str(port),
            "--token",
            "t0k",
            ready=lambda: http.get("/messages").status_code == 200,
            name="sms",
        ),
    ):
        auth = {"Authorization": "Bearer t0k"}
        message = {"id": "m-1", "to": "+37369123456", "from": "BANK", "text": "hello"}
        assert http.post("/messages", json=message).status_code == 401
        assert http.post("/messages", json=message, headers=auth).status_code == 201
        assert http.post("/messages", json=message, headers=auth).json()["duplicate"] is True
        assert (
            http.post("/messages", json={**message, "id": "m-2", "to": "123"}, headers=auth).status_code
            == 422
        )
        assert http.post("/_emulator/fail", json={"count": 1, "status": 503}).status_code == 200
        assert http.post("/messages", json={**message, "id": "m-3"}, headers=auth).status_code == 503
        assert [m["id"] for m in http.get("/messages").json()["messages"]] == ["m-1"]
    assert "SMS gateway emulator on" in (cli.cwd / "sms.out").read_text()


async def test_a_misconfigured_sms_gateway_does_not_stop_the_worker(db_url: str) -> None:
    async with env(db_url) as hub:
        agent = await agent_with_endpoint(hub, None, "", NotificationSettings())
        [nid] = await notify_now(hub, agent, "k-1", recipient=Recipient(phone="+37369123456"))
        async with httpx.AsyncClient() as http:
            for sms, message in [
                (
                    SmsSettings(url="http://127.0.0.1:9", gateway="carrier-pigeon"),
                    "no SMS gateway plug-in named",
                ),
                (SmsSettings(url="ftp://sms.example"), "must be an absolute http"),
            ]:
                senders = Senders.from_settings(http, NotificationSettings(), sms, SmtpSettings())
                assert senders.sms is None and message in (senders.sms_problem or "")
        async with running_notification_worker(hub, NotificationSettings(poll_seconds=0.05)):
            for _ in range(100):
                if (await row(hub, nid)).attempts:
                    break
                await asyncio.sleep(0.05)
        assert (await row(hub, nid)).status == "pending"


def test_the_worker_is_a_background_service() -> None:
    """``paymux serve`` and ``paymux worker`` run every service in SERVICES."""
    from paymux.worker.background import SERVICES, _load

    spec = "paymux.worker.notifications:running_notification_worker"
    assert spec in SERVICES and _load(spec) is running_notification_worker


@requires_postgres
async def test_the_same_key_at_the_same_time_notifies_once(db_url: str) -> None:
    """Two transactions notify under one key at once: the second waits for the first and returns its ids."""
    async with env(db_url) as hub:
        agent = await agent_with_endpoint(
            hub, "http://127.0.0.1:9/hook", generate_secret(), NotificationSettings()
        )
        async with hub.sessions() as first, hub.sessions() as second:
            ids = await notify(first, agent_id=agent, event="run.paid", recipient=None, data=DATA, key="same")
            racing = asyncio.create_task(
                notify(second, agent_id=agent, event="run.paid", recipient=None, data=DATA, key="same")
            )
            await asyncio.sleep(0.3)
            assert not racing.done()  # waiting on the first's uncommitted row
            await first.commit()
            assert await racing == ids
            await second.commit()
        async with hub.read_sessions() as s:
            assert len((await s.scalars(select(Notification.id))).all()) == 1


async def test_two_workers_at_once_send_each_notice_once(db_url: str) -> None:
    secret = generate_secret()
    receiver = Receiver(secret)
    async with env(db_url) as hub, run_emulator(receiver.app()) as base:
        agent = await agent_with_endpoint(hub, f"{base}/hook", secret, NotificationSettings())
        ids = []
        for i in range(40):
            ids += await notify_now(hub, agent, f"k-{i}")
        settings = NotificationSettings(concurrency=5)
        async with httpx.AsyncClient() as http:
            workers = [NotificationWorker(hub, Senders(http, settings)) for _ in range(2)]

            async def drain(w: NotificationWorker) -> dict[int, str]:
                done: dict[int, str] = {}
                while ran := await w.run_round():
                    done.update(ran)
                return done

            first, second = await asyncio.gather(*(drain(w) for w in workers))
        assert set(first) | set(second) == set(ids) and not set(first) & set(second)
        assert set(first.values()) == set(second.values()) == {"delivered"}
        assert sorted(r["id"] for r in receiver.received) == sorted(f"ntf_{i}" for i in ids)


def test_email_html_escapes_the_text_and_links_urls() -> None:
    from paymux.notifications.email_html import email_html

    page = email_html(
        "Pay <now>",
        "Hello <b>Ann</b> & co,\n\nPay at https://pay.example/p/abc?x=1&y=2.\nThanks",
        "ro",
    )
    assert page.startswith('<!doctype html><html lang="ro">')
    assert "<title>Pay &lt;now&gt;</title>" in page and "Hello &lt;b&gt;Ann&lt;/b&gt; &amp; co," in page
    assert '<a href="https://pay.example/p/abc?x=1&amp;y=2" style="color:#0b57d0">' in page
    assert page.count('<p style="margin:0 0 12px">') == 2 and "<br>Thanks" in page
    assert 'lang="en"' in email_html("s", "t", 'x" onload="y')
