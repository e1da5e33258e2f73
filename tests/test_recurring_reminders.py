"""Hidden subscriptions (recurring/reminders.py): periodic services, the payment's customer, reminders
remembered after a payment succeeds, sent one period later with three actions, each action and its
idempotency over the channel API, opt-out, conversion. A hub serving on loopback with emulators."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from harness import BASE_CATALOG, Env, hub_env
from paymux.catalog.file import apply_catalog, dump_yaml, export_catalog, load_yaml
from paymux.catalog.models import Agent, Channel, Service
from paymux.db.base import utcnow
from paymux.notifications.models import Notification, WebhookEndpoint
from paymux.notifications.service import Recipient
from paymux.payments.models import Payment
from paymux.recurring import reminders
from paymux.recurring.models import Customer, RecurringAgent, Subscription, Template
from paymux.recurring.reminder_models import Reminder

PHONE = "9001234567"
REFUSED = "9009999999"  # every provider refuses payments to it


def catalog() -> dict[str, Any]:
    cat = copy.deepcopy(BASE_CATALOG)
    phone = copy.deepcopy(cat["services"][0])
    phone.update(code="phone", name="Mobile phone bill", periodic_days=30)
    weekly = copy.deepcopy(cat["services"][0])
    weekly.update(code="weekly", name="Weekly parking", periodic_days=7)
    cat["services"] += [phone, weekly]
    cat["agents"].append({"code": "other", "name": "Other bank"})
    cat["channels"] += [
        {
            "code": "auto",
            "name": "Autopayments",
            "kind": "internet_bank",
            "group": "online",
            "agent": "dealer",
        },
        {
            "code": "otherapp",
            "name": "Other bank app",
            "kind": "mobile_bank",
            "group": "online",
            "agent": "other",
        },
    ]
    return cat


class Recorder:
    """Records what send_due notifies, then notifies for real (paymux.notifications)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, session: Any, **kw: Any) -> list[int]:
        self.calls.append(kw)
        return await reminders.notify_via_notifications(session, **kw)


@contextlib.asynccontextmanager
async def reminder_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Env, Recorder]]:
    recorder = Recorder()
    monkeypatch.setattr(reminders, "NOTIFIER", recorder)
    refused = {"accounts": {REFUSED: {"pay": "fatal:7:payments to this account are forbidden"}}}
    async with hub_env(
        db_url, catalog=catalog(), emulators=dict.fromkeys(("p1", "p2", "p3"), refused)
    ) as env:
        async with env.hub.sessions() as s:
            agent = await s.scalar(select(Agent.id).where(Agent.code == "dealer"))
            auto = await s.scalar(select(Channel.id).where(Channel.code == "auto"))
            s.add(
                RecurringAgent(
                    agent_id=agent, channel_id=auto, funding_protocol="jsonhttp", funding_config={}
                )
            )
            # the agent's webhook: every reminder has a way out (nobody listens there in these tests)
            s.add(WebhookEndpoint(agent_id=agent, url="http://127.0.0.1:9/hook", secret="whsec_" + "A" * 32))
            await s.commit()
        yield env, recorder


async def paid(env: Env, channel: str = "term", **body: Any) -> dict[str, Any]:
    r = await env.pay(channel, **body)
    assert r.status_code == 201, r.text
    final = await env.wait_final(r.json()["id"], channel)
    assert final["status"] == "succeeded", final
    return final


async def sweep(env: Env) -> list[int]:
    return (await reminders.sweep(env.hub, now=utcnow() + dt.timedelta(minutes=1))).created


async def reminder(env: Env, rid: int) -> Reminder:
    async with env.hub.sessions() as s:
        r = await s.get(Reminder, rid)
        assert r is not None
        return r


async def sent_token(env: Env, recorder: Recorder, rid: int) -> str:
    r = await reminder(env, rid)
    result = await reminders.send_due(env.hub, now=r.due_at + dt.timedelta(seconds=1))
    assert rid in result.sent
    call = recorder.calls[-1]
    token: str = call["actions"][0].token
    return token


