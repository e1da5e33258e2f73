"""Low-balance alerts: once per crossing, re-armed above the threshold, delivered by real SMTP and a real
HTTP webhook (HMAC-signed), retried with growing intervals while the receiver is down."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import select

from paymux.auth.signing import hmac_sign
from paymux.ledger.service import SYSTEM, AccountKey, Line, post_entry
from paymux.providers.emulators.server import run_emulator
from paymux.settlement.alerts import AlertWorker, deliver
from paymux.settlement.models import BalanceAlert
from paymux.settlement.settings import SettlementSettings
from paymux.worker.jobs import claim_due
from paymux.worker.settlement import running_alert_worker
from registers_servers import free_port
from test_settlement_support import SEnv, WebhookReceiver, settle_env

SECRET = "whsec-test-0123456789"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


def start_smtp() -> tuple[Controller, Inbox, int]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, inbox, port


async def _move(env: SEnv, amount: int) -> None:
    """Top up (amount > 0) or spend (amount < 0) p1's deposit."""
    pid = await env.provider_id("p1")
    async with env.hub.sessions() as s:
        await post_entry(
            s,
            env.hub.accounts,
            "topup" if amount > 0 else "accept",
            [
                Line(AccountKey("provider_deposit", pid, "RUB"), amount),
                Line(AccountKey("bank", SYSTEM, "RUB"), -amount),
            ],
        )
        await s.commit()


async def _alerts(env: SEnv) -> list[BalanceAlert]:
    async with env.hub.read_sessions() as s:
        return list((await s.scalars(select(BalanceAlert).order_by(BalanceAlert.id))).all())


def _settings(smtp_port: int, **kw: Any) -> SettlementSettings:
    return SettlementSettings(
        smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_from="paymux@test.local", retry_base_seconds=60, **kw
    )


async def test_alert_once_per_crossing_by_email_and_signed_webhook(db_url: str) -> None:
    controller, inbox, smtp_port = start_smtp()
    receiver = WebhookReceiver()
    try:
        async with settle_env(db_url) as env, run_emulator(receiver.app()) as base:
            await _move(env, 100_000)  # 1000.00
            r = await env.http.put(
                "/api/v1/admin/providers/p1/balance-alert-rules/RUB",
                json={
                    "threshold": "500.00",
                    "emails": ["cfo@example.com", "treasury@example.com"],
                    "webhook_url": f"{base}/hook",
                    "webhook_secret": SECRET,
                },
                headers=env.admin,
            )
            assert r.status_code == 200, r.text
            assert r.json()["webhook_secret"] == "***"
            worker = AlertWorker(env.hub, _settings(smtp_port))
            assert await worker.run_once(dt.datetime.now(dt.UTC)) == {}  # above the threshold: nothing

            await _move(env, -60_000)  # 400.00: below
            done = await worker.run_once(dt.datetime.now(dt.UTC))
            assert list(done.values()) == ["done"]
            await _move(env, -10_000)  # 300.00: still below, same crossing
            assert await worker.run_once(dt.datetime.now(dt.UTC)) == {}
            assert len(await _alerts(env)) == 1

            assert len(inbox.messages) == 1
            msg = inbox.messages[0]
            assert sorted(inbox.recipients[0]) == ["cfo@example.com", "treasury@example.com"]
            assert "Low balance: p1 400.00 RUB" in msg["Subject"]
            assert "500.00" in msg.get_payload()

            assert len(receiver.received) == 1
            headers, body = receiver.received[0]
            assert headers["x-paymux-signature"] == hmac_sign(SECRET, headers["x-paymux-timestamp"], body)
            data = json.loads(body)
            assert (data["event"], data["provider"], data["balance"], data["threshold"]) == (
                "balance.low",
                "p1",
                "400.00",
                "500.00",
            )

            await _move(env, 30_000)  # 600.00: back above, re-armed, no alert
            assert await worker.run_once(dt.datetime.now(dt.UTC)) == {}
            await _move(env, -20_000)  # 400.00: a new crossing
            assert list((await worker.run_once(dt.datetime.now(dt.UTC))).values()) == ["done"]
            assert len(inbox.messages) == 2 and len(receiver.received) == 2
            assert [a.status for a in await _alerts(env)] == ["done", "done"]

            r = await env.http.get("/api/v1/admin/balance-alerts", headers=env.admin)
            assert [(a["provider"], a["status"], sorted(a["delivered"])) for a in r.json()] == [
                ("p1", "done", ["email", "webhook"]),
                ("p1", "done", ["email", "webhook"]),
            ]
    finally:
        controller.stop()


async def test_webhook_retried_with_growing_intervals_while_down(db_url: str) -> None:
    controller, inbox, smtp_port = start_smtp()
    hook_port = free_port()  # nothing listens there yet: the receiver is down
    receiver = WebhookReceiver()
    try:
        async with settle_env(db_url) as env:
            await env.http.put(
                "/api/v1/admin/providers/p1/balance-alert-rules/RUB",
                json={
                    "threshold": "500.00",
                    "emails": ["cfo@example.com"],
                    "webhook_url": f"http://127.0.0.1:{hook_port}/hook",
                    "webhook_secret": SECRET,
                },
                headers=env.admin,
            )
            worker = AlertWorker(env.hub, _settings(smtp_port, max_attempts=5))
            now = dt.datetime.now(dt.UTC)
            assert list((await worker.run_once(now)).values()) == ["pending"]  # balance 0 < 500.00
            (a,) = await _alerts(env)
            assert a.attempts == 1 and "webhook" in (a.last_error or "") and list(a.delivered) == ["email"]
            first_wait = a.due_at - now
            assert dt.timedelta(seconds=60) <= first_wait <= dt.timedelta(seconds=67)
            assert await worker.run_once(now + dt.timedelta(seconds=30)) == {}  # not due yet

            assert list((await worker.run_once(a.due_at + dt.timedelta(seconds=1))).values()) == ["pending"]
            (a2,) = await _alerts(env)
            second_wait = a2.due_at - (a.due_at + dt.timedelta(seconds=1))
            assert a2.attempts == 2 and dt.timedelta(seconds=120) <= second_wait <= dt.timedelta(seconds=133)

            async with run_emulator(receiver.app(), port=hook_port):  # the receiver is back
                done = await worker.run_once(a2.due_at + dt.timedelta(seconds=1))
            assert list(done.values()) == ["done"]
            (a3,) = await _alerts(env)
            assert a3.status == "done" and a3.attempts == 3 and a3.last_error is None
            assert len(receiver.received) == 1
            assert len(inbox.messages) == 1  # the e-mail went once, on the first attempt
    finally:
        controller.stop()


