"""Properties of merchant payments and refunds (the service, no HTTP): random sequences of payments
from two payers to a merchant (with a 2 % merchant fee) and of refunds of random payments, full or
partial, against a model. Refunds of a payment never add up to more than it; every balance equals
the model's; every entry balances; each issuer's emission equals its wallets plus its fees."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.file import apply_catalog
from paymux.catalog.models import Channel
from paymux.ledger.service import AccountCache, verify_ledger
from paymux.wallets import service
from paymux.wallets.models import WalletCustomer
from test_wallets_props import CATALOG


@dataclass(frozen=True)
class Step:
    refund: bool
    who: int  # the payer (a payment) or which payment (a refund)
    amount: int


steps = st.lists(
    st.builds(Step, refund=st.booleans(), who=st.integers(0, 50), amount=st.integers(1, 40_000)),
    min_size=1,
    max_size=30,
)


def merchant_fee(amount: int) -> int:  # 2 %, half up
    return (amount * 2 + 50) // 100


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=steps)
async def test_refunds_never_exceed_payments_and_balances_follow_the_model(
    session: AsyncSession, seq: list[Step]
) -> None:
    accounts = AccountCache()
    try:
        await apply_catalog(session, CATALOG, actor="test")
        channel_id = await session.scalar(select(Channel.id).where(Channel.code == "c"))
        assert channel_id is not None
        rub = await service.create_issuer(
            session,
            accounts,
            code="rub",
            name="RUB",
            kind="emoney",
            currency="RUB",
            precision=None,
            emission_limit=None,
            fee_rules=service.parse_fee_rules({"merchant_payment": {"percent": "2"}}),
            exchange_spread_percent="0",
        )
        people: list[WalletCustomer] = []
        for ref, kind in (("p0", "individual"), ("p1", "individual"), ("shop", "merchant")):
            c, _ = await service.signup(
                session,
                channel_id=channel_id,
                agent_id=None,
                external_ref=ref,
                kind=kind,
                identification="identified",
                name=None,
                email=None,
                phone=None,
            )
            people.append(c)
        wallets = [(await service.open_wallet(session, accounts, c, rub))[0] for c in people]
        shop = people[2]
        model = {w.id: 0 for w in wallets}
        for i, w in enumerate(wallets):  # the payers hold 1,000.00; the merchant 50.00 for its fees
            amount = 100_000 if i < 2 else 5_000
            req = service.OperationRequest(channel_id, f"t{i}", "topup", people[i].id, amount, None, w.id)
            op, _ = await service.execute(session, accounts, req)
            assert op.state == "done"
            model[w.id] += amount
        payments: list[tuple[int, int, int]] = []  # op id, payer's wallet, amount
        refunded: dict[int, int] = {}
        for n, s in enumerate(seq):
            if s.refund:
                if not payments:
                    continue
                op_id, payer_w, paid = payments[s.who % len(payments)]
                amount = paid if s.amount % 5 == 0 else s.amount  # now and then the whole payment
                req = service.OperationRequest(
                    channel_id, f"k{n}", "refund", shop.id, amount, wallets[2].id, payer_w, op_id
                )
                op, created = await service.execute(session, accounts, req)
                assert created
                left = paid - refunded.get(op_id, 0)
                if amount > left:
                    assert op.state == "failed" and op.problem
                    assert op.problem["type"].endswith("/refund-exceeds-payment")
                elif model[wallets[2].id] < amount:
                    assert op.state == "failed" and op.problem
                    assert op.problem["type"].endswith("/insufficient-funds")
                else:
                    assert op.state == "done", op.problem
                    refunded[op_id] = refunded.get(op_id, 0) + amount
                    model[wallets[2].id] -= amount
                    model[payer_w] += amount
            else:
                who = s.who % 2
                src = wallets[who]
                req = service.OperationRequest(
                    channel_id, f"k{n}", "merchant_payment", people[who].id, s.amount, src.id, wallets[2].id
                )
                fee = merchant_fee(s.amount)
                if fee >= s.amount:
                    continue  # refused before anything is recorded (amount-too-small)
                op, created = await service.execute(session, accounts, req)
                assert created and op.fee == fee and op.to_amount == s.amount - fee
                if model[src.id] < s.amount:
                    assert op.state == "failed"
                else:
                    assert op.state == "done", op.problem
                    model[src.id] -= s.amount
                    model[wallets[2].id] += s.amount - fee
                    payments.append((op.id, src.id, s.amount))
            for w in wallets:
                assert await service.account_balance(session, w.account_id) == model[w.id]
        for op_id, _, paid in payments:
            assert refunded.get(op_id, 0) <= paid
        check = await verify_ledger(session)
        assert check.balanced, check
        t = await service.issuer_totals(session, accounts, rub)
        assert t["emitted"] == t["wallets"] + t["fees"] + t["held"] and t["held"] == 0
    finally:
        await session.rollback()
