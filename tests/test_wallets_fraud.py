"""Wallet anti-fraud over HTTP on loopback: rules (amount, velocity, new payee) hold matching operations
as applications naming the rule; applications found by id, e-mail and exact amount; approved (posted),
rejected (no trace); single operations blocked; a blocked customer refused; every change audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from paymux.audit.models import AuditEvent
from wallets_support import AW, wallets_env


async def _rule(w: Any, **body: Any) -> dict[str, Any]:
    r = await w.http.post(f"{AW}/fraud-rules", json=body, headers=w.env.admin)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _actions(w: Any) -> list[str]:
    async with w.env.hub.read_sessions() as s:
        return list((await s.scalars(select(AuditEvent.action).order_by(AuditEvent.seq))).all())


async def _apps(w: Any, **params: Any) -> list[dict[str, Any]]:
    r = await w.http.get(f"{AW}/applications", params=params, headers=w.env.admin)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_amount_rule_holds_an_application_found_and_approved(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        a = await w.customer("alice", email="alice@example.md")
        b = await w.customer("bob", email="bob@example.md")
        rule = await _rule(w, name="big-p2p", kind="amount", type="p2p", issuer="rub", max_amount="500.00")
        assert rule["max_amount"] == "500.00" and rule["enabled"] is True
        assert (await w.topup(a, "rub", "2000.00")).status_code == 201
        wb = await w.open(b, "rub")
        small = await w.p2p(a, a.wallets["rub"], wb, "500.00")  # at the threshold: not over it
        assert small.status_code == 201, small.text
        r = await w.p2p(a, a.wallets["rub"], wb, "700.00")
        assert r.status_code == 202, r.text
        held = r.json()
        assert held["state"] == "pending_review" and held["fraud_rule_id"] == rule["id"]
        assert "big-p2p" in held["hold_reason"] and "500.00 RUB" in held["hold_reason"]
        assert await w.balance(a, a.wallets["rub"]) == "1495.00"  # nothing posted for the held one

        assert [x["id"] for x in await _apps(w, operation_id=held["id"])] == [held["id"]]
        assert [x["id"] for x in await _apps(w, email="ALICE@example.md")] == [held["id"]]
        assert [x["id"] for x in await _apps(w, amount="700")] == [held["id"]]
        assert await _apps(w, amount="700.01") == []
        assert await _apps(w, email="bob@example.md") == []
        assert (await _apps(w))[0]["customer_email"] == "alice@example.md"

        r = await w.http.post(
            f"{AW}/operations/{held['id']}/approve", json={"reason": "called the client"}, headers=w.env.admin
        )
        assert r.status_code == 200 and r.json()["state"] == "done", r.text
        assert await w.balance(a, a.wallets["rub"]) == "788.00"  # 700 + 1 % fee
        assert await w.balance(b, wb) == "1200.00"
        assert await _apps(w) == []
        assert "wallet_fraud_rule.create" in await _actions(w)
        await w.check_invariants()


async def test_velocity_rule_counts_the_window_and_a_disabled_rule_matches_nothing(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        a, b = await w.customer("alice"), await w.customer("bob")
        rule = await _rule(w, name="burst", kind="velocity", type="p2p", max_count=2, window_minutes=10)
        await w.topup(a, "rub", "1000.00")
        wb = await w.open(b, "rub")
        states = [(await w.p2p(a, a.wallets["rub"], wb, "10.00")).json()["state"] for _ in range(3)]
        assert states == ["done", "done", "pending_review"]
        r = await w.http.patch(
            f"{AW}/fraud-rules/{rule['id']}",
            json={"enabled": False, "reason": "too strict"},
            headers=w.env.admin,
        )
        assert r.status_code == 200 and r.json()["enabled"] is False, r.text
        assert (await w.p2p(a, a.wallets["rub"], wb, "10.00")).json()["state"] == "done"
        # by amount: 40.00 counted within the window (done or waiting), with this one 50.00 > 45.00
        await _rule(
            w,
            name="burst-sum",
            kind="velocity",
            type="p2p",
            issuer="rub",
            max_amount="45.00",
            window_minutes=5,
        )
        assert (await w.p2p(a, a.wallets["rub"], wb, "10.00")).json()["state"] == "pending_review"
        assert "wallet_fraud_rule.update" in await _actions(w)


async def test_new_payee_rule_holds_the_first_payment_only(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        a, b, c = await w.customer("alice"), await w.customer("bob"), await w.customer("carol")
        await _rule(w, name="new-payee", kind="new_payee", type="p2p")
        await w.topup(a, "rub", "1000.00")
        wb, wc = await w.open(b, "rub"), await w.open(c, "rub")
        first = (await w.p2p(a, a.wallets["rub"], wb, "10.00")).json()
        assert first["state"] == "pending_review" and "new payee" in first["hold_reason"]
        r = await w.http.post(f"{AW}/operations/{first['id']}/approve", json={}, headers=w.env.admin)
        assert r.json()["state"] == "done", r.text
        assert (await w.p2p(a, a.wallets["rub"], wb, "10.00")).json()["state"] == "done"  # paid before
        assert (await w.p2p(a, a.wallets["rub"], wc, "10.00")).json()["state"] == "pending_review"
        # a top-up into one's own wallet has no payee; exchanges between own wallets neither
        assert (await w.topup(a, "rub", "5.00")).json()["state"] == "done"


async def test_blocked_operation_cannot_be_approved_and_blocked_customer_is_refused(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        a, b = await w.customer("alice"), await w.customer("bob")
        await _rule(w, name="big", kind="amount", type="p2p", issuer="rub", max_amount="100.00")
        await w.topup(a, "rub", "1000.00")
        wb = await w.open(b, "rub")
        held = (await w.p2p(a, a.wallets["rub"], wb, "200.00")).json()
        r = await w.http.post(
            f"{AW}/operations/{held['id']}/block", json={"reason": "suspect"}, headers=w.env.admin
        )
        assert r.status_code == 200 and r.json()["blocked"] is True, r.text
        r = await w.http.post(f"{AW}/operations/{held['id']}/approve", json={}, headers=w.env.admin)
        assert r.status_code == 409 and r.json()["type"].endswith("/operation-blocked"), r.text
        r = await w.http.post(
            f"{AW}/operations/{held['id']}/unblock", json={"reason": "ok"}, headers=w.env.admin
        )
        assert r.status_code == 200 and r.json()["blocked"] is False
        r = await w.http.post(
            f"{AW}/operations/{held['id']}/reject", json={"reason": "fraud"}, headers=w.env.admin
        )
        assert r.json()["state"] == "rejected"
        assert await w.balance(a, a.wallets["rub"]) == "1000.00"  # a rejected one leaves no trace
        done = (await w.p2p(a, a.wallets["rub"], wb, "10.00")).json()
        r = await w.http.post(f"{AW}/operations/{done['id']}/block", json={}, headers=w.env.admin)
        assert r.status_code == 409  # only a waiting operation is blocked

        r = await w.http.post(f"{AW}/customers/{a.id}/block", json={"reason": "fraud"}, headers=w.env.admin)
        assert r.status_code == 200
        r = await w.p2p(a, a.wallets["rub"], wb, "10.00")
        assert r.status_code == 403 and r.json()["type"].endswith("/customer-blocked"), r.text
        assert "refused until it is unblocked" in r.json()["detail"]
        actions = await _actions(w)
        for act in ("wallet_operation.block", "wallet_operation.unblock", "wallet_customer.block"):
            assert act in actions
        await w.check_invariants()


async def test_bad_rules_are_refused(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        bad: list[dict[str, Any]] = [
            {"name": "a", "kind": "amount", "type": "p2p", "max_amount": "10.00"},  # no issuer
            {"name": "b", "kind": "velocity", "type": "p2p", "max_count": 3},  # no window
            {"name": "c", "kind": "velocity", "type": "p2p", "window_minutes": 5},  # no bound
            {"name": "d", "kind": "new_payee", "type": "topup"},
            {"name": "e", "kind": "amount", "type": "p2p", "issuer": "rub", "max_amount": "1.001"},
            {"name": "f", "kind": "amount", "type": "p2p", "issuer": "nope", "max_amount": "1.00"},
        ]
        for body in bad:
            r = await w.http.post(f"{AW}/fraud-rules", json=body, headers=w.env.admin)
            assert r.status_code in (404, 422), (body, r.text)
        await _rule(w, name="ok", kind="new_payee", type="p2p")
        r = await w.http.post(
            f"{AW}/fraud-rules", json={"name": "ok", "kind": "new_payee", "type": "p2p"}, headers=w.env.admin
        )
        assert r.status_code == 409
        r = await w.http.get(f"{AW}/fraud-rules", headers=w.env.admin)
        assert [x["name"] for x in r.json()["items"]] == ["ok"]
        rid = r.json()["items"][0]["id"]
        assert (await w.http.delete(f"{AW}/fraud-rules/{rid}", headers=w.env.admin)).status_code == 200
        assert (await w.http.delete(f"{AW}/fraud-rules/{rid}", headers=w.env.admin)).status_code == 404