async def act(env: Env, token: str, action: str, channel: str = "term") -> httpx.Response:
    return await env.http.post(f"/api/v1/reminders/{token}/{action}", headers=env.headers(channel))


# --- the catalog flag and the payment's customer --------------------------------------------------


async def test_periodic_days_round_trips_through_the_catalog_file_and_admin_api(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, _):
        async with env.hub.sessions() as s:
            exported = await export_catalog(s)
        text = dump_yaml(exported)
        assert "periodic_days: 30" in text and "periodic_days: 7" in text
        back = load_yaml(text)
        by_code = {s.code: s.periodic_days for s in back.services}
        assert by_code == {"topup": None, "phone": 30, "weekly": 7}
        async with env.hub.sessions() as s:
            report = await apply_catalog(s, back, actor="test")
            await s.commit()
        assert not report.changed  # applying the export changes nothing
        r = await env.http.get("/api/v1/admin/services/phone", headers=env.admin)
        assert r.status_code == 200 and r.json()["periodic_days"] == 30
        body = r.json() | {"periodic_days": 31}
        r = await env.http.put("/api/v1/admin/services/phone", json=body, headers=env.admin)
        assert r.status_code == 200, r.text
        assert (await env.http.get("/api/v1/admin/services/phone", headers=env.admin)).json()[
            "periodic_days"
        ] == 31
        for bad in (0, 367, "x", -1):
            r = await env.http.put(
                "/api/v1/admin/services/phone", json=body | {"periodic_days": bad}, headers=env.admin
            )
            assert r.status_code == 422, (bad, r.text)
        async with env.hub.sessions() as s:
            assert await s.scalar(select(Service.periodic_days).where(Service.code == "phone")) == 31


async def test_the_payment_keeps_its_customer_and_refuses_a_bad_one(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, _):
        r = await env.pay(service="phone", customer="C-1001", external_id="with-customer")
        assert r.status_code == 201, r.text
        async with env.hub.sessions() as s:
            assert (await s.get(Payment, r.json()["id"])).customer == "C-1001"  # type: ignore[union-attr]
        again = await env.pay(service="phone", customer="C-1001", external_id="with-customer")
        assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
        other = await env.pay(service="phone", customer="C-2002", external_id="with-customer")
        assert other.status_code == 409  # the same external id for another customer
        for bad in ("", "x" * 65, "C\x00", 17, ["C"]):
            r = await env.pay(service="phone", customer=bad)
            assert r.status_code == 422, (bad, r.text)
        plain = await env.pay(service="phone")
        async with env.hub.sessions() as s:
            assert (await s.get(Payment, plain.json()["id"])).customer is None  # type: ignore[union-attr]


# --- remembering ----------------------------------------------------------------------------------


async def test_a_reminder_is_remembered_only_for_a_succeeded_periodic_payment_with_a_customer(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, _):
        one = await paid(env, service="phone", customer="C-1", amount="250.00")
        await paid(env, service="topup", customer="C-1")  # not periodic
        await paid(env, service="phone")  # no customer
        await paid(env, "web", service="phone", customer="C-1")  # a channel of no agent: no customer
        failed = await env.pay(service="phone", customer="C-1", account=REFUSED)
        assert (await env.wait_final(failed.json()["id"]))["status"] == "failed"
        created = await sweep(env)
        assert len(created) == 1
        r = await reminder(env, created[0])
        assert (r.reference, r.account, r.amount, r.currency, r.status) == (
            "C-1",
            PHONE,
            250_00,
            "RUB",
            "pending",
        )
        assert r.payment_id == one["id"]
        assert r.due_at == r.paid_at + dt.timedelta(days=30)
        assert r.token_hash is None  # the token is made when the reminder is sent
        assert await sweep(env) == []  # the sweep moved past them: nothing twice


