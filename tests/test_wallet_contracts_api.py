"""Contracts and cashback profiles over the admin API: the maker-checker (a Financial specialist
proposes, a CFO approves, nobody decides their own), the terms that apply (own contract, else the
group's, else the issuer's), contract limits refusing with a problem that names them, and cashback
credited to a payer of a merchant with its caps, once per operation."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from harness import Env
from paymux.audit.models import AuditEvent
from paymux.auth.tokens import issue_token
from paymux.auth.user_models import User
from paymux.wallets.contract_models import WalletCashback, WalletContract
from test_backoffice_support import add_user
from wallets_support import AW, W, key, wallets_env


async def token_for(env: Env, username: str, role: str) -> dict[str, str]:
    user = await add_user(env.hub, username, role)
    async with env.hub.sessions() as s:
        u = await s.get(User, user.id)
        assert u is not None
        token, _ = await issue_token(s, u, "test", None)
        await s.commit()
    return {"Authorization": f"Bearer {token}"}


async def propose(env: Env, h: dict[str, str], what: str, body: dict[str, Any]) -> int:
    r = await env.http.post(f"{AW}/{what}-proposals", json=body, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending"
    return int(r.json()["id"])


async def approve(env: Env, h: dict[str, str], what: str, pid: int) -> dict[str, Any]:
    r = await env.http.post(f"{AW}/{what}-proposals/{pid}/approve", json={"note": "ok"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"
    return dict(r.json())


def slug(r: Any) -> str:
    return str(r.json()["type"]).rsplit("/", 1)[1]


async def test_contracts_maker_checker_terms_and_limits(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        env = w.env
        fin = await token_for(env, "fin", "financial_specialist")
        cfo = await token_for(env, "cfo", "cfo")
        a = await w.customer("a")
        b = await w.customer("b")
        assert (await w.topup(a, "rub", "10000.00")).status_code == 201
        await w.open(b, "rub")

        group_contract = {
            "issuer": "rub",
            "group": "vip",
            "terms": {
                "p2p": {
                    "fee": {"percent": "0.5"},
                    "limits": [
                        {"name": "p2p-max", "max_amount": "500.00"},
                        {"name": "p2p-month", "identification": "identified", "monthly_count": 3},
                        {"name": "unident", "identification": "unidentified", "max_amount": "1.00"},
                    ],
                }
            },
            "note": "VIP",
        }
        # refusals before anything is proposed
        bad = await env.http.post(
            f"{AW}/contract-proposals", json={**group_contract, "customer": a.id}, headers=fin
        )
        assert bad.status_code == 422 and slug(bad) == "invalid-contract", bad.text
        bad = await env.http.post(
            f"{AW}/contract-proposals", json={**group_contract, "issuer": "zzz"}, headers=fin
        )
        assert bad.status_code == 422 and slug(bad) == "unknown-issuer"
        bad_terms = {"p2p": {"limits": [{"name": "x", "min_amount": "5.00", "max_amount": "1.00"}]}}
        bad = await env.http.post(
            f"{AW}/contract-proposals", json={**group_contract, "terms": bad_terms}, headers=fin
        )
        assert bad.status_code == 422 and "min_amount" in bad.json()["detail"]

        pid = await propose(env, fin, "contract", group_contract)
        # the proposer cannot decide; a financial specialist cannot approve at all
        r = await env.http.post(f"{AW}/contract-proposals/{pid}/approve", headers=fin)
        assert r.status_code == 403
        own = await propose(env, cfo, "contract", {**group_contract, "group": "other"})
        r = await env.http.post(f"{AW}/contract-proposals/{own}/approve", headers=cfo)
        assert r.status_code == 403 and slug(r) == "own-proposal", r.text
        # not approved yet: the issuer's defaults (1 %, at least 1.00)
        r = await w.p2p(a, a.wallets["rub"], b.wallets["rub"], "100.00")
        assert r.status_code == 201 and r.json()["fee"] == "1.00", r.text

        decided = await approve(env, cfo, "contract", pid)
        assert decided["result_id"] is not None
        again = await env.http.post(f"{AW}/contract-proposals/{pid}/reject", headers=cfo)
        assert again.status_code == 409 and slug(again) == "already-decided"
        # a customer not in the group still pays the issuer's fee
        r = await w.p2p(a, a.wallets["rub"], b.wallets["rub"], "100.00")
        assert r.json()["fee"] == "1.00"
        # in the group: 0.5 %, and the group's limits
        r = await env.http.put(f"{AW}/customers/{a.id}/contract-group", json={"group": "vip"}, headers=fin)
        assert r.status_code == 403
        r = await env.http.put(f"{AW}/customers/{a.id}/contract-group", json={"group": "vip"}, headers=cfo)
        assert r.status_code == 200, r.text
        eff = (await env.http.get(f"{AW}/customers/{a.id}/contract-terms", headers=fin)).json()
        assert eff["group"] == "vip" and eff["terms"]["rub"]["p2p"]["source"] == "group"
        assert eff["terms"]["rub"]["withdrawal"]["source"] == "issuer"
        r = await w.p2p(a, a.wallets["rub"], b.wallets["rub"], "100.00")
        assert r.status_code == 201 and r.json()["fee"] == "0.50", r.text
        r = await w.p2p(a, a.wallets["rub"], b.wallets["rub"], "500.01")
        assert r.status_code == 422 and slug(r) == "limit-exceeded", r.text
        assert (
            r.json()["limit"]["name"] == "p2p-max"
            and r.json()["limit"]["contract_id"] == decided["result_id"]
        )
        # monthly count 3: the two P2P made at the issuer's fee before joining count too
        r = await w.p2p(a, a.wallets["rub"], b.wallets["rub"], "10.00")
        assert r.status_code == 422 and r.json()["limit"]["bound"] == "monthly_count", r.text
        # withdrawals keep the issuer's fee (the contract has no terms for them)
        r = await w.withdraw(a, a.wallets["rub"], "10.00")
        assert r.status_code == 201 and r.json()["fee"] == "5.00"

        # the customer's own contract wins over its group's: no fee, no limits for P2P
        pid = await propose(env, fin, "contract", {"issuer": "rub", "customer": a.id, "terms": {"p2p": {}}})
        rejected = await env.http.post(
            f"{AW}/contract-proposals/{pid}/reject", json={"note": "no"}, headers=cfo
        )
        assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
        r = await w.p2p(a, a.wallets["rub"], b.wallets["rub"], "10.00")
        assert r.status_code == 422  # rejected: nothing changed
        pid = await propose(env, fin, "contract", {"issuer": "rub", "customer": a.id, "terms": {"p2p": {}}})
        await approve(env, cfo, "contract", pid)
        r = await w.p2p(a, a.wallets["rub"], b.wallets["rub"], "700.00")
        assert r.status_code == 201 and r.json()["fee"] == "0.00", r.text

        listed = (await env.http.get(f"{AW}/contracts?issuer=rub", headers=fin)).json()["items"]
        assert {(c["group"], c["customer"], c["version"]) for c in listed} == {
            ("vip", None, 1),
            (None, a.id, 1),
        }
        pending = (await env.http.get(f"{AW}/contract-proposals?status=pending", headers=fin)).json()["items"]
        assert [p["id"] for p in pending] == [own]
        async with env.hub.read_sessions() as s:
            actions = set(
                (await s.scalars(select(AuditEvent.action).where(AuditEvent.action.like("wallets.%")))).all()
            )
            assert {
                "wallets.contract.propose",
                "wallets.contract.approve",
                "wallets.contract.reject",
                "wallets.contract_group",
            } <= actions
            assert await s.scalar(select(func.count()).select_from(WalletContract)) == 2
        await w.check_invariants()


async def test_cashback_to_the_payer_of_a_merchant_with_caps_once_per_operation(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        env = w.env
        fin = await token_for(env, "fin", "financial_specialist")
        cfo = await token_for(env, "cfo", "cfo")
        a = await w.customer("a")
        shop = await w.customer("shop", kind="merchant")
        other = await w.customer("other")
        assert (await w.topup(a, "rub", "10000.00")).status_code == 201
        await w.open(shop, "rub")
        await w.open(other, "rub")

        profile = {
            "merchant": shop.id,
            "issuer": "bonus",
            "mode": "percent",
            "percent": "3",
            "per_operation_cap": "5",
            "monthly_cap": "8",
            "funding": "issuer",
        }
        bad = await env.http.post(f"{AW}/cashback-proposals", json={**profile, "merchant": a.id}, headers=fin)
        assert bad.status_code == 422 and "not a merchant" in bad.json()["detail"]
        bad = await env.http.post(f"{AW}/cashback-proposals", json={**profile, "percent": "0"}, headers=fin)
        assert bad.status_code == 422
        pid = await propose(env, fin, "cashback", profile)
        await approve(env, cfo, "cashback", pid)
        eff = (await env.http.get(f"{AW}/customers/{shop.id}/cashback-profile", headers=fin)).json()
        assert eff["profile"]["percent"] == "3" and eff["profile"]["operation_types"] == [
            "merchant_payment",
            "p2p",
        ]

        async def pay(to: int, amount: str, k: dict[str, str] | None = None) -> Any:
            r = await w.p2p(a, a.wallets["rub"], to, amount, k)
            assert r.status_code in (200, 201), r.text
            return r

        async def points() -> int:
            r = await env.http.get(f"{W}/wallets", headers=a.h)
            return sum(int(x["balance"]) for x in r.json()["items"] if x["currency"] == "PTS")

        k = key()
        await pay(shop.wallets["rub"], "250.00", k)  # 7.5 points, rounded down to 7, capped to 5
        assert await points() == 5
        await pay(shop.wallets["rub"], "250.00", k)  # the same request again: no second cashback
        await pay(other.wallets["rub"], "250.00")  # not a merchant of a profile: nothing
        assert await points() == 5
        await pay(shop.wallets["rub"], "50.00")  # 1.5 -> 1
        await pay(shop.wallets["rub"], "100.00")  # 3, but the month leaves 2
        await pay(shop.wallets["rub"], "100.00")  # the month's cap is reached: nothing
        assert await points() == 8
        async with env.hub.read_sessions() as s:
            rows = (await s.scalars(select(WalletCashback).order_by(WalletCashback.id))).all()
            assert [r.amount for r in rows] == [5, 1, 2]
            assert all(r.state == "done" and r.payer_id == a.id and r.merchant_id == shop.id for r in rows)
        ops = (await env.http.get(f"{AW}/operations?customer_id={a.id}", headers=env.admin)).json()["items"]
        cashbacks = [o for o in ops if o["type"] == "cashback"]
        assert [(o["amount"], o["currency"], o["state"]) for o in cashbacks] == [
            ("2", "PTS", "done"),
            ("1", "PTS", "done"),
            ("5", "PTS", "done"),
        ]

        # merchant-funded fixed cashback in RUB: from the shop's wallet, which cannot cover it at first
        fixed = {**profile, "issuer": "rub", "mode": "fixed", "fixed": "2.00", "funding": "merchant"}
        for drop in ("percent", "per_operation_cap", "monthly_cap"):
            fixed.pop(drop)
        pid = await propose(env, fin, "cashback", fixed)
        await approve(env, cfo, "cashback", pid)
        before = await w.balance(a, a.wallets["rub"])
        await pay(shop.wallets["rub"], "10.00")  # the shop has 750.00 from the payments: it pays 2.00
        after = await w.balance(a, a.wallets["rub"])
        assert Decimal(before) - Decimal(after) == Decimal("10.00") + Decimal("1.00") - Decimal("2.00")
        await w.check_invariants()


async def test_concurrent_payments_keep_contract_limits_and_the_cashback_cap(db_url: str) -> None:
    """Twelve payments of one payer to a merchant at once: the contract's daily count lets exactly
    four through, and the cashback of the month stays within its cap."""
    async with wallets_env(db_url) as w:
        env = w.env
        a = await w.customer("a")
        shop = await w.customer("shop", kind="merchant")
        assert (await w.topup(a, "rub", "10000.00")).status_code == 201
        await w.open(shop, "rub")
        fin = await token_for(env, "fin", "financial_specialist")
        cfo = await token_for(env, "cfo", "cfo")
        terms = {"p2p": {"fee": None, "limits": [{"name": "four-a-day", "daily_count": 4}]}}
        pid = await propose(env, fin, "contract", {"issuer": "rub", "customer": a.id, "terms": terms})
        await approve(env, cfo, "contract", pid)
        profile = {"merchant": shop.id, "issuer": "bonus", "mode": "fixed", "fixed": "3", "monthly_cap": "10"}
        pid = await propose(env, fin, "cashback", {**profile, "funding": "issuer"})
        await approve(env, cfo, "cashback", pid)

        answers = await asyncio.gather(
            *(w.p2p(a, a.wallets["rub"], shop.wallets["rub"], "10.00") for _ in range(12))
        )
        codes = sorted(r.status_code for r in answers)
        assert codes == [201] * 4 + [422] * 8, [r.text for r in answers]
        assert {r.json()["limit"]["name"] for r in answers if r.status_code == 422} == {"four-a-day"}
        async with env.hub.read_sessions() as s:
            amounts = (await s.scalars(select(WalletCashback.amount).order_by(WalletCashback.id))).all()
        assert list(amounts) == [3, 3, 3, 1]  # 3 each, the month's cap of 10 leaves 1 for the fourth
        assert await w.balance(a, a.wallets["rub"]) == "9960.00"  # no fee under the contract
        await w.check_invariants()
