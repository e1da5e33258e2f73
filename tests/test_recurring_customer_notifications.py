"""The channel API's view of what a customer was sent: newest first, paged, filtered by event, no
action tokens, only the channel's agent's customer."""

from __future__ import annotations

from sqlalchemy import select

from paymux.catalog.models import Agent
from paymux.db.base import utcnow
from paymux.notifications.service import Action, Recipient, notify
from paymux.recurring.models import Run
from recurring_api_support import C, recurring_env


async def test_a_customers_notifications_through_the_channel_api(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        assert (
            await api.put_customer("CUST-1", phone="+37369123456", email="c1@example.org")
        ).status_code == 201
        async with api.env.hub.sessions() as s:
            dealer = await s.scalar(select(Agent.id).where(Agent.code == "dealer"))
            assert dealer is not None
            person = Recipient(
                phone="+37369123456", email="c1@example.org", reference="CUST-1", language="ru"
            )
            for i in range(3):
                await notify(
                    s,
                    agent_id=dealer,
                    event="run.paid",
                    recipient=person,
                    data={"service": "Phone", "amount": 30000 + i, "currency": "RUB"},
                    key=f"paid-{i}",
                    channels=("sms",),
                )
            await notify(
                s,
                agent_id=dealer,
                event="debt.confirm",
                recipient=person,
                data={"service": "Power", "amount": 120000, "currency": "RUB"},
                key="debt-1",
                channels=("sms", "email"),
                actions=[Action("confirm", "https://bank.example/c", "tok-secret-1")],
            )
            await s.commit()
        url = f"{C}/CUST-1/notifications"
        r = await api.http.get(url, headers=api.h(), params={"limit": 2})
        assert r.status_code == 200, r.text
        page = r.json()
        assert [n["event"] for n in page["items"]] == ["debt.confirm", "debt.confirm"]
        assert {n["channel"] for n in page["items"]} == {"sms", "email"}
        assert page["items"][0]["actions"] == [{"name": "confirm", "url": "https://bank.example/c"}]
        assert "tok-secret-1" not in r.text and "1200.00" in r.text
        rest = (await api.http.get(url, headers=api.h(), params={"before_id": page["next_before_id"]})).json()
        assert [n["event"] for n in rest["items"]] == ["run.paid"] * 3 and rest["next_before_id"] is None
        only = (await api.http.get(url, headers=api.h("mob"), params={"event": "run.paid"})).json()
        assert len(only["items"]) == 3  # another channel of the same agent sees the same customer
        assert (await api.http.get(url, headers=api.h("other"))).status_code == 404  # another agent's channel
        for bad in ({"limit": 0}, {"limit": 201}, {"event": "Run Paid"}, {"before_id": 0}):
            r = await api.http.get(url, headers=api.h(), params=bad)
            assert r.status_code == 422 and r.headers["content-type"].startswith(
                "application/problem+json"
            ), bad


async def test_the_customer_confirms_or_declines_a_debt_above_the_limit(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        assert (await api.put_customer("CUST-1")).status_code == 201
        tid = (await api.template(amount=None)).json()["id"]
        r = await api.subscribe(
            key="debt", template_id=tid, kind="debt", period="monthly", day_of_month=5, debt_limit="1500.00"
        )
        assert r.status_code == 201, r.text
        sub = r.json()["id"]
        now = utcnow()
        async with api.env.hub.sessions() as s:
            runs = [
                Run(
                    subscription_id=sub,
                    period_key=p,
                    scheduled_at=now,
                    state=state,
                    currency="RUB",
                    amount=250000,
                    observed=250000,
                    debit_key=f"k-{p}",
                    status=status,
                    due_at=now,
                )
                for p, state, status in (
                    ("2027-01-05", "awaiting_confirmation", "done"),
                    ("2027-02-05", "awaiting_confirmation", "done"),
                    ("2026-12-05", "checking", "pending"),  # still asking the provider
                )
            ]
            s.add_all(runs)
            await s.commit()
            ids = [r.id for r in runs]
        base = f"{C}/CUST-1/subscriptions/{sub}/runs"
        r = await api.http.post(f"{base}/{ids[0]}/confirm", json={"accept": True}, headers=api.h())
        assert r.status_code == 200 and r.json()["state"] == "due", r.text
        again = await api.http.post(f"{base}/{ids[0]}/confirm", json={"accept": True}, headers=api.h("mob"))
        assert again.status_code == 200 and again.json()["state"] == "due"
        r = await api.http.post(f"{base}/{ids[1]}/confirm", json={"accept": False}, headers=api.h())
        assert r.status_code == 200 and r.json()["state"] == "declined"
        r = await api.http.post(f"{base}/{ids[2]}/confirm", json={"accept": True}, headers=api.h())
        assert r.status_code == 409 and "not-awaiting-confirmation" in r.json()["type"]
        assert (
            await api.http.post(f"{base}/999999/confirm", json={"accept": True}, headers=api.h())
        ).status_code == 404
        other = await api.http.post(f"{base}/{ids[0]}/confirm", json={"accept": True}, headers=api.h("other"))
        assert other.status_code == 404
        for bad in ({}, {"accept": "yes"}, {"accept": 1}, {"accept": True, "x": 1}):
            r = await api.http.post(f"{base}/{ids[1]}/confirm", json=bad, headers=api.h())
            assert r.status_code == 422, bad
