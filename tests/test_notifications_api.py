"""Admin API of notifications: permissions, templates (validated before saving, reset), webhook
endpoints (secret shown once, masked in every read), notifications with their delivery log,
manual redelivery to a real receiver, bad input answered 422."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from paymux.audit.models import AuditEvent
from paymux.auth.tokens import issue_token
from paymux.auth.user_models import User
from paymux.catalog.models import Agent
from paymux.notifications.delivery import Senders
from paymux.notifications.models import WebhookEndpoint
from paymux.notifications.service import Action, Recipient, notify
from paymux.notifications.settings import NotificationSettings
from paymux.notifications.worker import NotificationWorker
from paymux.providers.emulators.server import run_emulator
from test_backoffice_support import Bo, bo_app
from test_notifications_delivery import DATA, Receiver

A = "/api/v1/admin"
T = f"{A}/notification-templates"


async def bearer(bo: Bo, username: str, role: str) -> dict[str, str]:
    user = await bo.user(username, role)
    async with bo.hub.sessions() as s:
        u = await s.get(User, user.id)
        assert u is not None
        token, _ = await issue_token(s, u, "test", None)
        await s.commit()
    return {"Authorization": f"Bearer {token}"}


async def add_agent(bo: Bo, code: str = "bank") -> int:
    async with bo.hub.sessions() as s:
        agent = Agent(code=code, name=code.title(), enabled=True)
        s.add(agent)
        await s.commit()
        return agent.id


def problem(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = r.json()
    return body


async def test_permissions(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        support = await bearer(bo, "sue", "support")
        operator = await bearer(bo, "olga", "operator")
        cashier = await bearer(bo, "carl", "cashier")
        problem(await bo.http.get(T), 401)
        r = await bo.http.get(T, headers=cashier)
        assert problem(r, 403)["permission"] == "notifications.read"
        assert (await bo.http.get(T, headers=support)).status_code == 200
        body = {"body": "Paid {{ amount|money(currency) }}"}
        r = await bo.http.put(f"{T}/run.paid/sms/en", json=body, headers=support)
        assert problem(r, 403)["permission"] == "notifications.write"
        assert (await bo.http.put(f"{T}/run.paid/sms/en", json=body, headers=operator)).status_code == 200
        for url in (f"{A}/notifications", f"{A}/webhook-endpoints", f"{A}/agents/bank/webhook-endpoint"):
            problem(await bo.http.get(url, headers=cashier), 403)
        problem(
            await bo.http.put(
                f"{A}/agents/bank/webhook-endpoint", json={"url": "https://x.example"}, headers=support
            ),
            403,
        )
        problem(await bo.http.post(f"{A}/notifications/1/redeliver", headers=support), 403)


async def test_templates_edit_validate_reset(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        op = await bearer(bo, "olga", "operator")
        listing = (await bo.http.get(T, headers=op)).json()
        keys = {(i["event"], i["channel"], i["language"]): i for i in listing["items"]}
        assert keys[("run.paid", "sms", "ru")]["source"] == "shipped"
        assert keys[("generic", "email", "ro")]["source"] == "shipped"
        assert len(keys) == (len(listing["events"]) + 1) * 2 * 3
        one = (await bo.http.get(f"{T}/reminder.repeat/email/ro", headers=op)).json()
        assert one["source"] == "shipped" and one["preview"]["subject"] == "Plătiți din nou Mobile top-up?"
        # an event without templates of its own shows the generic one
        assert (await bo.http.get(f"{T}/invoice.issued/sms/en", headers=op)).json()["source"] == "generic"

        body = {
            "subject": "Готово: {{ service }}",
            "body": "Оплачено {{ amount|money(currency) }} ({{ due_at|date }})",
        }
        r = await bo.http.put(f"{T}/run.paid/email/ru", json=body, headers=op)
        assert r.status_code == 200, r.text
        saved = r.json()
        assert saved["source"] == "override" and saved["preview"]["subject"] == "Готово: Mobile top-up"
        assert saved["preview"]["body"] == "Оплачено 150.00 RUB ()"
        assert saved["shipped"]["subject"] == "Платёж выполнен: {{ service }}"
        # the override is what notify() renders
        agent = await add_agent(bo)
        async with bo.hub.sessions() as s:
            person = Recipient(email="ivan@example.com", language="ru")
            [nid] = await notify(s, agent_id=agent, event="run.paid", recipient=person, data=DATA, key="1")
            await s.commit()
        shown = (await bo.http.get(f"{A}/notifications/{nid}", headers=op)).json()
        assert shown["subject"] == "Готово: Mobile top-up" and shown["text"] == "Оплачено 150.00 RUB ()"

        # refused before saving, with the reason
        for url, bad, reason in [
            (f"{T}/run.paid/sms/en", {"body": "{% if %}"}, "TemplateSyntaxError"),
            (f"{T}/run.paid/sms/en", {"body": "{{ ''.__class__.__mro__ }}"}, "not allowed"),
            (f"{T}/run.paid/sms/en", {"body": "{{ 'x' * 100000000 }}"}, "not allowed"),
            (f"{T}/run.paid/email/en", {"body": "no subject"}, "needs a subject"),
            (f"{T}/run.paid/sms/en", {"body": "   "}, "empty"),
            (f"{T}/run.paid/sms/de", {"body": "x"}, "language must be one of"),
            (f"{T}/run.paid/fax/en", {"body": "x"}, "channel must be one of"),
            (f"{T}/Run Paid/sms/en", {"body": "x"}, "dotted lower-case"),
        ]:
            doc = problem(await bo.http.put(url, json=bad, headers=op), 422)
            assert reason in str(doc["detail"]), (bad, doc)
        for bad_body in ({}, {"body": 5}, {"body": "x", "extra": 1}, {"body": "x" * 20_001}, [1]):
            problem(await bo.http.put(f"{T}/run.paid/sms/en", json=bad_body, headers=op), 422)
        assert (await bo.http.get(f"{T}/run.paid/sms/en", headers=op)).json()["source"] == "shipped"

        # a preview renders without saving
        r = await bo.http.post(
            f"{T}/charge.upcoming/sms/ro/preview", json={"body": "{{ due_at|datetime }}"}, headers=op
        )
        assert r.status_code == 200 and r.json()["body"] == "10.12.2026 11:00"  # sample 09:00Z in Chisinau
        doc = problem(
            await bo.http.post(f"{T}/run.paid/sms/en/preview", json={"body": "{{ x"}, headers=op), 422
        )
        assert "TemplateSyntaxError" in str(doc["detail"])
        assert (await bo.http.get(f"{T}/charge.upcoming/sms/ro", headers=op)).json()["source"] == "shipped"
        r = await bo.http.delete(f"{T}/run.paid/email/ru", headers=op)
        assert r.status_code == 200 and r.json()["source"] == "shipped"
        assert r.json()["subject"] == "Платёж выполнен: {{ service }}"
        async with bo.hub.read_sessions() as s:
            actions = list((await s.scalars(select(AuditEvent.action).order_by(AuditEvent.seq))).all())
        assert actions[-2:] == ["notification_template.put", "notification_template.reset"]


async def test_webhook_endpoint_secret_shown_once_and_masked(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        op = await bearer(bo, "olga", "operator")
        await add_agent(bo)
        url = f"{A}/agents/bank/webhook-endpoint"
        problem(await bo.http.get(url, headers=op), 404)
        r = await bo.http.put(url, json={"url": "https://bank.example/hooks"}, headers=op)
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        assert secret.startswith("whsec_") and len(secret) > 40
        Webhook(secret)  # a secret the library takes
        for read in (
            await bo.http.get(url, headers=op),
            await bo.http.get(f"{A}/webhook-endpoints", headers=op),
        ):
            assert read.status_code == 200 and secret not in read.text and secret[6:] not in read.text
        assert (await bo.http.get(url, headers=op)).json()["secret"] == "***"
        r = await bo.http.put(url, json={"url": "https://bank.example/v2", "enabled": False}, headers=op)
        assert r.status_code == 200 and r.json()["secret"] == "***" and r.json()["enabled"] is False
        async with bo.hub.read_sessions() as s:
            assert await s.scalar(select(WebhookEndpoint.secret)) == secret  # unchanged by the update
        rotated = (await bo.http.post(f"{url}/secret", headers=op)).json()["secret"]
        assert rotated.startswith("whsec_") and rotated != secret
        async with bo.hub.read_sessions() as s:
            audit_text = " ".join(
                str(e.after) + str(e.before) for e in (await s.scalars(select(AuditEvent))).all()
            )
        assert secret not in audit_text and rotated not in audit_text
        for bad in (
            {"url": "ftp://x.example"},
            {"url": "not a url"},
            {"url": ""},
            {"url": 5},
            {},
            {"url": "https://x.example", "secret": "mine"},
        ):
            problem(await bo.http.put(url, json=bad, headers=op), 422)
        problem(
            await bo.http.put(
                f"{A}/agents/nobody/webhook-endpoint", json={"url": "https://x.example"}, headers=op
            ),
            404,
        )
        # a password in the URL is masked in reads; sent back as shown, it is kept
        with_password = {"url": "https://hook:pa55word@bank.example/v3", "enabled": True}
        assert (await bo.http.put(url, json=with_password, headers=op)).json()[
            "url"
        ] == "https://hook:***@bank.example/v3"
        read = await bo.http.get(url, headers=op)
        assert "pa55word" not in read.text
        assert (await bo.http.put(url, json={"url": read.json()["url"]}, headers=op)).status_code == 200
        async with bo.hub.read_sessions() as s:
            assert await s.scalar(select(WebhookEndpoint.url)) == "https://hook:pa55word@bank.example/v3"
        assert (await bo.http.delete(url, headers=op)).status_code == 204
        problem(await bo.http.get(url, headers=op), 404)
        problem(await bo.http.delete(url, headers=op), 404)


async def test_delivery_log_and_manual_redelivery(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        op = await bearer(bo, "olga", "operator")
        await add_agent(bo)
        receiver = Receiver("")
        async with run_emulator(receiver.app()) as base:
            r = await bo.http.put(
                f"{A}/agents/bank/webhook-endpoint", json={"url": f"{base}/hook"}, headers=op
            )
            receiver.secret = r.json()["secret"]
            receiver.statuses = [500]
            async with bo.hub.sessions() as s:
                agent = await s.scalar(select(Agent.id).where(Agent.code == "bank"))
                assert agent is not None
                [nid] = await notify(
                    s,
                    agent_id=agent,
                    event="debt.confirm",
                    recipient=Recipient(reference="c-9"),
                    data=DATA,
                    key="d-1",
                    actions=[Action("confirm", "https://bank.example/c", "tok-secret")],
                )
                await s.commit()
            settings = NotificationSettings()
            async with httpx.AsyncClient() as http:
                worker = NotificationWorker(bo.hub, Senders(http, settings))
                assert await worker.run_round() == {nid: "pending"}
                shown = (await bo.http.get(f"{A}/notifications/{nid}", headers=op)).json()
                assert [(a["ok"], a["status_code"]) for a in shown["delivery_log"]] == [(False, 500)]
                assert shown["status"] == "pending" and shown["next_attempt_at"] is not None
                assert "tok-secret" not in str(shown) and shown["actions"][0]["token"] == "***"
                # redeliver now instead of waiting for the backoff
                r = await bo.http.post(f"{A}/notifications/{nid}/redeliver", headers=op)
                assert r.status_code == 200 and r.json()["status"] == "pending"
                assert await worker.run_round() == {nid: "delivered"}
                # a delivered one may be sent again too (the receiver lost it)
                assert (
                    await bo.http.post(f"{A}/notifications/{nid}/redeliver", headers=op)
                ).status_code == 200
                assert await worker.run_round() == {nid: "delivered"}
            assert [x["status"] for x in receiver.received] == [500, 200, 200]
            assert {x["id"] for x in receiver.received} == {f"ntf_{nid}"}
            assert (
                receiver.received[-1]["payload"]["actions"][0]["token"] == "tok-secret"
            )  # the agent gets it
            shown = (await bo.http.get(f"{A}/notifications/{nid}", headers=op)).json()
            assert [(a["ok"], a["status_code"]) for a in shown["delivery_log"]] == [
                (False, 500),
                (True, 200),
                (True, 200),
            ]
            listing = (
                await bo.http.get(
                    f"{A}/notifications", params={"agent": "bank", "reference": "c-9"}, headers=op
                )
            ).json()
            assert [i["id"] for i in listing["items"]] == [nid]
            assert (await bo.http.get(f"{A}/notifications", params={"status": "failed"}, headers=op)).json()[
                "items"
            ] == []


@pytest.mark.parametrize(
    "path",
    [
        f"{A}/notifications/abc",
        f"{A}/notifications/0",
        f"{A}/notifications/99999999999999999999999",
        f"{A}/notifications?limit=0",
        f"{A}/notifications?limit=100000",
        f"{A}/notifications?before_id=-1",
        f"{A}/notifications?status=lost",
        f"{A}/notifications?channel=fax",
    ],
)
async def test_bad_input_is_422(db_url: str, path: str) -> None:
    async with bo_app(db_url) as bo:
        op = await bearer(bo, "olga", "operator")
        problem(await bo.http.get(path, headers=op), 422)


async def test_unknown_notification_is_404(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        op = await bearer(bo, "olga", "operator")
        problem(await bo.http.get(f"{A}/notifications/12345", headers=op), 404)
        problem(await bo.http.post(f"{A}/notifications/12345/redeliver", headers=op), 404)
