"""Cash desks over the admin API and the customer API: a cash day from opening to the accountant's
acceptance, idempotent cash operations with receipts, counter-operations, the maker-checker of system
operations, the report and balances, and redeem requests decided and paid, with the customer notified."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from pypdf import PdfReader
from sqlalchemy import select

from paymux.audit.models import AuditEvent
from paymux.auth.tokens import issue_token
from paymux.auth.user_models import User
from paymux.notifications.models import Notification
from test_backoffice_support import add_user
from wallets_support import W, invariants, wallets_env

C = "/api/v1/admin/cashdesks"


def problem(r: Any, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["type"].endswith("/" + slug), body
    return body


async def token(env: Any, username: str, role: str) -> dict[str, str]:
    user = await add_user(env.hub, username, role)
    async with env.hub.sessions() as s:
        u = await s.get(User, user.id)
        assert u is not None
        raw, _ = await issue_token(s, u, "cash", None)
        await s.commit()
    return {"Authorization": f"Bearer {raw}"}


async def test_a_cash_day_from_opening_to_acceptance(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        env, http = w.env, w.http
        kass = await token(env, "kass", "cashier")
        other = await token(env, "kass2", "cashier")
        acc = await token(env, "acc", "accountant")
        cfo = await token(env, "cfo", "cfo")
        r = await http.post(
            C,
            json={
                "code": "d1",
                "name": "Main hall",
                "organization": "operator",
                "currencies": ["RUB"],
                "cashiers": ["kass"],
            },
            headers=env.admin,
        )
        assert r.status_code == 201, r.text
        desk = r.json()
        assert desk["cashiers"] == ["kass"] and desk["balances"] == {"RUB": "0.00"}
        problem(
            await http.post(
                C,
                json={"code": "d2", "name": "x", "organization": "operator", "currencies": ["RUB"]},
                headers=kass,
            ),
            403,
            "forbidden",
        )
        alice = await w.customer("alice", name="Alice")
        wallet = await w.open(alice, "rub")
        d = desk["id"]
        top = {"type": "topup", "wallet": wallet, "amount": "1500.00"}

        # nothing outside an open day
        problem(
            await http.post(f"{C}/{d}/operations", json=top, headers={**kass, "Idempotency-Key": "t1"}),
            409,
            "no-open-day",
        )
        problem(
            await http.post(f"{C}/{d}/days", json={"counts": {"RUB": "0.00"}}, headers=other),
            403,
            "not-a-cashier",
        )
        r = await http.post(f"{C}/{d}/days", json={"counts": {"RUB": "0.00"}}, headers=kass)
        assert r.status_code == 201, r.text
        day = r.json()
        assert day["state"] == "open" and day["opened_by"] == "kass"
        problem(
            await http.post(f"{C}/{d}/days", json={"counts": {"RUB": "0.00"}}, headers=kass), 409, "day-open"
        )

        # cash input: proposed by the accountant, approved by the CFO (not by the proposer)
        r = await http.post(
            f"{C}/system-operations",
            json={"type": "cash_input", "desk": d, "currency": "RUB", "amount": "5000.00", "note": "float"},
            headers=acc,
        )
        assert r.status_code == 201, r.text
        sys_id = r.json()["id"]
        problem(
            await http.post(f"{C}/system-operations/{sys_id}/approve", json={}, headers=acc), 403, "forbidden"
        )
        r = await http.post(
            f"{C}/system-operations",
            json={"type": "cash_input", "desk": d, "currency": "RUB", "amount": "1.00"},
            headers=env.admin,
        )
        own = r.json()["id"]
        problem(
            await http.post(f"{C}/system-operations/{own}/approve", json={}, headers=env.admin),
            403,
            "own-proposal",
        )
        r = await http.post(f"{C}/system-operations/{own}/reject", json={"note": "no"}, headers=cfo)
        assert r.json()["state"] == "rejected"
        problem(
            await http.post(f"{C}/system-operations/{sys_id}/approve", json={}, headers=kass),
            403,
            "forbidden",
        )
        r = await http.post(f"{C}/system-operations/{sys_id}/approve", json={"note": "ok"}, headers=cfo)
        assert r.status_code == 200 and r.json()["state"] == "approved", r.text
        problem(
            await http.post(f"{C}/system-operations/{sys_id}/approve", json={}, headers=cfo),
            409,
            "already-decided",
        )
        r = await http.post(
            f"{C}/system-operations",
            json={"type": "collection", "desk": d, "currency": "RUB", "amount": "9000.00"},
            headers=acc,
        )
        problem(
            await http.post(f"{C}/system-operations/{r.json()['id']}/approve", json={}, headers=cfo),
            422,
            "insufficient-cash",
        )

        # a cash top-up, idempotent
        r = await http.post(f"{C}/{d}/operations", json=top, headers={**kass, "Idempotency-Key": "t1"})
        assert r.status_code == 201, r.text
        op = r.json()
        assert op["state"] == "done" and op["cash"] == "1500.00"
        r = await http.post(f"{C}/{d}/operations", json=top, headers={**kass, "Idempotency-Key": "t1"})
        assert r.status_code == 200 and r.json()["id"] == op["id"]
        problem(
            await http.post(
                f"{C}/{d}/operations",
                json={**top, "amount": "1.00"},
                headers={**kass, "Idempotency-Key": "t1"},
            ),
            409,
            "idempotency-key-reused",
        )
        assert await w.balance(alice, wallet) == "1500.00"

        # a withdrawal needs the identity document; the wallet's fee applies (5.00)
        wd = {"type": "withdrawal", "wallet": wallet, "amount": "200.00"}
        problem(
            await http.post(f"{C}/{d}/operations", json=wd, headers={**kass, "Idempotency-Key": "w1"}),
            422,
            "identification-required",
        )
        r = await http.post(
            f"{C}/{d}/operations",
            json={**wd, "document": "passport AB1234567"},
            headers={**kass, "Idempotency-Key": "w2"},
        )
        assert r.status_code == 201, r.text
        wop = r.json()
        assert wop["document"] == "**************4567" and wop["fee"] == "5.00"
        assert await w.balance(alice, wallet) == "1295.00"
        big = {
            "type": "withdrawal",
            "wallet": wallet,
            "amount": "100000.00",
            "document": "passport AB1234567",
        }
        body = problem(
            await http.post(f"{C}/{d}/operations", json=big, headers={**kass, "Idempotency-Key": "w3"}),
            422,
            "insufficient-funds",
        )
        assert body["operation_id"] > wop["id"]

        # the receipt
        r = await http.get(f"{C}/operations/{op['id']}/receipt", headers=acc)
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        text = PdfReader(io.BytesIO(r.content)).pages[0].extract_text()
        assert "Cash top-up" in text and "1500.00 RUB" in text and "Main hall" in text

        # a counter-operation, with a reason, once
        rev = f"{C}/{d}/operations/{wop['id']}/reverse"
        r = await http.post(rev, json={"reason": " "}, headers={**kass, "Idempotency-Key": "r0"})
        assert r.status_code == 422
        r = await http.post(rev, json={"reason": "wrong wallet"}, headers={**kass, "Idempotency-Key": "r1"})
        assert r.status_code == 201 and r.json()["cash"] == "200.00", r.text
        problem(
            await http.post(rev, json={"reason": "again"}, headers={**kass, "Idempotency-Key": "r2"}),
            409,
            "already-reversed",
        )
        assert await w.balance(alice, wallet) == "1500.00"
        r = await http.get(f"{C}/{d}", headers=kass)
        assert r.json()["balances"] == {"RUB": "6500.00"}

        # close with a shortage of 10.00: shown and posted; then nothing changes the day
        r = await http.post(f"{C}/{d}/days/close", json={"counts": {"RUB": "6490.00"}}, headers=kass)
        assert r.status_code == 200, r.text
        closed = r.json()
        assert closed["state"] == "closed" and closed["difference"] == {"RUB": "-10.00"}
        assert closed["closing_book"] == {"RUB": "6500.00"}
        problem(
            await http.post(f"{C}/{d}/operations", json=top, headers={**kass, "Idempotency-Key": "t9"}),
            409,
            "no-open-day",
        )
        problem(
            await http.post(f"{C}/{d}/days/close", json={"counts": {"RUB": "1.00"}}, headers=kass),
            409,
            "no-open-day",
        )
        r = await http.get(f"{C}/days", params={"state": "closed"}, headers=acc)
        assert [x["id"] for x in r.json()["items"]] == [day["id"]]
        r = await http.get(f"{C}/days/{day['id']}", headers=acc)
        assert r.json()["totals"]["RUB"] == {"in": "6700.00", "out": "200.00", "count": 4}
        problem(await http.post(f"{C}/days/{day['id']}/accept", json={}, headers=kass), 403, "forbidden")
        r = await http.post(f"{C}/days/{day['id']}/accept", json={"note": "shortage noted"}, headers=acc)
        assert r.status_code == 200 and r.json()["state"] == "accepted"
        problem(await http.post(f"{C}/days/{day['id']}/accept", json={}, headers=acc), 409, "not-closed")

        # the report and the CFO's balances
        today = dt.datetime.now(dt.UTC).date().isoformat()
        r = await http.get(
            f"{C}/{d}/report", params={"currency": "RUB", "from": today, "to": today}, headers=acc
        )
        assert r.status_code == 200, r.text
        rep = r.json()
        assert rep["organization"] == "Operator" and rep["days"][0]["opened_by"] == "kass"
        assert rep["totals"]["cash_in"] == "1700.00" and rep["totals"]["cash_out"] == "200.00"
        assert rep["totals"]["system_in"] == "5000.00" and rep["totals"]["differences"] == "-10.00"
        assert rep["totals"]["net"] == rep["balance"] == "6490.00"
        r = await http.get(
            f"{C}/{d}/report", params={"currency": "RUB", "from": today, "to": "1999-01-01"}, headers=acc
        )
        problem(r, 422, "invalid-period")
        r = await http.get(f"{C}/balances", headers=cfo)
        assert r.json()["items"] == [
            {
                "desk": "d1",
                "desk_id": d,
                "name": "Main hall",
                "organization": "Operator",
                "currency": "RUB",
                "balance": "6490.00",
                "open": False,
            }
        ]
        async with env.hub.read_sessions() as s:
            actions = set((await s.scalars(select(AuditEvent.action))).all())
        assert {
            "cashday.open",
            "cashday.close",
            "cashday.accept",
            "cash.topup",
            "cash.reversal",
            "cash_system.approve",
        } <= actions
        await invariants(env)


async def test_redeem_requests_decided_paid_and_notified(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        env, http = w.env, w.http
        kass = await token(env, "kass", "cashier")
        acc = await token(env, "acc", "accountant")
        r = await http.post(
            C,
            json={
                "code": "d1",
                "name": "Hall",
                "organization": "operator",
                "currencies": ["RUB"],
                "cashiers": ["kass"],
            },
            headers=env.admin,
        )
        d = r.json()["id"]
        bob = await w.customer("bob", phone="+37369000002")
        assert (await w.topup(bob, "rub", "1000.00")).status_code == 201
        wallet = bob.wallets["rub"]
        url = f"{W}/redeem-requests"
        cash_req = {"from_wallet": wallet, "amount": "300.00", "method": "cash"}
        r = await http.post(url, json=cash_req, headers={**bob.h, "Idempotency-Key": "rq1"})
        assert r.status_code == 201, r.text
        cash_id = r.json()["id"]
        assert (
            await http.post(url, json=cash_req, headers={**bob.h, "Idempotency-Key": "rq1"})
        ).status_code == 200
        assert await w.balance(bob, wallet) == "700.00"  # held
        problem(
            await http.post(
                url, json={**cash_req, "amount": "5000.00"}, headers={**bob.h, "Idempotency-Key": "rq2"}
            ),
            422,
            "insufficient-funds",
        )
        bank = {"from_wallet": wallet, "amount": "100.00", "method": "bank_transfer"}
        problem(
            await http.post(url, json=bank, headers={**bob.h, "Idempotency-Key": "rq3"}), 422, "invalid-iban"
        )
        bank |= {"iban": "MD24AG000225100013104168", "beneficiary": "Bob"}
        r = await http.post(url, json=bank, headers={**bob.h, "Idempotency-Key": "rq4"})
        assert r.status_code == 201, r.text
        bank_id = r.json()["id"]
        r = await http.post(
            url, json={**bank, "amount": "50.00"}, headers={**bob.h, "Idempotency-Key": "rq5"}
        )
        third = r.json()["id"]
        assert await w.balance(bob, wallet) == "550.00"

        problem(
            await http.post(f"{C}/redeem-requests/{bank_id}/approve", json={}, headers=kass), 403, "forbidden"
        )
        problem(
            await http.post(f"{C}/redeem-requests/{third}/cancel", json={"reason": ""}, headers=acc),
            422,
            "reason-required",
        )
        r = await http.post(f"{C}/redeem-requests/{third}/cancel", json={"reason": "duplicate"}, headers=acc)
        assert r.json()["state"] == "cancelled"
        assert await w.balance(bob, wallet) == "600.00"  # given back
        r = await http.post(f"{C}/redeem-requests/{bank_id}/approve", json={}, headers=acc)
        assert r.json()["state"] == "approved" and r.json()["order_number"] == f"RDM-{bank_id:08d}"
        r = await http.post(f"{C}/redeem-requests/{cash_id}/approve", json={}, headers=acc)
        assert r.json()["state"] == "approved"
        problem(
            await http.post(f"{C}/redeem-requests/{cash_id}/cancel", json={"reason": "x"}, headers=acc),
            409,
            "already-decided",
        )

        # paid in cash at a desk, in an open day, from the desk's cash
        pay = {"type": "redeem_payout", "redeem_request": cash_id}
        r = await http.post(f"{C}/{d}/days", json={"counts": {"RUB": "0.00"}}, headers=kass)
        body = problem(
            await http.post(f"{C}/{d}/operations", json=pay, headers={**kass, "Idempotency-Key": "p1"}),
            422,
            "insufficient-cash",
        )
        assert body["operation_id"]
        r = await http.post(
            f"{C}/{d}/operations",
            json={"type": "topup", "wallet": wallet, "amount": "400.00"},
            headers={**kass, "Idempotency-Key": "t1"},
        )
        assert r.status_code == 201
        r = await http.post(f"{C}/{d}/operations", json=pay, headers={**kass, "Idempotency-Key": "p2"})
        assert r.status_code == 201 and r.json()["cash"] == "-300.00", r.text
        problem(
            await http.post(f"{C}/{d}/operations", json=pay, headers={**kass, "Idempotency-Key": "p3"}),
            409,
            "not-payable",
        )
        r = await http.get(f"{url}/{cash_id}", headers=bob.h)
        assert r.json()["state"] == "paid"
        r = await http.get(url, headers=bob.h)
        assert [x["state"] for x in r.json()["items"]] == ["cancelled", "approved", "paid"]
        assert await w.balance(bob, wallet) == "1000.00"
        r = await http.get(f"{C}/{d}", headers=acc)
        assert r.json()["balances"] == {"RUB": "100.00"}
        async with env.hub.read_sessions() as s:
            events = set((await s.scalars(select(Notification.event))).all())
        assert {"wallet.redeem.cancelled", "wallet.redeem.approved", "wallet.redeem.paid"} <= events
        await invariants(env)
