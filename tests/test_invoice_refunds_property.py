"""Refund decisions in any order, repeated, on random over-payments (card callbacks and bank statements,
with cancellations; both databases): a payment is decided once, the hold always equals what waits for a
decision, refunds leave the collection account, the ledger stays balanced."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from harness import test_settings as hub_settings
from invoices_support import invoice
from paymux.errors import Problem
from paymux.invoices import receipts, refunds, service
from paymux.invoices.ledger import COLLECTED, HOLD
from paymux.invoices.models import Biller, Invoice, InvoicePayment, InvoiceRefund
from paymux.ledger.models import Account
from paymux.ledger.service import verify_ledger
from paymux.runtime import Hub
from statements_support import OUR_IBAN, Entry, camt

# --- Hypothesis: decisions in any order, repeated, never decide twice; the hold follows, balanced -----
PAYS = st.lists(
    st.tuples(st.sampled_from(["card", "statement", "cancel"]), st.integers(0, 1), st.integers(1, 9000)),
    min_size=1,
    max_size=6,
)
DECISIONS = st.lists(st.tuples(st.integers(0, 7), st.sampled_from(["refund", "release"])), max_size=10)


def test_random_decisions_keep_the_ledger_balanced_and_the_hold_true(db_url: str) -> None:

    loop = asyncio.new_event_loop()
    hub = Hub(hub_settings(db_url))
    counter = iter(range(10**6))

    def no_plugin(biller: Biller, name: str) -> Any:  # payments made here have no attempt to refund
        raise AssertionError("no method is asked")

    async def balance(biller_id: int, kind: str) -> int:
        async with hub.read_sessions() as s:
            found = await s.scalar(
                select(Account.balance).where(Account.kind == kind, Account.owner_id == biller_id)
            )
        return int(found or 0)

    async def scenario(pays: list[tuple[str, int, int]], decisions: list[tuple[int, str]]) -> None:
        n = next(counter)
        async with hub.sessions() as s:
            b = Biller(
                code=f"r{n}",
                name=f"R{n}",
                brand={},
                legal={},
                support={},
                methods=["bank_transfer"],
                account={},
                reminder_days=[],
                fee_amount=25,
                fee_currency="EUR",
                webhook_enabled=False,
                method_config={},
                enabled=True,
            )
            s.add(b)
            await s.flush()
            await service.intake(s, b, [invoice(f"R{n}X{i}", amount="40.00") for i in range(2)])
            await s.commit()
            biller_id = b.id
        for k, (kind, i, amount) in enumerate(pays):
            async with hub.sessions() as s:
                inv = await s.scalar(
                    select(Invoice).where(Invoice.biller_id == biller_id, Invoice.number == f"R{n}X{i}")
                )
                assert inv is not None
                if kind == "card":
                    await service.record_payment(s, inv, amount, "card", f"c-{n}-{k}")
                elif kind == "statement":
                    line = Entry(
                        f"{amount // 100}.{amount % 100:02d}", f"bk-{n}-{k}", "Payer", rf=inv.reference
                    )
                    await receipts.import_statement(s, camt([line], msg=f"M{n}{k}"), hub_accounts=[OUR_IBAN])
                else:
                    b2 = await s.get(Biller, biller_id)
                    assert b2 is not None
                    try:
                        await service.cancel(s, b2, inv.number, "test")
                    except Problem:
                        pass
                await s.commit()
        async with hub.read_sessions() as s:
            payments = (
                await s.scalars(
                    select(InvoicePayment)
                    .join(Invoice, Invoice.id == InvoicePayment.invoice_id)
                    .where(Invoice.biller_id == biller_id)
                    .order_by(InvoicePayment.id)
                )
            ).all()
        collected = await balance(biller_id, COLLECTED)
        made: dict[int, str] = {}
        for index, decision in decisions:
            if not payments:
                break
            p = payments[index % len(payments)]
            async with hub.sessions() as s:
                try:
                    row, created = await refunds.decide(s, p.id, decision, no_plugin, actor="test")
                    await s.commit()
                except Problem as e:
                    await s.rollback()
                    if p.excess == 0:
                        assert e.slug == "nothing-held"
                    elif p.id in made:
                        assert e.slug == "refund-decided" and made[p.id] != decision
                    else:  # a card payment made here has no attempt: no refund through the method
                        assert e.slug == "refund-not-possible" and p.method == "card" and decision == "refund"
                    continue
            assert created == (p.id not in made)
            assert made.setdefault(p.id, decision) == decision == row.decision and row.amount == p.excess
            async with hub.read_sessions() as s:
                assert (await verify_ledger(s)).balanced
        undecided = sum(p.excess for p in payments if p.id not in made)
        assert await balance(biller_id, HOLD) == -undecided
        refunded = sum(p.excess for p in payments if made.get(p.id) == "refund")
        assert await balance(biller_id, COLLECTED) == collected - refunded
        async with hub.read_sessions() as s:
            rows = (await s.scalars(select(InvoiceRefund).where(InvoiceRefund.biller_id == biller_id))).all()
        assert sorted(r.payment_id for r in rows) == sorted(made)
        assert all(r.channel == ("payment_order" if r.decision == "refund" else "biller") for r in rows)

    @settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(pays=PAYS, decisions=DECISIONS)
    def run(pays: list[tuple[str, int, int]], decisions: list[tuple[int, str]]) -> None:
        loop.run_until_complete(scenario(pays, decisions))

    try:
        run()
    finally:
        loop.run_until_complete(hub.close())
        loop.close()
