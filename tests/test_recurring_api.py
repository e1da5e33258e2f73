"""The recurring channel API over HTTP on both databases: customers (omnichannel: every channel of the
agent sees them, another agent's channel does not), templates, subscriptions and their state rules,
runs, pushed events; every write idempotent (the same key and body again: the same answer; the same
key with another body: 409), validation answered 422 problems."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from paymux.recurring import service
from paymux.recurring.models import Event, Run, Subscription
from recurring_api_support import C, problem, recurring_env


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- customers ---------------------------------------------------------------------------------------------


async def test_customer_create_update_and_omnichannel(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        r = await api.put_customer(
            name="Ion",
            phone="+37369123456",
            email="ion@example.md",
            month_limit="5000.00",
            funding_account="ACC1",
        )
        assert r.status_code == 201, r.text
        first = r.json()
        assert first["month_limit"] == "5000.00" and first["currency"] == "RUB" and first["reminders"] is True
        # the same request again: 200, nothing changed
        again = await api.put_customer(
            name="Ion",
            phone="+37369123456",
            email="ion@example.md",
            month_limit="5000.00",
            funding_account="ACC1",
        )
        assert again.status_code == 200 and again.json() == first
        # a change from another channel of the same agent: only the fields given change
        r = await api.http.put(f"{C}/CUST-1", json={"reminders": False, "phone": None}, headers=api.h("mob"))
        assert r.status_code == 200, r.text
        assert r.json()["reminders"] is False and r.json()["phone"] is None and r.json()["name"] == "Ion"
        seen = (await api.http.get(f"{C}/CUST-1", headers=api.h("term"))).json()
        assert seen["reminders"] is False and seen["email"] == "ion@example.md"
        # another agent's channel does not see the dealer's customer, and may have its own of that reference
        problem(await api.http.get(f"{C}/CUST-1", headers=api.h("other")), 404, "not-found")
        r = await api.put_customer(channel="other", name="Someone else")
        assert r.status_code == 201 and r.json()["name"] == "Someone else"
        assert (await api.http.get(f"{C}/CUST-1", headers=api.h("term"))).json()["name"] == "Ion"
        # a channel of no agent gets a clear problem
        body = problem(await api.http.get(f"{C}/CUST-1", headers=api.h("web")), 403, "channel-without-agent")
        assert "web" in body["detail"]
        problem(await api.put_customer(channel="web"), 403, "channel-without-agent")
        problem(await api.http.get(f"{C}/CUST-1"), 401)


async def test_customer_validation(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        problem(await api.put_customer(currency=None), 422, "invalid-customer")  # null currency
        r = await api.http.put(f"{C}/NEW", json={"name": "x"}, headers=api.h())
        assert "currency is needed" in problem(r, 422, "invalid-customer")["detail"]
        for bad in (
            {"phone": "069123456"},
            {"phone": "+0123"},
            {"email": "not-an-email"},
            {"language": "de"},
            {"reminders": "maybe"},
            {"unknown": 1},
            {"name": "a\x00b"},
        ):
            problem(await api.put_customer(**bad), 422, "invalid-request")
        problem(await api.put_customer(timezone="Mars/Olympus"), 422, "invalid-timezone")
        problem(await api.put_customer(timezone="../etc/passwd"), 422, "invalid-timezone")
        problem(await api.put_customer(currency="XXX"), 422, "invalid-currency")
        problem(await api.put_customer(month_limit="10.001"), 422, "invalid-amount")
        problem(await api.put_customer(month_limit="-5"), 422, "invalid-amount")
        # the reference: printable ASCII, 1..64 characters
        assert (await api.put_customer(ref="A" * 64)).status_code == 201
        problem(await api.put_customer(ref="A" * 65), 422, "invalid-request")
        problem(await api.put_customer(ref=quote("клиент")), 422, "invalid-request")
        problem(await api.put_customer(ref="a%00b"), 422, "control-characters")
        problem(await api.put_customer(ref="a%09b"), 422, "control-characters")
        assert (await api.put_customer(ref="a%20b")).status_code == 201  # a space is printable
        assert (await api.put_customer(ref="a%2Fb")).status_code == 404  # no route: "/" divides the path
        r = await api.put_customer(ref="a%25b%3F%23")
        assert r.status_code == 201 and r.json()["reference"] == "a%b?#"
        assert (await api.http.get(f"{C}/a%25b%3F%23", headers=api.h("mob"))).json()["reference"] == "a%b?#"


async def test_concurrent_twins_make_one_resource(db_url: str) -> None:
    """The same creation sent several times at once (a client retrying): one resource, every answer
    the same; on PostgreSQL the losers of the race meet the unique key and read the winner's."""
    async with recurring_env(db_url) as api:
        answers = await asyncio.gather(*(api.put_customer(ref="TWIN") for _ in range(6)))
        assert sorted(r.status_code for r in answers) == [200] * 5 + [201], [r.text for r in answers]
        answers = await asyncio.gather(*(api.template(ref="TWIN") for _ in range(6)))
        assert {r.status_code for r in answers} <= {200, 201} and len({r.json()["id"] for r in answers}) == 1
        tid = answers[0].json()["id"]
        body = {"key": "s", "template_id": tid, "kind": "scheduled", "period": "weekly", "weekday": 3}
        answers = await asyncio.gather(*(api.subscribe(ref="TWIN", **body) for _ in range(6)))
        assert [r.status_code for r in answers].count(201) == 1, [r.text for r in answers]
        assert len({r.json()["id"] for r in answers}) == 1
        event = {
            "key": "e",
            "kind": "debt",
            "service": "topup",
            "account": "1",
            "value": "1",
            "currency": "RUB",
        }
        answers = await asyncio.gather(
            *(api.http.post("/api/v1/events", json=event, headers=api.h()) for _ in range(6))
        )
        assert [r.status_code for r in answers].count(201) == 1, [r.text for r in answers]
        sid = answers[0].json()["id"]
        answers = await asyncio.gather(*(api.act(sid, "pause", ref="TWIN") for _ in range(4)))
        assert {r.status_code for r in answers} == {200} and {r.json()["status"] for r in answers} == {
            "paused"
        }


