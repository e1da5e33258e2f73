"""The wallet customer API and admin API over HTTP on loopback: postings of each operation type,
idempotency, exchange rounding, limits and review, blocks, overdraft, the emission limit, customer
tokens, history, and concurrent P2P transfers from one wallet (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from paymux.audit.models import AuditEvent
from paymux.auth.keys import issue_channel_key
from paymux.auth.tokens import issue_token
from paymux.auth.user_models import User
from paymux.ledger.models import Account, JournalEntry, Posting
from paymux.wallets.models import WalletOperation
from paymux.wallets.tokens import WalletSettings, mint, signing_key
from test_backoffice_support import add_user
from wallets_support import AW, Customer, W, wallets_env

PROBLEM = "application/problem+json"


def problem(r: Any, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body: dict[str, Any] = r.json()
    assert body["type"].endswith("/" + slug), body
    return body


async def actions(env: Any) -> set[str]:
    async with env.hub.read_sessions() as s:
        return set((await s.scalars(select(AuditEvent.action))).all())


async def entry_lines(env: Any, operation_id: int) -> dict[tuple[str, int], int]:
    """The postings of the operation's journal entry, by (account kind, owner)."""
    async with env.hub.read_sessions() as s:
        op = await s.get(WalletOperation, operation_id)
        assert op is not None and op.entry_id is not None
        rows = (
            await s.execute(
                select(Account.kind, Account.owner_id, Posting.amount)
                .join(Account, Account.id == Posting.account_id)
                .where(Posting.entry_id == op.entry_id)
            )
        ).all()
        kind = await s.scalar(select(JournalEntry.kind).where(JournalEntry.id == op.entry_id))
    assert kind == f"wallet_{op.type}"
    return {(k, o): a for k, o, a in rows}


