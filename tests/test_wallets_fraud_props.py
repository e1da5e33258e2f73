"""Properties of the anti-fraud rules (the service, no HTTP): random P2P transfers between three
customers and random decisions on what the rules held, against an independent model of the rules
(amount over a threshold, more than N transfers in the window, a payee never paid before; the first
rule by id names the hold). Held operations post nothing; approved ones post, rejected ones leave no
trace and stop counting; the balances equal the model's after every step and the ledger balances."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.file import apply_catalog
from paymux.catalog.models import Channel
from paymux.ledger.service import AccountCache, verify_ledger
from paymux.wallets import fraud, service
from paymux.wallets.models import Wallet, WalletCustomer

CATALOG = {
    "channel_groups": [{"code": "g", "name": "G"}],
    "channels": [{"code": "c", "name": "C", "kind": "terminal", "group": "g"}],
}
OVER = 50_000  # transfers over 500.00 are held
BURST = 4  # more than 4 transfers of one customer within the window are held
START = 10_000_000  # each customer's balance at the start: never short of funds

moves = st.lists(
    st.tuples(
        st.sampled_from(["send", "send", "send", "decide"]),
        st.integers(0, 2),
        st.integers(0, 2),
        st.integers(1, 80_000),
        st.booleans(),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=moves)
async def test_rules_hold_exactly_what_the_model_says(
    session: AsyncSession, seq: list[tuple[str, int, int, int, bool]]
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
            fee_rules={},
            exchange_spread_percent="0",
        )
        rules = [
            await fraud.add_rule(
                session, fraud.RuleFields("big", "amount", "p2p", rub, None, OVER, None), "t"
            ),
            await fraud.add_rule(
                session, fraud.RuleFields("burst", "velocity", "p2p", None, BURST, None, 60), "t"
            ),
            await fraud.add_rule(
                session, fraud.RuleFields("new", "new_payee", "p2p", None, None, None, None), "t"
            ),
        ]
        people: list[WalletCustomer] = []
        wallets: list[Wallet] = []
        for i in range(3):
            c, _ = await service.signup(
                session,
                channel_id=channel_id,
                agent_id=None,
                external_ref=f"c{i}",
                kind="individual",
                identification="identified",
                name=None,
                email=None,
                phone=None,
            )
            w, _ = await service.open_wallet(session, accounts, c, rub)
            people.append(c)
            wallets.append(w)
            req = service.OperationRequest(channel_id, f"top{i}", "topup", c.id, START, None, w.id)
            assert (await service.execute(session, accounts, req))[0].state == "done"
        model = [START] * 3
        counted = [0, 0, 0]  # each customer's transfers done or waiting
        paid: set[tuple[int, int]] = set()  # (payer, payee) with a transfer done
        pending: list[tuple[int, int, int, int]] = []  # op id, payer, payee, amount

        for n, (kind, who, other, amount, flag) in enumerate(seq):
            if kind == "decide":
                if not pending:
                    continue
                op_id, a, b, amt = pending.pop(amount % len(pending))
                op = await service.review(session, accounts, op_id, approve=flag, actor="t", reason="r")
                if flag:
                    assert op.state == "done" and op.entry_id is not None
                    model[a] -= amt
                    model[b] += amt
                    paid.add((a, b))
                else:
                    assert op.state == "rejected" and op.entry_id is None
                    counted[a] -= 1
            else:
                if who == other:
                    continue
                req = service.OperationRequest(
                    channel_id, f"k{n}", "p2p", people[who].id, amount, wallets[who].id, wallets[other].id
                )
                op, created = await service.execute(session, accounts, req)
                assert created
                matches = [
                    amount > OVER,
                    counted[who] + 1 > BURST,
                    (who, other) not in paid,
                ]
                counted[who] += 1
                if any(matches):
                    first = rules[matches.index(True)]
                    assert op.state == "pending_review" and op.entry_id is None, (matches, op.state)
                    assert op.fraud_rule_id == first.id and first.name in (op.hold_reason or "")
                    pending.append((op.id, who, other, amount))
                else:
                    assert op.state == "done", (matches, op.state, op.problem)
                    model[who] -= amount
                    model[other] += amount
                    paid.add((who, other))
            for w, expected in zip(wallets, model, strict=True):
                assert await service.account_balance(session, w.account_id) == expected
        assert (await verify_ledger(session)).balanced
    finally:
        await session.rollback()


def test_migration_0031_downgrades_and_upgrades(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import create_engine, inspect

    from paymux.db.migrate import alembic_config, upgrade

    path = tmp_path / "m.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    command.downgrade(alembic_config(url), "0030")
    engine = create_engine(f"sqlite:///{path}")
    assert "wallet_fraud_rules" not in inspect(engine).get_table_names()
    assert "blocked" not in {c["name"] for c in inspect(engine).get_columns("wallet_operations")}
    engine.dispose()
    upgrade(url)
    engine = create_engine(f"sqlite:///{path}")
    assert "wallet_fraud_rules" in inspect(engine).get_table_names()
    assert {"fraud_rule_id", "hold_reason", "blocked"} <= {
        c["name"] for c in inspect(engine).get_columns("wallet_operations")
    }
    engine.dispose()
