"""The recurring admin API on both databases: agents' settings (funding source validated by its
plug-in, secrets masked in every read and in the audit log, ``***`` keeping the stored secret),
finding customers, a customer's subscriptions and runs, pause / resume / cancel with a reason
(audited), and the permissions each route needs (403 without)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from paymux.audit.models import AuditEvent
from paymux.auth.tokens import issue_token
from paymux.auth.user_models import User
from paymux.recurring.models import RecurringAgent, Run
from recurring_api_support import Api, problem, recurring_env
from test_backoffice_support import add_user

R = "/api/v1/admin/recurring"
SECRET = "core-bank-token-4f1c"
SETTINGS = {
    "channel": "mob",
    "funding_protocol": "jsonhttp",
    "funding_config": {"url": "https://core.bank.example/funding", "token": SECRET, "timeout": "5"},
    "upcoming_lead_hours": 12,
    "catch_up_hours": 48,
}


async def token_for(api: Api, username: str, role: str) -> dict[str, str]:
    user = await add_user(api.env.hub, username, role)
    async with api.env.hub.sessions() as s:
        u = await s.get(User, user.id)
        assert u is not None
        raw, _ = await issue_token(s, u, "test", None)
        await s.commit()
    return {"Authorization": f"Bearer {raw}"}


async def audit_rows(api: Api, action: str) -> list[AuditEvent]:
    async with api.env.hub.read_sessions() as s:
        return list((await s.scalars(select(AuditEvent).where(AuditEvent.action == action))).all())


async def test_agent_settings_validated_masked_and_audited(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        admin, http = api.env.admin, api.http
        r = await http.put(f"{R}/agents/dealer", json=SETTINGS, headers=admin)
        assert r.status_code == 201, r.text
        shown = r.json()
        assert shown["funding_config"]["token"] == "***" and shown["channel"] == "mob"
        assert shown["funding_config"]["url"] == "https://core.bank.example/funding"
        assert SECRET not in r.text
        for read in (
            await http.get(f"{R}/agents/dealer", headers=admin),
            await http.get(f"{R}/agents", headers=admin),
        ):
            assert read.status_code == 200 and SECRET not in read.text and "***" in read.text
        # sent back as shown: the stored secret is kept
        back = {**SETTINGS, "funding_config": shown["funding_config"], "enabled": False}
        r = await http.put(f"{R}/agents/dealer", json=back, headers=admin)
        assert r.status_code == 200 and r.json()["enabled"] is False, r.text
        async with api.env.hub.read_sessions() as s:
            row = await s.get(RecurringAgent, 1)
            assert row is not None and row.funding_config["token"] == SECRET and row.upcoming_lead_hours == 12
        # the audit log has both changes, the secret masked
        rows = await audit_rows(api, "recurring.agent.configure")
        assert len(rows) == 2 and rows[0].target == "agent:dealer"
        assert rows[1].before["funding_config"]["token"] == "***" and rows[1].after["enabled"] is False
        assert rows[1].before["channel"] == "mob" and rows[0].before is None
        assert all(SECRET not in str(x.before) + str(x.after) for x in rows)
        # validation
        cases: list[tuple[dict[str, Any], str]] = [
            ({"funding_protocol": "carrier-pigeon"}, "unknown-funding-source"),
            ({"funding_config": {"token": "x"}}, "invalid-funding-config"),  # no url
            ({"funding_config": {"url": "ftp://x"}}, "invalid-funding-config"),
            ({"funding_config": {"url": "https://b.example", "timeout": "soon"}}, "invalid-funding-config"),
            ({"funding_config": {"url": "https://b.example", "note": "a\x00"}}, "invalid-funding-config"),
            ({"funding_config": {"url": "https://b.example", "x": {"a\x00": 1}}}, "invalid-funding-config"),
            ({"funding_config": {"url": "https://b.example", "x": [2**64]}}, "invalid-funding-config"),
            ({"channel": "other"}, "invalid-channel"),  # the other agent's channel
            ({"channel": "nope"}, "invalid-channel"),
        ]
        for change, slug in cases:
            problem(
                await http.put(f"{R}/agents/dealer", json={**SETTINGS, **change}, headers=admin), 422, slug
            )
        # a mask with nothing behind it (another plug-in, or no secret stored) is refused
        r = await http.put(
            f"{R}/agents/bank2",
            json={
                **SETTINGS,
                "channel": "other",
                "funding_config": {"url": "https://b.example", "token": "***"},
            },
            headers=admin,
        )
        problem(r, 422, "masked-secret")
        problem(
            await http.put(f"{R}/agents/dealer", json={**SETTINGS, "catch_up_hours": -1}, headers=admin), 422
        )
        problem(await http.get(f"{R}/agents/bank2", headers=admin), 404)
        problem(await http.get(f"{R}/agents/nobody", headers=admin), 404)
        assert len(await audit_rows(api, "recurring.agent.configure")) == 2  # refusals record nothing


async def _customer_with_subscription(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    r = await api.put_customer(phone="+37369123456", name="Ion")
    assert r.status_code == 201
    sub = await api.scheduled()
    return r.json(), sub


async def test_find_customers_and_their_subscriptions(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        admin, http = api.env.admin, api.http
        await _customer_with_subscription(api)
        await api.put_customer(ref="CUST-2", channel="other", phone="+37369000000")
        by_ref = (await http.get(f"{R}/customers", params={"reference": "CUST-1"}, headers=admin)).json()
        assert [c["agent"] for c in by_ref] == ["dealer"]
        by_phone = (await http.get(f"{R}/customers", params={"phone": "+37369123456"}, headers=admin)).json()
        assert [c["reference"] for c in by_phone] == ["CUST-1"]
        unencoded = await http.get(f"{R}/customers?phone=+37369123456", headers=admin)  # "+" reads as " "
        assert [c["reference"] for c in unencoded.json()] == ["CUST-1"]
        by_account = (
            await http.get(f"{R}/customers", params={"account": "9001234567"}, headers=admin)
        ).json()
        assert [c["reference"] for c in by_account] == ["CUST-1"]
        both = (await http.get(f"{R}/customers", headers=admin)).json()
        assert {c["agent"] for c in both} == {"dealer", "bank2"}
        assert (await http.get(f"{R}/customers", params={"agent": "bank2"}, headers=admin)).json()[0][
            "reference"
        ] == "CUST-2"
        assert (await http.get(f"{R}/customers", params={"account": "0"}, headers=admin)).json() == []
        problem(await http.get(f"{R}/customers", params={"reference": "a\x00"}, headers=admin), 422)
        cid = by_ref[0]["id"]
        detail = (await http.get(f"{R}/customers/{cid}", headers=admin)).json()
        assert detail["customer"]["name"] == "Ion" and len(detail["templates"]) == 1
        [sub] = detail["subscriptions"]
        assert sub["customer_reference"] == "CUST-1" and sub["agent"] == "dealer"
        one = (await http.get(f"{R}/subscriptions/{sub['id']}", headers=admin)).json()
        assert one["id"] == sub["id"] and one["next_due_at"] == sub["next_due_at"]
        async with api.env.hub.sessions() as s:
            at = dt.datetime(2027, 1, 5, 6, tzinfo=dt.UTC)
            s.add(
                Run(
                    subscription_id=sub["id"],
                    period_key="2027-01-05",
                    scheduled_at=at,
                    state="refunded",
                    currency="RUB",
                    amount=30000,
                    debit_key="dk-1",
                    debit_reference="bank-77",
                    refund_key="rk-1",
                    status="done",
                    due_at=at,
                )
            )
            await s.commit()
        runs = (await http.get(f"{R}/subscriptions/{sub['id']}/runs", headers=admin)).json()
        [run] = runs["items"]
        assert (run["debit_key"], run["debit_reference"], run["refund_key"], run["amount"]) == (
            "dk-1",
            "bank-77",
            "rk-1",
            "300.00",
        )
        problem(await http.get(f"{R}/customers/999", headers=admin), 404)
        problem(await http.get(f"{R}/subscriptions/999/runs", headers=admin), 404)
        problem(await http.get(f"{R}/subscriptions/{2**63}", headers=admin), 422)


async def test_pause_resume_cancel_with_a_reason_audited(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        http = api.http
        _, sub = await _customer_with_subscription(api)
        support = await token_for(api, "sup1", "support")
        url = f"{R}/subscriptions/{sub['id']}"
        problem(await http.post(f"{url}/pause", json={}, headers=support), 422)  # the reason is needed
        problem(await http.post(f"{url}/pause", json={"reason": ""}, headers=support), 422)
        r = await http.post(f"{url}/pause", json={"reason": "ticket 8812"}, headers=support)
        assert r.status_code == 200 and r.json()["status"] == "paused", r.text
        assert r.json()["status_reason"] == "ticket 8812"
        # the customer's channels see it paused
        assert (await api.sub(sub["id"], channel="mob"))["status"] == "paused"
        again = await http.post(f"{url}/pause", json={"reason": "again"}, headers=support)
        assert again.status_code == 200 and again.json()["status_reason"] == "ticket 8812"
        r = await http.post(f"{url}/resume", json={"reason": "customer called back"}, headers=support)
        assert r.status_code == 200 and r.json()["status"] == "active" and r.json()["next_due_at"]
        r = await http.post(f"{url}/cancel", json={"reason": "fraud suspicion"}, headers=support)
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        problem(
            await http.post(f"{url}/resume", json={"reason": "x"}, headers=support),
            409,
            "subscription-cancelled",
        )
        problem(await http.post(f"{R}/subscriptions/999/pause", json={"reason": "x"}, headers=support), 404)
        pauses = await audit_rows(api, "recurring.subscription.pause")
        assert len(pauses) == 1  # the second pause changed nothing
        assert pauses[0].actor.startswith("user:sup1") and pauses[0].after["reason"] == "ticket 8812"
        assert pauses[0].before["status"] == "active" and pauses[0].target.startswith(
            f"subscription:{sub['id']}"
        )
        [resume] = await audit_rows(api, "recurring.subscription.resume")
        [cancel] = await audit_rows(api, "recurring.subscription.cancel")
        assert resume.after["status"] == "active" and cancel.after["reason"] == "fraud suspicion"


async def test_permissions(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        http = api.http
        _, sub = await _customer_with_subscription(api)
        cashier = await token_for(api, "cash1", "cashier")
        support = await token_for(api, "sup1", "support")
        cfo = await token_for(api, "cfo1", "cfo")
        operator = await token_for(api, "op1", "operator")
        pause = f"{R}/subscriptions/{sub['id']}/pause"
        # no recurring permission at all
        for url in (f"{R}/customers", f"{R}/agents", f"{R}/subscriptions/{sub['id']}"):
            body = problem(await http.get(url, headers=cashier), 403, "forbidden")
            assert body["permission"] == "recurring.read"
        problem(await http.post(pause, json={"reason": "x"}, headers=cashier), 403, "forbidden")
        # the CFO reads, but does not pause or configure
        assert (await http.get(f"{R}/customers", headers=cfo)).status_code == 200
        body = problem(await http.post(pause, json={"reason": "x"}, headers=cfo), 403, "forbidden")
        assert body["permission"] == "recurring.manage"
        # support pauses but does not configure agents; the operator does
        body = problem(await http.put(f"{R}/agents/dealer", json=SETTINGS, headers=support), 403, "forbidden")
        assert body["permission"] == "recurring.configure"
        assert (await http.put(f"{R}/agents/dealer", json=SETTINGS, headers=operator)).status_code == 201
        assert (await http.post(pause, json={"reason": "x"}, headers=support)).status_code == 200
        problem(await http.get(f"{R}/customers"), 401)
        # a channel key is no admin token
        problem(await http.get(f"{R}/customers", headers=api.h()), 401)