async def test_alert_given_up_after_max_attempts_then_retried_by_hand(db_url: str) -> None:
    receiver = WebhookReceiver(fail_with=503)
    async with settle_env(db_url) as env, run_emulator(receiver.app()) as base:
        await env.http.put(
            "/api/v1/admin/providers/p1/balance-alert-rules/RUB",
            json={"threshold": "1.00", "webhook_url": f"{base}/hook", "webhook_secret": SECRET},
            headers=env.admin,
        )
        worker = AlertWorker(env.hub, SettlementSettings(max_attempts=2, retry_base_seconds=1))
        t = dt.datetime.now(dt.UTC)
        assert list((await worker.run_once(t)).values()) == ["pending"]
        assert list((await worker.run_once(t + dt.timedelta(seconds=10))).values()) == ["failed"]
        (a,) = await _alerts(env)
        assert a.status == "failed" and "HTTP 503" in (a.last_error or "")
        receiver.fail_with = None
        r = await env.http.post(f"/api/v1/admin/balance-alerts/{a.id}/retry", headers=env.admin)
        assert r.status_code == 200 and r.json()["status"] == "pending"
        assert list((await worker.run_once(dt.datetime.now(dt.UTC))).values()) == ["done"]
        assert len(receiver.received) == 1


async def test_running_alert_worker_hook_delivers(db_url: str) -> None:
    receiver = WebhookReceiver()
    async with settle_env(db_url) as env, run_emulator(receiver.app()) as base:
        await env.http.put(
            "/api/v1/admin/providers/p1/balance-alert-rules/RUB",
            json={"threshold": "1.00", "webhook_url": f"{base}/hook"},
            headers=env.admin,
        )
        settings = SettlementSettings(check_seconds=0.05, poll_seconds=0.05)
        async with running_alert_worker(env.hub, settings):
            for _ in range(200):
                if receiver.received:
                    break
                await asyncio.sleep(0.02)
        assert len(receiver.received) == 1
        assert "x-paymux-signature" not in receiver.received[0][0]  # no secret, no signature


async def test_rule_problems(db_url: str) -> None:
    async with settle_env(db_url) as env:
        url = "/api/v1/admin/providers/p1/balance-alert-rules/RUB"
        for body, slug in (
            ({"threshold": "abc", "emails": ["a@b.cd"]}, "invalid-amount"),
            ({"threshold": "1.00", "emails": ["not-an-address"]}, "invalid-email"),
            ({"threshold": "1.00"}, "no-destination"),
            ({"threshold": "1.00", "webhook_url": "ftp://x"}, "invalid-url"),
        ):
            r = await env.http.put(url, json=body, headers=env.admin)
            assert r.status_code == 422 and r.json()["type"].endswith(slug), r.text
        r = await env.http.put(
            "/api/v1/admin/providers/p2/balance-alert-rules/RUB",
            json={"threshold": "1.00", "emails": ["a@b.cd"]},
            headers=env.admin,
        )
        assert r.status_code == 422 and r.json()["type"].endswith("not-prepaid")


async def test_a_worker_that_paused_past_its_lease_sends_no_alert_once_it_was_taken_over(db_url: str) -> None:
    """Each round claims under a lease of its own, renewed in the database right before anything is
    sent: a worker that wakes after another took its alert over sends nothing; the other sends once."""
    controller, inbox, smtp_port = start_smtp()
    try:
        async with settle_env(db_url) as env:
            await _move(env, 100_000)
            r = await env.http.put(
                "/api/v1/admin/providers/p1/balance-alert-rules/RUB",
                json={"threshold": "500.00", "emails": ["cfo@example.com"]},
                headers=env.admin,
            )
            assert r.status_code == 200, r.text
            await _move(env, -60_000)
            settings = _settings(smtp_port, lease_seconds=30)
            paused, taker = AlertWorker(env.hub, settings), AlertWorker(env.hub, settings)
            (alert_id,) = await paused.check(dt.datetime.now(dt.UTC))
            now = dt.datetime.now(dt.UTC)
            assert await claim_due(env.hub, BalanceAlert, "a-paused.1", 10, 30, now) == [alert_id]
            later = now + dt.timedelta(seconds=31)  # its lease ran out: taken over
            assert await claim_due(env.hub, BalanceAlert, "a-taker.1", 10, 30, later) == [alert_id]
            assert await deliver(env.hub, alert_id, "a-paused.1", settings) == "lost"
            assert inbox.messages == []
            assert await deliver(env.hub, alert_id, "a-taker.1", settings) == "done"
            assert len(inbox.messages) == 1
            assert paused.owner != taker.owner
    finally:
        controller.stop()