# --- templates ---------------------------------------------------------------------------------------------


async def test_templates_crud_and_idempotency(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        await api.put_customer()
        problem(await api.template(ref="NOBODY"), 404, "not-found")
        r = await api.template()
        assert r.status_code == 201, r.text
        tpl = r.json()
        assert tpl["amount"] == "300.00" and tpl["currency"] == "RUB" and tpl["service"] == "topup"
        again = await api.template()
        assert again.status_code == 200 and again.json() == tpl
        body = problem(await api.template(amount="301.00"), 409, "key-reused")
        assert str(tpl["id"]) in body["detail"]
        # seen from the other channel of the agent; not from the other agent
        r = await api.http.get(f"{C}/CUST-1/templates", headers=api.h("mob"))
        assert [t["id"] for t in r.json()] == [tpl["id"]]
        await api.put_customer(channel="other")
        assert (await api.http.get(f"{C}/CUST-1/templates", headers=api.h("other"))).json() == []
        problem(await api.http.get(f"{C}/CUST-1/templates/{tpl['id']}", headers=api.h("other")), 404)
        # amount asked each time
        r = await api.template(key="t2", amount=None, name="Ask me")
        assert r.status_code == 201 and r.json()["amount"] is None
        # change
        url = f"{C}/CUST-1/templates/{tpl['id']}"
        r = await api.http.patch(url, json={"name": "Mum", "amount": "500.00"}, headers=api.h("mob"))
        assert r.status_code == 200 and r.json()["name"] == "Mum" and r.json()["amount"] == "500.00"
        assert r.json()["account"] == "9001234567"
        r2 = await api.http.patch(url, json={"name": "Mum", "amount": "500.00"}, headers=api.h())
        assert r2.status_code == 200 and r2.json()["amount"] == "500.00"
        r = await api.http.patch(url, json={"amount": None}, headers=api.h())
        assert r.json()["amount"] is None
        problem(await api.http.patch(url, json={"account": "12"}, headers=api.h()), 422, "invalid-account")
        problem(await api.http.patch(url, json={"name": None}, headers=api.h()), 422, "invalid-template")
        problem(await api.http.patch(url, json={"service": "gas"}, headers=api.h()), 422, "invalid-request")
        # delete (soft): twice the same; gone from every channel
        assert (await api.http.delete(url, headers=api.h())).status_code == 204
        assert (await api.http.delete(url, headers=api.h("mob"))).status_code == 204
        problem(await api.http.get(url, headers=api.h()), 404)
        assert [t["key"] for t in (await api.http.get(f"{C}/CUST-1/templates", headers=api.h())).json()] == [
            "t2"
        ]
        # its key stays taken
        problem(await api.template(), 409, "key-reused")


async def test_template_validation(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        await api.put_customer()
        problem(await api.template(service="nope"), 422, "unknown-service")
        problem(await api.template(account="12ab"), 422, "invalid-account")
        problem(await api.template(amount="0.50"), 422, "amount-out-of-limits")
        problem(await api.template(amount="10000.01"), 422, "amount-out-of-limits")
        problem(await api.template(amount="1.234"), 422, "invalid-amount")
        problem(await api.template(amount="1e3"), 422, "invalid-amount")
        problem(await api.template(key=""), 422, "invalid-request")
        problem(await api.template(key="k" * 65), 422, "invalid-request")
        problem(await api.template(fields={"x": "y\x00"}), 422, "invalid-request")
        gas = {"service": "gas", "account": "123456"}
        problem(await api.template(**gas), 422, "invalid-field")  # the required contract
        problem(await api.template(**gas, fields={"contract": "X1"}), 422, "invalid-field")
        problem(await api.template(**gas, fields={"contract": "C123", "other": "1"}), 422, "invalid-field")
        r = await api.template(**gas, fields={"contract": "C123"})
        assert r.status_code == 201 and r.json()["fields"] == {"contract": "C123"}


async def test_template_from_a_payment(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        await api.put_customer()
        paid = await api.env.pay(account="9007654321", amount="250.00")
        assert paid.status_code == 201, paid.text
        pid = paid.json()["id"]
        url = f"{C}/CUST-1/templates/from-payment/{pid}"
        r = await api.http.post(url, json={"key": "fp1"}, headers=api.h())
        assert r.status_code == 201, r.text
        tpl = r.json()
        assert (tpl["service"], tpl["account"], tpl["amount"], tpl["name"]) == (
            "topup",
            "9007654321",
            "250.00",
            "Mobile top-up",
        )
        again = await api.http.post(url, json={"key": "fp1"}, headers=api.h())
        assert again.status_code == 200 and again.json() == tpl
        problem(
            await api.http.post(url, json={"key": "fp1", "name": "Other"}, headers=api.h()), 409, "key-reused"
        )
        # a payment of another channel (even of the same agent) is not this channel's to save
        problem(await api.http.post(url, json={"key": "fp2"}, headers=api.h("mob")), 404, "not-found")
        problem(
            await api.http.post(
                f"{C}/CUST-1/templates/from-payment/{2**63}", json={"key": "x"}, headers=api.h()
            ),
            422,
        )


# --- subscriptions ----------------------------------------------------------------------------------------


async def test_scheduled_subscription_next_due_in_the_customer_timezone(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        await api.put_customer(timezone="Pacific/Auckland")
        sub = await api.scheduled(day_of_month=31, start_date="2027-02-01", time_of_day="10:00")
        # 28 February 2027 10:00 in Auckland (NZDT, UTC+13) is 27 February 21:00 UTC
        assert sub["next_due_at"] == "2027-02-27T21:00:00Z", sub
        assert sub["next_due_local"] == "2027-02-28T10:00:00+13:00" and sub["timezone"] == "Pacific/Auckland"
        # the same creation again: the same subscription; the same key otherwise: 409
        body = {
            "key": "s1",
            "template_id": sub["template_id"],
            "kind": "scheduled",
            "period": "monthly",
            "day_of_month": 31,
            "start_date": "2027-02-01",
            "time_of_day": "10:00",
        }
        again = await api.subscribe(**body)
        assert again.status_code == 200 and again.json() == sub
        again = await api.subscribe(**body, amount=None)  # null: the template's, as when made
        assert again.status_code == 200 and again.json() == sub
        problem(await api.subscribe(**{**body, "day_of_month": 30}), 409, "key-reused")
        problem(await api.subscribe(**{**body, "amount": "1.00"}), 409, "key-reused")
        # seen from the mobile bank; not from the other agent's channel
        assert (await api.sub(sub["id"], channel="mob"))["next_due_at"] == sub["next_due_at"]
        await api.put_customer(channel="other")
        problem(await api.http.get(f"{C}/CUST-1/subscriptions/{sub['id']}", headers=api.h("other")), 404)
        # a new amount keeps the next charge where it is
        r = await api.http.patch(
            f"{C}/CUST-1/subscriptions/{sub['id']}", json={"amount": "310.00"}, headers=api.h("mob")
        )
        assert r.status_code == 200 and r.json()["amount"] == "310.00", r.text
        assert r.json()["next_due_at"] == sub["next_due_at"]
        # April has 30 days: change to start in April, the last day is the 30th (in NZST, UTC+12)
        r = await api.http.patch(
            f"{C}/CUST-1/subscriptions/{sub['id']}", json={"start_date": "2027-04-01"}, headers=api.h("mob")
        )
        assert r.status_code == 200, r.text
        assert r.json()["next_due_at"] == "2027-04-29T22:00:00Z"
        # weekly on Monday now: the month's day goes with the period
        r = await api.http.patch(
            f"{C}/CUST-1/subscriptions/{sub['id']}", json={"period": "weekly", "weekday": 0}, headers=api.h()
        )
        assert r.status_code == 200, r.text
        assert r.json()["day_of_month"] is None and r.json()["next_due_local"] == "2027-04-05T10:00:00+12:00"


async def test_a_new_timezone_moves_the_next_charge(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        await api.put_customer()  # Europe/Moscow, UTC+3
        sub = await api.scheduled(start_date="2027-03-01")
        assert sub["next_due_at"] == "2027-03-05T06:00:00Z"
        r = await api.put_customer(timezone="Asia/Tokyo")  # UTC+9
        assert r.status_code == 200, r.text
        moved = await api.sub(sub["id"], channel="mob")
        assert moved["next_due_at"] == "2027-03-05T00:00:00Z" and moved["next_due_local"].endswith("+09:00")


async def test_subscription_defaults_and_kinds(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        await api.put_customer()
        tid = (await api.template()).json()["id"]
        before = dt.datetime.now(dt.UTC)
        # scheduled: the template's amount, today, 09:00
        sub = await api.scheduled(template_id=tid, period="days", every_days=1, day_of_month=None)
        assert sub["amount"] == "300.00" and sub["time_of_day"] == "09:00"
        assert before < _utc(sub["next_due_at"]) <= before + dt.timedelta(days=1, minutes=1)
        # threshold: looked at now
        r = await api.subscribe(
            key="th", template_id=tid, kind="threshold", amount="100.00", threshold="20.00", poll_seconds=3600
        )
        assert r.status_code == 201, r.text
        th = r.json()
        assert th["threshold"] == "20.00" and th["quiet_seconds"] == 86400 and th["period"] is None
        assert before <= _utc(th["next_due_at"]) <= dt.datetime.now(dt.UTC)
        # debt: on a calendar, no amount, with its limit
        r = await api.subscribe(
            key="debt", template_id=tid, kind="debt", period="monthly", day_of_month=5, debt_limit="1500.00"
        )
        assert r.status_code == 201, r.text
        debt = r.json()
        assert (
            debt["amount"] is None
            and debt["debt_limit"] == "1500.00"
            and debt["next_due_local"].endswith("09:00:00+03:00")
        )
        assert _utc(debt["next_due_at"]).astimezone(dt.timezone(dt.timedelta(hours=3))).day == 5
        # listing with filters
        url = f"{C}/CUST-1/subscriptions"
        assert len((await api.http.get(url, headers=api.h("mob"))).json()) == 3
        r = await api.http.get(url, params={"kind": "threshold"}, headers=api.h())
        assert [s["key"] for s in r.json()] == ["th"]
        await api.act(debt["id"], "pause")
        r = await api.http.get(url, params={"status": "paused"}, headers=api.h())
        assert [s["key"] for s in r.json()] == ["debt"]
        r = await api.http.get(url, params={"status": "active", "kind": "scheduled"}, headers=api.h())
        assert [s["key"] for s in r.json()] == ["s1"]
        problem(await api.http.get(url, params={"kind": "weird"}, headers=api.h()), 422)


async def test_subscription_validation(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        await api.put_customer()
        tid = (await api.template()).json()["id"]
        ask = (await api.template(key="t2", amount=None)).json()["id"]
        base = {"key": "k", "template_id": tid, "kind": "scheduled", "period": "monthly", "day_of_month": 5}
        cases: list[tuple[dict[str, Any], str]] = [
            ({"period": None}, "needs period"),
            ({"day_of_month": None}, "day_of_month"),
            ({"period": "weekly"}, "day_of_month is not for a weekly schedule"),
            ({"weekday": 2}, "weekday is not for a monthly schedule"),
            ({"threshold": "10.00"}, "threshold is not for a scheduled"),
            ({"debt_limit": "10.00"}, "debt_limit"),
            ({"template_id": ask}, "needs amount"),
            ({"amount": "300.00", "per_payment_limit": "200.00"}, "above per_payment_limit"),
            ({"amount": "0.10"}, "below the service's minimum"),
            ({"start_date": "2027-05-01", "end_date": "2027-04-01"}, "before start_date"),
            ({"start_date": "2020-01-01", "end_date": "2020-12-31"}, "no charge ahead"),
            ({"kind": "threshold", "period": None, "day_of_month": None}, "needs threshold"),
            ({"kind": "threshold", "threshold": "5.00"}, "not for a threshold"),
            ({"kind": "debt", "amount": "5.00"}, "amount is not for a debt"),
            ({"kind": "debt", "per_payment_limit": "10.00", "debt_limit": "20.00"}, "debt_limit is above"),
        ]
        for change, words in cases:
            body = problem(await api.subscribe(**{**base, **change}), 422)
            assert words in body["detail"], (change, body)
        for change in (
            {"day_of_month": 32},
            {"day_of_month": 0},
            {"weekday": 7},
            {"every_days": 367},
            {"period": "yearly"},
            {"kind": "other"},
            {"time_of_day": "25:00"},
            {"time_of_day": "9:00"},
            {"start_date": "9999-12-31"},
            {"max_runs": 0},
            {"poll_seconds": 1},
            {"template_id": 2**63},
            {"amount": 300},
            {"extra": True},
        ):
            problem(await api.subscribe(**{**base, **change}), 422)
        body = problem(await api.subscribe(**{**base, "time_of_day": "24:00"}), 422, "invalid-subscription")
        assert "HH:MM" in body["detail"]
        problem(await api.subscribe(**{**base, "template_id": 999}), 422, "unknown-template")
        # another customer's template is not this one's
        await api.put_customer(ref="CUST-2")
        problem(await api.subscribe(ref="CUST-2", **base), 422, "unknown-template")
        # nothing was stored by the refusals
        assert (await api.http.get(f"{C}/CUST-1/subscriptions", headers=api.h())).json() == []


async def test_pause_resume_cancel_state_rules(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        await api.put_customer()
        sub = await api.scheduled(period="days", every_days=7, day_of_month=None, start_date="2026-01-01")
        sid = sub["id"]
        r = await api.act(sid, "pause", reason="holiday")
        assert r.status_code == 200 and r.json()["status"] == "paused" and r.json()["next_due_at"] is None
        again = await api.act(sid, "pause", channel="mob")
        assert again.status_code == 200 and again.json() == r.json()
        # changed while paused: still no look until resumed
        r = await api.http.patch(
            f"{C}/CUST-1/subscriptions/{sid}", json={"amount": "350.00"}, headers=api.h()
        )
        assert r.status_code == 200 and r.json()["amount"] == "350.00" and r.json()["next_due_at"] is None
        # resumed: from now on, the periods of the pause are not charged
        before = dt.datetime.now(dt.UTC)
        r = await api.act(sid, "resume")
        assert r.status_code == 200 and r.json()["status"] == "active" and r.json()["status_reason"] is None
        assert before < _utc(r.json()["next_due_at"]) <= before + dt.timedelta(days=7, minutes=1)
        again = await api.act(sid, "resume", channel="mob")
        assert again.status_code == 200 and again.json() == r.json()
        r = await api.act(sid, "cancel", reason="moving")
        assert (
            r.status_code == 200
            and r.json()["status"] == "cancelled"
            and r.json()["status_reason"] == "moving"
        )
        assert r.json()["next_due_at"] is None
        again = await api.act(sid, "cancel", reason="again")
        assert again.status_code == 200 and again.json() == r.json()
        problem(await api.act(sid, "resume"), 409, "subscription-cancelled")
        problem(await api.act(sid, "pause"), 409, "subscription-cancelled")
        problem(
            await api.http.patch(f"{C}/CUST-1/subscriptions/{sid}", json={"amount": "1.00"}, headers=api.h()),
            409,
            "subscription-cancelled",
        )
        problem(await api.act(999, "pause"), 404)
        problem(await api.act(sid, "pause", reason="x\x00"), 422, "invalid-request")
        # a template paying a live subscription cannot be deleted; with only cancelled ones it can
        other = await api.scheduled(key="s2", template_id=sub["template_id"])
        url = f"{C}/CUST-1/templates/{sub['template_id']}"
        problem(await api.http.delete(url, headers=api.h()), 409, "template-in-use")
        await api.act(other["id"], "cancel")
        assert (await api.http.delete(url, headers=api.h())).status_code == 204


async def test_runs_are_paged_newest_first(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        await api.put_customer()
        sub = await api.scheduled()
        async with api.env.hub.sessions() as s:
            for i in range(5):
                at = dt.datetime(2027, 1 + i, 5, 6, tzinfo=dt.UTC)
                s.add(
                    Run(
                        subscription_id=sub["id"],
                        period_key=at.date().isoformat(),
                        scheduled_at=at,
                        state="paid",
                        currency="RUB",
                        amount=30000,
                        debit_key=f"d{i}",
                        status="done",
                        due_at=at,
                    )
                )
            await s.commit()
        url = f"{C}/CUST-1/subscriptions/{sub['id']}/runs"
        page = (await api.http.get(url, params={"limit": 2}, headers=api.h("mob"))).json()
        assert [r["period_key"] for r in page["items"]] == ["2027-05-05", "2027-04-05"]
        assert page["items"][0]["amount"] == "300.00" and "debit_key" not in page["items"][0]
        keys = [r["period_key"] for r in page["items"]]
        while page["next_before_id"] is not None:
            page = (
                await api.http.get(
                    url, params={"limit": 2, "before_id": page["next_before_id"]}, headers=api.h()
                )
            ).json()
            keys += [r["period_key"] for r in page["items"]]
        assert keys == [f"2027-0{m}-05" for m in (5, 4, 3, 2, 1)]
        problem(await api.http.get(url, params={"limit": 0}, headers=api.h()), 422)
        problem(await api.http.get(url, params={"before_id": 2**63}, headers=api.h()), 422)
        await api.put_customer(channel="other")
        problem(await api.http.get(url, headers=api.h("other")), 404)


# --- events -----------------------------------------------------------------------------------------------


async def test_a_pushed_low_balance_makes_threshold_subscriptions_due(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        await api.put_customer()
        tid = (await api.template()).json()["id"]
        th = (
            await api.subscribe(
                key="th", template_id=tid, kind="threshold", amount="100.00", threshold="20.00"
            )
        ).json()
        paused = (
            await api.subscribe(
                key="th2", template_id=tid, kind="threshold", amount="50.00", threshold="30.00"
            )
        ).json()
        await api.act(paused["id"], "pause")
        sched = await api.scheduled(key="s", template_id=tid)
        # the scheduler looked already: the subscription is next due in an hour
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        async with api.env.hub.sessions() as s:
            row = await s.get(Subscription, th["id"])
            assert row is not None
            row.next_due_at = later
            await s.commit()
        event = {
            "key": "e1",
            "kind": "balance",
            "service": "topup",
            "account": "9001234567",
            "value": "25.00",
            "currency": "RUB",
        }
        r = await api.http.post("/api/v1/events", json=event, headers=api.h("mob"))
        assert r.status_code == 201, r.text
        assert r.json()["due_subscriptions"] == [] and r.json()["value"] == "25.00"
        assert _utc((await api.sub(th["id"]))["next_due_at"]) == later  # 25.00 is not below 20.00
        # below the threshold: due now; the paused one and the scheduled one are left alone
        before = dt.datetime.now(dt.UTC)
        low = {**event, "key": "e2", "value": "-3.50"}
        r = await api.http.post("/api/v1/events", json=low, headers=api.h("mob"))
        assert r.status_code == 201, r.text
        assert r.json()["due_subscriptions"] == [th["id"]] and r.json()["value"] == "-3.50"
        due = _utc((await api.sub(th["id"]))["next_due_at"])
        assert before - dt.timedelta(seconds=1) <= due <= dt.datetime.now(dt.UTC)
        assert (await api.sub(paused["id"]))["next_due_at"] is None
        assert (await api.sub(sched["id"]))["next_due_at"] == sched["next_due_at"]
        # the same event again: the same event; the key with another body: 409
        again = await api.http.post("/api/v1/events", json=low, headers=api.h("term"))
        assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
        problem(await api.http.post("/api/v1/events", json={**low, "value": "-3.51"}, headers=api.h()), 409)
        # another agent's event on the same account touches nothing of the dealer's
        await api.put_customer(channel="other")
        r = await api.http.post("/api/v1/events", json={**low, "key": "o1"}, headers=api.h("other"))
        assert r.status_code == 201 and r.json()["due_subscriptions"] == []
        # a debt is stored for the engine
        r = await api.http.post(
            "/api/v1/events", json={**event, "key": "d1", "kind": "debt", "value": "734.20"}, headers=api.h()
        )
        assert r.status_code == 201 and r.json()["kind"] == "debt"
        async with api.env.hub.read_sessions() as s:
            rows = (await s.scalars(select(Event).order_by(Event.id))).all()
            assert [(e.key, e.kind, e.value, e.processed_at) for e in rows] == [
                ("e1", "balance", 2500, None),
                ("e2", "balance", -350, None),
                ("o1", "balance", -350, None),
                ("d1", "debt", 73420, None),
            ]


async def test_event_validation_and_quiet_period(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        await api.put_customer()
        tid = (await api.template()).json()["id"]
        th = (
            await api.subscribe(
                key="th", template_id=tid, kind="threshold", amount="100.00", threshold="20.00"
            )
        ).json()
        event = {
            "key": "e",
            "kind": "balance",
            "service": "topup",
            "account": "9001234567",
            "currency": "RUB",
        }
        post = api.http.post
        problem(
            await post("/api/v1/events", json={**event, "value": "1.001"}, headers=api.h()),
            422,
            "invalid-amount",
        )
        problem(
            await post("/api/v1/events", json={**event, "value": "--1"}, headers=api.h()),
            422,
            "invalid-amount",
        )
        problem(
            await post("/api/v1/events", json={**event, "value": "-"}, headers=api.h()), 422, "invalid-amount"
        )
        debt = {**event, "kind": "debt", "value": "-1.00"}
        problem(await post("/api/v1/events", json=debt, headers=api.h()), 422, "invalid-amount")
        problem(
            await post("/api/v1/events", json={**event, "value": "1", "currency": "USD"}, headers=api.h()),
            422,
        )
        problem(
            await post("/api/v1/events", json={**event, "value": "1", "service": "x"}, headers=api.h()), 422
        )
        problem(await post("/api/v1/events", json={**event, "value": "1", "kind": "x"}, headers=api.h()), 422)
        problem(await post("/api/v1/events", json={**event, "value": "1"}, headers=api.h("web")), 403)
        # topped up a moment ago: within the quiet period a low balance does not make it due
        async with api.env.hub.sessions() as s:
            row = await s.get(Subscription, th["id"])
            assert row is not None
            row.last_topup_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
            row.next_due_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
            await s.commit()
        r = await post("/api/v1/events", json={**event, "value": "1.00"}, headers=api.h())
        assert r.status_code == 201 and r.json()["due_subscriptions"] == []


async def test_due_now_service(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        await api.put_customer()
        a = await api.scheduled(key="a")
        b = await api.scheduled(key="b", template_id=a["template_id"])
        await api.act(b["id"], "cancel")
        now = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
        async with api.env.hub.sessions() as s:
            assert await service.due_now(s, [a["id"], b["id"], 999], now) == [a["id"]]
            assert await service.due_now(s, [], now) == []
            await s.commit()
        assert _utc((await api.sub(a["id"]))["next_due_at"]) == now
        assert (await api.sub(b["id"]))["next_due_at"] is None


async def test_api_is_documented_with_examples(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        doc = (await api.http.get("/openapi.json")).json()
    ours = {
        p: ops for p, ops in doc["paths"].items() if p.startswith(("/api/v1/customers", "/api/v1/events"))
    }
    ours.update({p: ops for p, ops in doc["paths"].items() if p.startswith("/api/v1/admin/recurring")})
    assert len(ours) >= 14
    schemas = doc["components"]["schemas"]
    for path, ops in ours.items():
        for method, op in ops.items():
            assert op.get("summary"), (method, path)
            assert "422" in op["responses"] and "401" in op["responses"], (method, path)
            body = op.get("requestBody")
            if body:
                ref = body["content"]["application/json"]["schema"]
                ref = ref.get("$ref") or next(x["$ref"] for x in ref.get("anyOf", []) if "$ref" in x)
                assert schemas[ref.split("/")[-1]].get("examples"), (method, path)
