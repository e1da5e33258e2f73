"""End to end: a wallet pays a hub service through the payment pipeline over the real provider
emulators (the hub's workers running): a success debits the wallet once and captures the hold; a
provider's refusal fails the payment and the wallet is refunded automatically; the ledger balances."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import func, select

from paymux.ledger.models import Account, JournalEntry
from paymux.payments.models import Payment
from paymux.wallets.models import WalletOperation
from test_wallets_api import problem
from wallets_support import AW, Customer, W, Wallets, key, wallets_env

REFUSED = "9000000007"  # every provider refuses payments to it


async def pay_service(
    w: Wallets, c: Customer, src: int, amount: str, account: str = "9001234567", **h: str
) -> Any:
    body = {"from_wallet": src, "service": "topup", "account": account, "amount": amount}
    return await w.http.post(f"{W}/service-payments", json=body, headers={**c.h, **(h or key())})


async def wait_settled(w: Wallets, c: Customer, op_id: int, within: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        r = await w.http.get(f"{W}/operations/{op_id}", headers=c.h)
        assert r.status_code == 200, r.text
        if r.json()["state"] != "processing":
            return dict(r.json())
        assert time.monotonic() < deadline, r.json()
        await asyncio.sleep(0.1)


async def held(w: Wallets) -> int:
    async with w.env.hub.read_sessions() as s:
        return int(
            await s.scalar(
                select(func.coalesce(func.sum(Account.balance), 0)).where(Account.kind == "wallet_hold")
            )
            or 0
        )


async def test_a_wallet_pays_a_service_once_and_is_refunded_when_the_provider_fails(db_url: str) -> None:
    refuse = {"accounts": {REFUSED: {"pay": "fatal:7:payment forbidden"}}}
    emulators = {"p1": refuse, "p2": refuse, "p3": refuse}
    async with wallets_env(db_url, run_workers=True, emulators=emulators) as w:
        c = await w.customer("ana")
        assert (await w.topup(c, "rub", "1000.00")).status_code == 201
        wr = c.wallets["rub"]
        k = key()
        r = await pay_service(w, c, wr, "250.00", **k)
        assert r.status_code == 201, r.text
        op = r.json()
        # the total (250.00 + the hub's 1 % fee) is held at once
        assert (op["type"], op["amount"], op["service_payment"]["total"]) == (
            "service_payment",
            "252.50",
            "252.50",
        )
        assert await w.balance(c, wr) == "747.50"
        final = await wait_settled(w, c, op["id"])
        assert final["state"] == "done", final
        pid = final["service_payment"]["payment_id"]
        assert final["service_payment"]["outcome"] == "paid"
        payment = await w.env.wait_final(pid)
        assert payment["status"] == "succeeded" and payment["external_id"] == f"wallet-{op['id']}"
        assert w.env.pay_calls("p1") == {str(pid): 1}  # delivered once
        again = await pay_service(w, c, wr, "250.00", **k)  # the same request: no second debit
        assert again.status_code == 200 and again.json()["id"] == op["id"]
        assert await w.balance(c, wr) == "747.50" and await held(w) == 0
        issuer = (await w.http.get(f"{AW}/issuers/rub", headers=w.env.admin)).json()
        assert issuer["totals"]["emitted"] == "747.50"  # the captured 252.50 was redeemed
        await w.check_invariants()

        # the provider refuses: every provider fails it, the wallet gets its money back
        r = await pay_service(w, c, wr, "100.00", REFUSED)
        assert r.status_code == 201, r.text
        op2 = r.json()
        assert await w.balance(c, wr) == "646.50"
        final = await wait_settled(w, c, op2["id"])
        assert final["state"] == "failed", final
        assert final["problem"]["type"].endswith("/payment-failed")
        assert "forbidden" in final["problem"]["detail"]
        assert final["service_payment"]["outcome"] == "refunded"
        assert await w.balance(c, wr) == "747.50" and await held(w) == 0
        refund_id = final["problem"]["refund_operation_id"]
        async with w.env.hub.read_sessions() as s:
            rf = await s.get(WalletOperation, refund_id)
            assert rf is not None and (rf.type, rf.state, rf.amount, rf.refund_of_id) == (
                "refund",
                "done",
                10100,
                op2["id"],
            )
            p2 = await s.get(Payment, final["service_payment"]["payment_id"])
            assert p2 is not None and p2.status == "failed"
            kinds = set((await s.scalars(select(JournalEntry.kind))).all())
        assert {"wallet_service_payment", "wallet_service_capture", "wallet_refund"} <= kinds
        await w.check_invariants()


async def test_a_service_is_paid_only_in_its_currency_and_within_the_balance(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        c = await w.customer("ion")
        assert (await w.topup(c, "rub", "10.00")).status_code == 201
        weur = await w.open(c, "eur")
        problem(await pay_service(w, c, weur, "5.00"), 422, "currency-mismatch")
        problem(await pay_service(w, c, c.wallets["rub"], "10.00"), 422, "insufficient-funds")  # + the fee
        body = {"from_wallet": c.wallets["rub"], "service": "topup", "account": "12", "amount": "5.00"}
        r = await w.http.post(f"{W}/service-payments", json=body, headers={**c.h, **key()})
        assert r.status_code == 422, r.text  # the service's account pattern
        assert await w.balance(c, c.wallets["rub"]) == "10.00"
        await w.check_invariants()