async def test_no_reminder_when_the_customer_already_subscribed_or_opted_out(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, _):
        async with env.hub.sessions() as s:
            agent = await s.scalar(select(Agent.id).where(Agent.code == "dealer"))
            service = await s.scalar(select(Service.id).where(Service.code == "phone"))
            sub_c = Customer(agent_id=agent, reference="SUB", currency="RUB")
            off_c = Customer(agent_id=agent, reference="OFF", currency="RUB", reminders=False)
            s.add_all([sub_c, off_c])
            await s.flush()
            t = Template(
                customer_id=sub_c.id, key="t", name="phone", service_id=service, account=PHONE, currency="RUB"
            )
            s.add(t)
            await s.flush()
            s.add(
                Subscription(
                    customer_id=sub_c.id,
                    template_id=t.id,
                    key="s",
                    kind="scheduled",
                    currency="RUB",
                    amount=100_00,
                    period="monthly",
                    day_of_month=5,
                    start_date=dt.date(2026, 1, 1),
                )
            )
            await s.commit()
        await paid(env, service="phone", customer="SUB")
        await paid(env, service="phone", customer="OFF")
        other_account = await paid(env, service="phone", customer="SUB", account="9001111111")
        created = await sweep(env)
        assert len(created) == 1  # only the account the subscription does not cover
        assert (await reminder(env, created[0])).payment_id == other_account["id"]


async def test_a_newer_payment_supersedes_the_pending_reminder(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, _):
        await paid(env, service="phone", customer="C-1")
        [first] = await sweep(env)
        await paid(env, service="phone", customer="C-1", amount="300.00")
        [second] = await sweep(env)
        assert (await reminder(env, first)).status == "expired"
        assert (await reminder(env, second)).amount == 300_00


# --- sending and the actions ----------------------------------------------------------------------


async def test_the_reminder_is_sent_one_period_later_with_three_actions(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, recorder):
        await paid(env, service="phone", customer="C-1", amount="250.00")
        [rid] = await sweep(env)
        r = await reminder(env, rid)
        early = await reminders.send_due(env.hub, now=r.due_at - dt.timedelta(seconds=1))
        assert early.sent == [] and recorder.calls == []
        result = await reminders.send_due(env.hub, now=r.due_at)
        assert result.sent == [rid]
        [call] = recorder.calls
        assert call["event"] == "reminder.repeat" and call["key"] == f"reminder:{rid}"
        assert call["recipient"] == Recipient(reference="C-1")
        assert (call["data"]["amount"], call["data"]["currency"], call["data"]["service"]) == (
            250_00,
            "RUB",
            "Mobile phone bill",
        )
        assert call["data"]["account"] == PHONE and call["data"]["paid_at"] == r.paid_at
        assert [a.name for a in call["actions"]] == ["repeat", "subscribe", "opt_out"]
        token = call["actions"][0].token
        assert token and {a.token for a in call["actions"]} == {token}
        assert call["actions"][2].url == f"/api/v1/reminders/{token}/opt-out"
        async with env.hub.read_sessions() as s:
            [notice] = (
                await s.scalars(select(Notification).where(Notification.key == f"reminder:{rid}"))
            ).all()
        assert (notice.event, notice.channel, notice.reference) == ("reminder.repeat", "webhook", "C-1")
        assert [a["name"] for a in notice.payload["actions"]] == ["repeat", "subscribe", "opt_out"]
        assert notice.payload["actions"][0]["token"] == token
        assert notice.payload["data"]["amount"] == 250_00
        after = await reminder(env, rid)
        assert after.status == "sent" and after.token_hash == reminders.token_hash(token)
        assert token not in str(after.__dict__)  # only the hash is kept
        again = await reminders.send_due(env.hub, now=r.due_at + dt.timedelta(days=1))
        assert again.sent == [] and len(recorder.calls) == 1  # once


