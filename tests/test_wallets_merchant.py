"""Merchant payments and their refunds over the customer and admin APIs (SQLite and PostgreSQL):
postings with the merchant's fee, idempotency, limits, refunds never above the payment, the admin
refund and read, and concurrent refunds of one payment."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from test_wallets_api import actions, entry_lines, problem
from wallets_support import AW, ISSUERS, Customer, W, Wallets, key, wallets_env

MERCHANT_ISSUERS = [
    {**ISSUERS[0], "fee_rules": {**ISSUERS[0]["fee_rules"], "merchant_payment": {"percent": "2"}}},
    *ISSUERS[1:],
]


async def pay(w: Wallets, c: Customer, src: int, dst: int, amount: str, **h: str) -> httpx.Response:
    body = {"from_wallet": src, "to_wallet": dst, "amount": amount}
    return await w.http.post(f"{W}/payments", json=body, headers={**c.h, **(h or key())})


async def refund(w: Wallets, m: Customer, op: int, amount: str | None = None, **h: str) -> httpx.Response:
    body: dict[str, Any] = {"operation": op} | ({"amount": amount} if amount is not None else {})
    return await w.http.post(f"{W}/refunds", json=body, headers={**m.h, **(h or key())})


async def setup(w: Wallets) -> tuple[Customer, Customer, int, int, int]:
    payer = await w.customer("payer")
    shop = await w.customer("shop", kind="merchant")
    assert (await w.topup(payer, "rub", "1000.00")).status_code == 201
    ws = await w.open(shop, "rub")
    rub = (await w.http.get(f"{AW}/issuers/rub", headers=w.env.admin)).json()["id"]
    return payer, shop, payer.wallets["rub"], ws, rub


async def test_merchant_payment_posts_the_merchants_fee_and_is_idempotent(db_url: str) -> None:
    async with wallets_env(db_url, MERCHANT_ISSUERS) as w:
        payer, shop, wp, ws, rub = await setup(w)
        k = key()
        r = await pay(w, payer, wp, ws, "100.00", **k)
        assert r.status_code == 201, r.text
        op = r.json()
        assert (op["type"], op["state"], op["amount"], op["fee"], op["to_amount"]) == (
            "merchant_payment",
            "done",
            "100.00",
            "2.00",
            "98.00",
        )
        assert await entry_lines(w.env, op["id"]) == {
            ("wallet", wp): -10000,
            ("wallet", ws): 9800,
            ("wallet_fees", rub): 200,
        }
        again = await pay(w, payer, wp, ws, "100.00", **k)
        assert again.status_code == 200 and again.json()["id"] == op["id"]
        problem(await pay(w, payer, wp, ws, "100.01", **k), 409, "idempotency-key-reused")
        assert await w.balance(payer, wp) == "900.00" and await w.balance(shop, ws) == "98.00"

        # only a merchant is paid this way; the payer cannot cover more than it holds
        other = await w.customer("friend")
        wf = await w.open(other, "rub")
        problem(await pay(w, payer, wp, wf, "1.00"), 422, "not-a-merchant")
        weur = await w.open(shop, "eur")
        problem(await pay(w, payer, wp, weur, "1.00"), 422, "issuer-mismatch")
        failed = problem(await pay(w, payer, wp, ws, "900.01"), 422, "insufficient-funds")
        assert failed["operation_id"]
        # a limit on merchant payments applies
        lim = {
            "issuer": "rub",
            "type": "merchant_payment",
            "identification": "identified",
            "name": "shop-max",
            "max_amount": "50.00",
        }
        r = await w.http.post(f"{AW}/limits", json=lim, headers=w.env.admin)
        assert r.status_code == 201, r.text
        body = problem(await pay(w, payer, wp, ws, "50.01"), 422, "limit-exceeded")
        assert body["limit"]["name"] == "shop-max"
        assert (await pay(w, payer, wp, ws, "50.00")).status_code == 201
        # the admin reads merchant payments
        r = await w.http.get(f"{AW}/operations", params={"type": "merchant_payment"}, headers=w.env.admin)
        assert {o["state"] for o in r.json()["items"]} == {"done", "failed"}
        assert len(r.json()["items"]) == 4
        await w.check_invariants()


async def test_refunds_never_add_up_to_more_than_the_payment(db_url: str) -> None:
    async with wallets_env(db_url, MERCHANT_ISSUERS) as w:
        payer, shop, wp, ws, _ = await setup(w)
        assert (await w.topup(shop, "rub", "10.00")).status_code == 201  # the merchant can cover its fee
        op = (await pay(w, payer, wp, ws, "100.00")).json()["id"]
        k = key()
        r = await refund(w, shop, op, "30.00", **k)
        assert r.status_code == 201, r.text
        rf = r.json()
        assert (rf["type"], rf["state"], rf["amount"], rf["refund_of"]) == ("refund", "done", "30.00", op)
        assert await entry_lines(w.env, rf["id"]) == {("wallet", ws): -3000, ("wallet", wp): 3000}
        assert (await refund(w, shop, op, "30.00", **k)).json()["id"] == rf["id"]  # idempotent
        # the payer cannot refund, nor another merchant; not more than what is left
        problem(await refund(w, payer, op, "1.00"), 404, "not-found")
        body = problem(await refund(w, shop, op, "70.01"), 422, "refund-exceeds-payment")
        assert body["refundable"] == "70.00"
        problem(await refund(w, shop, op), 422, "refund-exceeds-payment")  # the whole: 100 > 70 left
        # the administrator refunds the rest
        r = await w.http.post(
            f"{AW}/operations/{op}/refund",
            json={"amount": "70.00", "reason": "customer complaint"},
            headers={**w.env.admin, **key()},
        )
        assert r.status_code == 201, r.text
        assert "wallet_operation.refund" in await actions(w.env)
        problem(await refund(w, shop, op, "0.01"), 422, "refund-exceeds-payment")
        assert await w.balance(payer, wp) == "1000.00"
        assert await w.balance(shop, ws) == "8.00"  # 10 + 98 - 100: the merchant's fee is not returned
        r = await w.http.get(f"{AW}/operations/{op}", headers=w.env.admin)
        assert r.status_code == 200, r.text
        view = r.json()
        assert [x["amount"] for x in view["refunds"] if x["state"] == "done"] == ["30.00", "70.00"]
        assert view["refundable"] == "0.00"
        url = f"{AW}/operations/{rf['id']}/refund"  # a refund is not a merchant payment
        problem(await w.http.post(url, json={}, headers={**w.env.admin, **key()}), 404, "not-found")
        await w.check_invariants()


async def test_concurrent_refunds_of_one_payment_stop_at_its_amount(db_url: str) -> None:
    async with wallets_env(db_url, MERCHANT_ISSUERS) as w:
        payer, shop, wp, ws, _ = await setup(w)
        assert (await w.topup(shop, "rub", "500.00")).status_code == 201
        op = (await pay(w, payer, wp, ws, "100.00")).json()["id"]
        results = await asyncio.gather(*(refund(w, shop, op, "15.00") for _ in range(10)))
        done = [r for r in results if r.status_code == 201]
        assert len(done) == 6  # 6 x 15 = 90; a seventh would make 105
        assert all(r.json()["type"].endswith("refund-exceeds-payment") for r in results if r not in done)
        assert await w.balance(payer, wp) == "990.00"
        await w.check_invariants()