async def test_each_operation_posts_one_balanced_entry(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        a, b = await w.customer("alice"), await w.customer("bob")
        r = await w.topup(a, "rub", "1000.00")
        assert r.status_code == 201, r.text
        top = r.json()
        assert top["state"] == "done" and top["type"] == "topup" and top["amount"] == "1000.00"
        wa = a.wallets["rub"]
        assert await w.balance(a, wa) == "1000.00"
        issuer = (await w.http.get(f"{AW}/issuers/rub", headers=w.env.admin)).json()
        rub_id = issuer["id"]
        assert await entry_lines(w.env, top["id"]) == {
            ("emoney_float", rub_id): -100000,
            ("wallet", wa): 100000,
        }

        wb = await w.open(b, "rub")
        r = await w.p2p(a, wa, wb, "100.00")
        assert r.status_code == 201, r.text
        p2p = r.json()
        assert p2p["fee"] == "1.00"  # 1 %, at least 1.00
        assert await entry_lines(w.env, p2p["id"]) == {
            ("wallet", wa): -10100,
            ("wallet", wb): 10000,
            ("wallet_fees", rub_id): 100,
        }
        assert await w.balance(a, wa) == "899.00" and await w.balance(b, wb) == "100.00"

        r = await w.withdraw(b, wb, "50.00")
        assert r.status_code == 201, r.text
        out = r.json()
        assert out["fee"] == "5.00"
        assert await entry_lines(w.env, out["id"]) == {
            ("wallet", wb): -5500,
            ("emoney_float", rub_id): 5000,
            ("wallet_fees", rub_id): 500,
        }
        assert await w.balance(b, wb) == "45.00"
        totals = (await w.http.get(f"{AW}/issuers/rub", headers=w.env.admin)).json()["totals"]
        assert totals == {"emitted": "950.00", "wallets": "944.00", "fees": "6.00", "held": "0.00"}
        await w.check_invariants()


async def test_idempotency_same_request_same_answer_other_request_409(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        a = await w.customer("alice")
        k = {"Idempotency-Key": "top-1"}
        first = await w.topup(a, "rub", "10.00", **k)
        assert first.status_code == 201
        again = await w.topup(a, "rub", "10.00", **k)
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        assert await w.balance(a, a.wallets["rub"]) == "10.00"
        other = problem(await w.topup(a, "rub", "11.00", **k), 409, "idempotency-key-reused")
        assert other["operation_id"] == first.json()["id"]

        # a refusal is recorded and replayed as it was, even once the wallet could pay
        b = await w.customer("bob")
        wb = await w.open(b, "rub")
        kk = {"Idempotency-Key": "p2p-1"}
        refused = problem(await w.p2p(a, a.wallets["rub"], wb, "20.00", kk), 422, "insufficient-funds")
        assert (await w.topup(a, "rub", "100.00")).status_code == 201
        replay = problem(await w.p2p(a, a.wallets["rub"], wb, "20.00", kk), 422, "insufficient-funds")
        assert replay["operation_id"] == refused["operation_id"]
        assert await w.balance(b, wb) == "0.00"
        # the key belongs to the channel: another of its customers cannot reuse it
        problem(await w.p2p(b, wb, a.wallets["rub"], "20.00", kk), 409, "idempotency-key-reused")
        # the key is the channel's: any missing/malformed key is refused before anything happens
        r = await w.http.post(
            f"{W}/transfers",
            json={"from_wallet": a.wallets["rub"], "to_wallet": wb, "amount": "1.00"},
            headers=a.h,
        )
        assert r.status_code == 422
        bad = {"Idempotency-Key": "has space"}
        problem(await w.p2p(a, a.wallets["rub"], wb, "1.00", bad), 422, "invalid-idempotency-key")
        await w.check_invariants()


async def test_exchange_at_the_system_rate_less_spread_rounded_down(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        a = await w.customer("alice")
        assert (await w.topup(a, "rub", "1000.00")).status_code == 201
        weur = await w.open(a, "eur")
        # 1 EUR = 98.4512 RUB; into EUR less 1.5 %: 100000 * 0.985 / 98.4512 = 1000.4956.. -> 1000 cents
        r = await w.exchange(a, a.wallets["rub"], weur, "1000.00")
        assert r.status_code == 201, r.text
        ex = r.json()
        assert (ex["to_amount"], ex["to_currency"], ex["fee"]) == ("10.00", "EUR", "0.00")
        assert await w.balance(a, a.wallets["rub"]) == "0.00" and await w.balance(a, weur) == "10.00"
        # back into RUB less 2 %: 1000 * 98.4512 * 0.98 = 96482.176 -> 96482 kopecks
        r = await w.exchange(a, weur, a.wallets["rub"], "10.00")
        assert r.status_code == 201, r.text
        assert r.json()["to_amount"] == "964.82"
        # points have no system rate with a currency
        wpts = await w.open(a, "bonus")
        problem(await w.exchange(a, a.wallets["rub"], wpts, "1.00"), 422, "no-rate")
        # worth less than a cent after the exchange
        problem(await w.exchange(a, a.wallets["rub"], weur, "0.01"), 422, "amount-too-small")
        # an exchange is between two issuers, and a P2P within one
        problem(await w.p2p(a, a.wallets["rub"], weur, "1.00"), 422, "issuer-mismatch")
        await w.check_invariants()


async def test_limits_refuse_naming_the_limit_or_hold_for_review(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        add = {"issuer": "rub", "type": "p2p", "identification": "unidentified"}
        r = await w.http.post(
            f"{AW}/limits",
            json={**add, "name": "p2p-basic", "max_amount": "500.00", "daily_count": 2},
            headers=w.env.admin,
        )
        assert r.status_code == 201, r.text
        r = await w.http.post(
            f"{AW}/limits",
            json={
                **add,
                "identification": "identified",
                "name": "p2p-large",
                "max_amount": "300.00",
                "action": "review",
            },
            headers=w.env.admin,
        )
        assert r.status_code == 201, r.text
        u, v = await w.customer("u1", "unidentified"), await w.customer("v1", "identified")
        assert (await w.topup(u, "rub", "5000.00")).status_code == 201
        assert (await w.topup(v, "rub", "5000.00")).status_code == 201
        wu, wv = u.wallets["rub"], v.wallets["rub"]

        body = problem(await w.p2p(u, wu, wv, "600.00"), 422, "limit-exceeded")
        assert body["limit"]["name"] == "p2p-basic" and body["limit"]["bound"] == "max_amount"
        assert body["limit"]["value"] == "500.00"
        assert (await w.p2p(u, wu, wv, "10.00")).status_code == 201
        assert (await w.p2p(u, wu, wv, "10.00")).status_code == 201
        body = problem(await w.p2p(u, wu, wv, "10.00"), 422, "limit-exceeded")
        assert body["limit"]["bound"] == "daily_count"

        # review: held with no postings, then approved (posted) or rejected (no trace)
        r = await w.p2p(v, wv, wu, "400.00")
        assert r.status_code == 202, r.text
        held = r.json()
        assert held["state"] == "pending_review" and held["entry_id"] is None
        assert await w.balance(v, wv) == "5020.00"  # received 2 x 10.00
        r = await w.http.post(
            f"{AW}/operations/{held['id']}/approve", json={"reason": "known payee"}, headers=w.env.admin
        )
        assert r.status_code == 200 and r.json()["state"] == "done", r.text
        assert await w.balance(v, wv) == "4616.00"  # 400 + 1 % fee
        r = await w.p2p(v, wv, wu, "350.00")
        assert r.status_code == 202
        rid = r.json()["id"]
        r = await w.http.post(f"{AW}/operations/{rid}/reject", json={"reason": "fraud"}, headers=w.env.admin)
        assert r.status_code == 200 and r.json()["state"] == "rejected"
        assert await w.balance(v, wv) == "4616.00"
        again = await w.http.post(f"{AW}/operations/{rid}/approve", json={}, headers=w.env.admin)
        problem(again, 409, "not-pending")
        r = await w.http.get(f"{AW}/operations", params={"state": "rejected"}, headers=w.env.admin)
        assert [o["id"] for o in r.json()["items"]] == [rid]
        assert {
            "wallet_operation.approve",
            "wallet_operation.reject",
            "wallet_limit.create",
        } <= await actions(w.env)
        await w.check_invariants()


async def test_blocked_customer_and_wallet_are_refused(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        a, b = await w.customer("alice"), await w.customer("bob")
        assert (await w.topup(a, "rub", "100.00")).status_code == 201
        wa, wb = a.wallets["rub"], await w.open(b, "rub")
        r = await w.http.post(f"{AW}/customers/{a.id}/block", json={"reason": "KYC"}, headers=w.env.admin)
        assert r.status_code == 200 and r.json()["status"] == "blocked"
        problem(await w.p2p(a, wa, wb, "1.00"), 403, "customer-blocked")
        problem(await w.topup(a, "rub", "1.00"), 403, "customer-blocked")
        r = await w.http.post(f"{W}/customers/alice/tokens", headers=w.env.headers())
        problem(r, 403, "customer-blocked")
        # paying a blocked customer is refused too
        problem(await w.p2p(b, wb, wa, "1.00"), 403, "recipient-blocked")
        r = await w.http.post(f"{AW}/customers/{a.id}/unblock", json={}, headers=w.env.admin)
        assert r.status_code == 200
        assert (await w.p2p(a, wa, wb, "1.00")).status_code == 201
        r = await w.http.post(f"{AW}/wallets/{wb}/block", json={"reason": "dispute"}, headers=w.env.admin)
        assert r.status_code == 200 and r.json()["status"] == "blocked"
        problem(await w.p2p(a, wa, wb, "1.00"), 403, "wallet-blocked")
        r = await w.http.get(f"{AW}/customers", params={"q": "alice"}, headers=w.env.admin)
        assert [c["id"] for c in r.json()["items"]] == [a.id]
        assert {"wallet_customer.block", "wallet_customer.unblock", "wallet.block"} <= await actions(w.env)
        r = await w.http.get(f"{AW}/customers/{a.id}", headers={})
        problem(r, 401, "unauthorized")
        await w.check_invariants()


async def test_overdraft_and_emission_limit(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        a = await w.customer("alice")
        wa = await w.open(a, "rub")
        problem(await w.withdraw(a, wa, "1.00"), 422, "insufficient-funds")
        r = await w.http.post(
            f"{AW}/wallets/{wa}/overdraft", json={"overdraft": "100.00"}, headers=w.env.admin
        )
        assert r.status_code == 200, r.text
        assert (await w.withdraw(a, wa, "95.00")).status_code == 201  # + 5.00 fee = -100.00
        assert await w.balance(a, wa) == "-100.00"
        problem(await w.withdraw(a, wa, "0.01"), 422, "insufficient-funds")

        r = await w.http.patch(f"{AW}/issuers/eur", json={"emission_limit": "50.00"}, headers=w.env.admin)
        assert r.status_code == 200 and r.json()["emission_limit"] == "50.00", r.text
        assert (await w.topup(a, "eur", "40.00")).status_code == 201
        body = problem(await w.topup(a, "eur", "20.00"), 422, "emission-limit-exceeded")
        assert body["issuer"] == "eur"
        assert (await w.topup(a, "eur", "10.00")).status_code == 201  # exactly at the limit
        await w.check_invariants()


async def test_customer_tokens_scope_and_history_cursor(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        a, b = await w.customer("alice"), await w.customer("bob")
        for i in range(5):
            assert (await w.topup(a, "rub", f"{i + 1}.00")).status_code == 201
        wa = a.wallets["rub"]
        seen: list[str] = []
        cursor: int | None = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            r = await w.http.get(f"{W}/wallets/{wa}/history", params=params, headers=a.h)
            assert r.status_code == 200, r.text
            page = r.json()
            seen += [it["amount"] for it in page["items"]]
            assert all(it["type"] == "topup" for it in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ["5.00", "4.00", "3.00", "2.00", "1.00"]
        r = await w.http.get(f"{AW}/wallets/{wa}/history", params={"limit": 3}, headers=w.env.admin)
        assert r.status_code == 200 and r.json()["balance"] == "15.00"
        assert [it["amount"] for it in r.json()["items"]] == ["5.00", "4.00", "3.00"]
        # another customer's wallet is not found; forged and expired tokens are refused
        problem(await w.http.get(f"{W}/wallets/{wa}", headers=b.h), 404, "not-found")
        r = await w.http.get(f"{W}/wallets", headers=a.h)
        assert [x["id"] for x in r.json()["items"]] == [wa]
        forged = a.token[:-4] + ("0000" if not a.token.endswith("0000") else "1111")
        problem(
            await w.http.get(f"{W}/me", headers={"Authorization": f"Bearer {forged}"}), 401, "unauthorized"
        )
        k = await signing_key(w.env.hub, WalletSettings())
        old, _ = mint(k, a.id, 1, 900, now=1_000_000)
        problem(await w.http.get(f"{W}/me", headers={"Authorization": f"Bearer {old}"}), 401, "unauthorized")
        # a channel key is not a customer token, nor the other way
        problem(await w.http.get(f"{W}/me", headers=w.env.headers()), 401, "unauthorized")
        problem(
            await w.http.post(f"{W}/customers", json={"external_ref": "x"}, headers=a.h), 401, "unauthorized"
        )
        r = await w.http.get(f"{W}/me", headers=a.h)
        assert r.status_code == 200 and r.json()["external_ref"] == "alice"
        # customers are the channel's: another channel's reference space is its own
        async with w.env.hub.sessions() as s:
            web = await issue_channel_key(s, "web")
            await s.commit()
        r = await w.http.post(f"{W}/customers/alice/tokens", headers={"Authorization": f"Bearer {web}"})
        problem(r, 404, "not-found")


async def test_concurrent_p2p_from_one_wallet_never_overdraws(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        a = await w.customer("alice")
        payees: list[Customer] = [await w.customer(f"payee{i}") for i in range(4)]
        assert (await w.topup(a, "rub", "100.00")).status_code == 201
        wa = a.wallets["rub"]
        targets = [await w.open(p, "rub") for p in payees]
        # each costs 10.00 + 1.00 fee: 9 fit in 100.00, 11 must be refused
        results = await asyncio.gather(*(w.p2p(a, wa, targets[i % 4], "10.00") for i in range(20)))
        codes = sorted(r.status_code for r in results)
        done = codes.count(201)
        assert done == 9 and codes.count(422) == 11, codes
        for r in results:
            if r.status_code == 422:
                assert r.json()["type"].endswith("/insufficient-funds")
        assert await w.balance(a, wa) == "1.00"
        received = [await w.balance(p, t) for p, t in zip(payees, targets, strict=True)]
        assert sum(Decimal(x) for x in received) == Decimal("90.00")
        await w.check_invariants()


async def test_daily_count_limit_holds_under_concurrent_requests(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        r = await w.http.post(
            f"{AW}/limits",
            json={
                "issuer": "rub",
                "type": "p2p",
                "identification": "identified",
                "name": "five",
                "daily_count": 5,
            },
            headers=w.env.admin,
        )
        assert r.status_code == 201, r.text
        a, b = await w.customer("alice"), await w.customer("bob")
        assert (await w.topup(a, "rub", "1000.00")).status_code == 201
        wb = await w.open(b, "rub")
        results = await asyncio.gather(*(w.p2p(a, a.wallets["rub"], wb, "1.00") for _ in range(12)))
        codes = sorted(r.status_code for r in results)
        assert codes.count(201) == 5 and codes.count(422) == 7, codes
        for r in results:
            if r.status_code == 422:
                assert r.json()["limit"]["name"] == "five"
        assert await w.balance(b, wb) == "5.00"
        await w.check_invariants()


async def test_admin_routes_need_their_permissions(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        a = await w.customer("alice")
        tokens: dict[str, dict[str, str]] = {}
        for role in ("support", "anti_fraud"):
            user = await add_user(w.env.hub, role, role)
            async with w.env.hub.sessions() as s:
                u = await s.get(User, user.id)
                assert u is not None
                raw, _ = await issue_token(s, u, "wallets", None)
                await s.commit()
            tokens[role] = {"Authorization": f"Bearer {raw}"}
        support, fraud = tokens["support"], tokens["anti_fraud"]
        r = await w.http.get(f"{AW}/customers", params={"q": "alice"}, headers=support)
        assert r.status_code == 200 and [c["id"] for c in r.json()["items"]] == [a.id]
        problem(await w.http.post(f"{AW}/customers/{a.id}/block", json={}, headers=support), 403, "forbidden")
        issuer = {"code": "x", "name": "X", "kind": "units", "currency": "XUN"}
        problem(await w.http.post(f"{AW}/issuers", json=issuer, headers=fraud), 403, "forbidden")
        r = await w.http.post(f"{AW}/customers/{a.id}/block", json={"reason": "velocity"}, headers=fraud)
        assert r.status_code == 200 and r.json()["status"] == "blocked"
        async with w.env.hub.read_sessions() as s:
            event = await s.scalar(select(AuditEvent).where(AuditEvent.action == "wallet_customer.block"))
        assert event is not None and event.actor.startswith("user:anti_fraud")
        assert "velocity" in str(event.after)


async def test_crossing_p2p_transfers_do_not_deadlock(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        a, b = await w.customer("alice"), await w.customer("bob")
        assert (await w.topup(a, "rub", "100.00")).status_code == 201
        assert (await w.topup(b, "rub", "100.00")).status_code == 201
        wa, wb = a.wallets["rub"], b.wallets["rub"]
        sends = [w.p2p(a, wa, wb, "5.00") for _ in range(10)] + [w.p2p(b, wb, wa, "5.00") for _ in range(10)]
        results = await asyncio.gather(*sends)
        assert all(r.status_code == 201 for r in results), [r.text for r in results if r.status_code != 201]
        # each side paid 10 x (5.00 + 1.00 fee) and received 10 x 5.00
        assert await w.balance(a, wa) == "90.00" and await w.balance(b, wb) == "90.00"
        await w.check_invariants()