async def test_repeat_pays_again_once_under_the_recurring_channel(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, recorder):
        await paid(env, service="phone", customer="C-1", amount="250.00", fields={})
        [rid] = await sweep(env)
        token = await sent_token(env, recorder, rid)
        first = await act(env, token, "repeat")
        assert first.status_code == 200, first.text
        out = first.json()
        assert (out["action"], out["status"], out["reminder_id"]) == ("repeat", "repeated", rid)
        second = await act(env, token, "repeat")
        assert second.status_code == 200 and second.json() == out  # the same answer
        async with env.hub.sessions() as s:
            p = await s.get(Payment, out["payment_id"])
            assert p is not None
            auto = await s.scalar(select(Channel.id).where(Channel.code == "auto"))
            assert (p.channel_id, p.external_id, p.amount, p.account, p.customer) == (
                auto,
                f"reminder-{rid}",
                250_00,
                PHONE,
                "C-1",
            )
            count = await s.scalar(select(Payment.id).where(Payment.external_id.like("reminder-%")).limit(2))
            assert count == p.id
        final = await env.wait_final(out["payment_id"], "auto")
        assert final["status"] == "succeeded"
        # the repeat is itself a payment of the customer: reminded a period later in its turn
        [next_one] = await sweep(env)
        assert (await reminder(env, next_one)).payment_id == out["payment_id"]


async def test_subscribe_repeats_and_saves_a_template_and_a_monthly_subscription(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, recorder):
        await paid(env, service="phone", customer="C-1", amount="250.00")
        [rid] = await sweep(env)
        token = await sent_token(env, recorder, rid)
        r = await act(env, token, "subscribe")
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["status"] == "subscribed" and out["payment_id"] and out["subscription_id"]
        assert (await act(env, token, "subscribe")).json() == out
        repeat = await act(env, token, "repeat")  # already repeated by subscribe: the same payment
        assert repeat.json()["payment_id"] == out["payment_id"]
        service_id = (await reminder(env, rid)).service_id
        async with env.hub.sessions() as s:
            sub = await s.get(Subscription, out["subscription_id"])
            assert sub is not None
            tpl = await s.get(Template, sub.template_id)
            customer = await s.get(Customer, sub.customer_id)
            assert tpl is not None and customer is not None
            assert (customer.reference, customer.reminders) == ("C-1", True)
            assert (tpl.service_id, tpl.account, tpl.amount) == (
                service_id,
                PHONE,
                250_00,
            )
            assert (sub.kind, sub.status, sub.period, sub.amount, sub.currency) == (
                "scheduled",
                "active",
                "monthly",
                250_00,
                "RUB",
            )
            today = utcnow().date()
            assert sub.day_of_month == today.day
            assert sub.next_due_at is not None
            assert dt.timedelta(days=27) < sub.next_due_at - utcnow() < dt.timedelta(days=32)  # next month
            subs = (
                await s.scalars(select(Subscription.id).where(Subscription.customer_id == customer.id))
            ).all()
            assert list(subs) == [sub.id]  # idempotent
        await env.wait_final(out["payment_id"], "auto")
        assert await sweep(env) == []  # subscribed now: its payments are not reminded


async def test_a_weekly_service_subscribes_every_seven_days(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, recorder):
        await paid(env, service="weekly", customer="C-1")
        [rid] = await sweep(env)
        assert (await reminder(env, rid)).due_at - (await reminder(env, rid)).paid_at == dt.timedelta(days=7)
        token = await sent_token(env, recorder, rid)
        out = (await act(env, token, "subscribe")).json()
        async with env.hub.sessions() as s:
            sub = await s.get(Subscription, out["subscription_id"])
            assert sub is not None and (sub.period, sub.every_days) == ("days", 7)


async def test_opt_out_stops_further_reminders(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, recorder):
        await paid(env, service="weekly", customer="C-1")  # due in 7 days
        await paid(env, service="phone", customer="C-1")  # due in 30
        first, pending = await sweep(env)
        token = await sent_token(env, recorder, first)
        r = await act(env, token, "opt-out")
        assert r.status_code == 200, r.text
        out = r.json()
        assert (out["status"], out["reminders"], out["payment_id"]) == ("opted_out", False, None)
        assert (await act(env, token, "opt-out")).json() == out
        async with env.hub.sessions() as s:
            c = await s.scalar(select(Customer).where(Customer.reference == "C-1"))
            assert c is not None and c.reminders is False
        assert (await reminder(env, pending)).status == "expired"  # the other one will not be sent
        await paid(env, service="phone", customer="C-1")
        assert await sweep(env) == []  # nor any new one
        calls = len(recorder.calls)
        await reminders.send_due(env.hub, now=utcnow() + dt.timedelta(days=400))
        assert len(recorder.calls) == calls


async def test_opting_out_before_the_reminder_is_due_skips_it(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, recorder):
        await paid(env, service="phone", customer="C-1")
        [rid] = await sweep(env)
        async with env.hub.sessions() as s:
            agent = await s.scalar(select(Agent.id).where(Agent.code == "dealer"))
            s.add(Customer(agent_id=agent, reference="C-1", currency="RUB", reminders=False))
            await s.commit()
        r = await reminder(env, rid)
        result = await reminders.send_due(env.hub, now=r.due_at)
        assert result.skipped == [rid] and recorder.calls == []
        assert (await reminder(env, rid)).status == "expired"


async def test_tokens_are_checked_and_bound_to_the_agent(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, recorder):
        await paid(env, service="phone", customer="C-1")
        [rid] = await sweep(env)
        token = await sent_token(env, recorder, rid)
        for action in ("repeat", "subscribe", "opt-out"):
            assert (await act(env, token, action, "otherapp")).status_code == 404  # another agent
            assert (await act(env, token, action, "web")).status_code == 404  # a channel of no agent
            r = await env.http.post(f"/api/v1/reminders/{token}/{action}")
            assert r.status_code == 401
        for bad in (
            "x",
            "a" * 43,
            token[:-1] + ("A" if token[-1] != "A" else "B"),
            "%00" * 40,
            "é" * 40,
            "a" * 300,
        ):
            r = await act(env, bad, "repeat")
            assert r.status_code in (404, 422), (bad, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        assert (await act(env, token, "unknown")).status_code in (404, 405)
        assert (await reminder(env, rid)).status == "sent"  # none of that did anything


async def test_actions_expire_when_unused(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, recorder):
        await paid(env, service="phone", customer="C-1")
        [rid] = await sweep(env)
        token = await sent_token(env, recorder, rid)
        r = await reminder(env, rid)
        assert r.expires_at is not None
        result = await reminders.send_due(env.hub, now=r.expires_at + dt.timedelta(seconds=1))
        assert result.expired == 1
        assert (await reminder(env, rid)).status == "expired"
        gone = await act(env, token, "repeat")
        assert gone.status_code == 410 and gone.json()["type"].endswith("reminder-expired")


# --- conversion -----------------------------------------------------------------------------------


async def test_conversion_counts_and_rates(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, recorder):
        accounts = [f"90000000{i:02d}" for i in range(5)]
        for i, account in enumerate(accounts):
            await paid(env, service="phone", customer=f"C-{i}", account=account)
        created = await sweep(env)
        assert len(created) == 5
        last = await reminder(env, created[-1])
        assert (await reminders.send_due(env.hub, now=last.due_at)).sent == created
        by_id = {c["data"]["reminder_id"]: c["actions"][0].token for c in recorder.calls}
        tokens = [by_id[rid] for rid in created]
        assert (await act(env, tokens[0], "repeat")).status_code == 200
        assert (await act(env, tokens[1], "subscribe")).status_code == 200
        assert (await act(env, tokens[1], "repeat")).status_code == 200  # subscribed counts once
        assert (await act(env, tokens[2], "opt-out")).status_code == 200
        assert (await act(env, tokens[2], "opt-out")).status_code == 200
        first = await reminder(env, created[0])
        assert first.sent_at is not None
        since, until = first.sent_at - dt.timedelta(days=1), first.sent_at + dt.timedelta(days=1)
        async with env.hub.read_sessions() as s:
            c = await reminders.conversion(s, since=since, until=until)
            none = await reminders.conversion(s, since=until, until=until + dt.timedelta(days=1))
            other = await reminders.conversion(s, since=since, until=until, agent_id=10**9)
            days = await reminders.conversion_by_day(
                s, since=since.date(), until=until.date() + dt.timedelta(days=1)
            )
        assert (c.sent, c.repeated, c.subscribed, c.opted_out, c.converted) == (5, 1, 1, 1, 2)
        assert (c.repeat_rate, c.subscribe_rate, c.opt_out_rate, c.conversion_rate) == (
            Decimal("0.2000"),
            Decimal("0.2000"),
            Decimal("0.2000"),
            Decimal("0.4000"),
        )
        assert c.as_json()["conversion_rate"] == "0.4000"
        assert (none.sent, none.conversion_rate) == (0, Decimal("0.0000"))
        assert other.sent == 0
        assert sum(d.sent for _, d in days) == 5


async def test_a_reminder_nobody_can_receive_is_not_counted_as_sent(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, recorder):
        async with env.hub.sessions() as s:
            hook = await s.scalar(select(WebhookEndpoint))
            assert hook is not None
            hook.enabled = False
            await s.commit()
        await paid(env, service="phone", customer="C-1")
        [rid] = await sweep(env)
        r = await reminder(env, rid)
        result = await reminders.send_due(env.hub, now=r.due_at)
        assert result.skipped == [rid] and len(recorder.calls) == 1
        after = await reminder(env, rid)
        assert (after.status, after.sent_at, after.token_hash) == ("expired", None, None)
        # with an e-mail address the next one reaches the customer
        async with env.hub.sessions() as s:
            agent = await s.scalar(select(Agent.id).where(Agent.code == "dealer"))
            s.add(
                Customer(
                    agent_id=agent, reference="C-1", currency="RUB", email="c1@example.com", language="ru"
                )
            )
            await s.commit()
        await paid(env, service="phone", customer="C-1", amount="99.50")
        [second] = await sweep(env)
        sent = await reminders.send_due(env.hub, now=(await reminder(env, second)).due_at)
        assert sent.sent == [second]
        async with env.hub.read_sessions() as s:
            [notice] = (
                await s.scalars(select(Notification).where(Notification.key == f"reminder:{second}"))
            ).all()
        assert (notice.channel, notice.address, notice.language) == ("email", "c1@example.com", "ru")
        assert "99,50" in notice.body or "99.50" in notice.body, notice.body


async def test_concurrent_clicks_and_workers_do_everything_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with reminder_env(db_url, monkeypatch) as (env, recorder):
        await paid(env, service="phone", customer="C-1")
        await paid(env, service="phone", customer="C-2", account="9002222222")
        both = await asyncio.gather(
            *(reminders.sweep(env.hub, now=utcnow() + dt.timedelta(minutes=1)) for _ in range(3))
        )
        created = sorted(rid for result in both for rid in result.created)
        assert len(created) == 2  # each payment remembered once, however many sweeps ran
        due = max([(await reminder(env, rid)).due_at for rid in created])
        sends = await asyncio.gather(*(reminders.send_due(env.hub, now=due) for _ in range(3)))
        assert sorted(rid for s in sends for rid in s.sent) == created  # each sent once
        assert len(recorder.calls) == 2
        token = next(c["actions"][0].token for c in recorder.calls if c["data"]["reminder_id"] == created[0])
        answers = await asyncio.gather(*(act(env, token, a) for a in ("repeat", "subscribe") * 3))
        assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
        assert len({r.json()["payment_id"] for r in answers}) == 1  # one repeat payment
        async with env.hub.read_sessions() as s:
            repeats = (
                await s.scalars(select(Payment.id).where(Payment.external_id == f"reminder-{created[0]}"))
            ).all()
            subs = (await s.scalars(select(Subscription.id))).all()
        assert len(repeats) == 1 and len(subs) == 1
