"""Properties of wallet operations (the service, no HTTP): random sequences of top-ups, P2P
transfers, withdrawals, exchanges, blocks, replays and approvals or rejections of operations a
review limit held, against an independent model (a rejected one leaves no trace). After every
step the balances equal the model's; at the end every entry balances, no wallet is below minus its
overdraft, each issuer's emission equals its wallets plus its fees and stays within its limit."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.file import apply_catalog
from paymux.catalog.models import Channel
from paymux.errors import Problem
from paymux.ledger.service import AccountCache, verify_ledger
from paymux.rates.service import add_rate
from paymux.wallets import service
from paymux.wallets.models import Issuer, Wallet, WalletCustomer, WalletLimit

CATALOG = {
    "channel_groups": [{"code": "g", "name": "G"}],
    "channels": [{"code": "c", "name": "C", "kind": "terminal", "group": "g"}],
}
EMISSION_LIMIT = 300_000  # of the EUR issuer, in cents
RATE = Fraction(984512, 10000)  # 1 EUR = 98.4512 RUB
KINDS = ["topup", "topup", "p2p", "p2p", "withdrawal", "withdrawal", "exchange", "block", "replay"] + [
    "decide"
] * 3
REVIEW_OVER = 100_000  # RUB withdrawals above 1000.00 wait for review


def exchanged(amount: int, into_eur: bool) -> int:
    """The model of the exchange: the rate less the target's spread, rounded down."""
    if into_eur:
        return int(amount * Fraction(985, 1000) / RATE)
    return int(amount * RATE * Fraction(98, 100))


def p2p_fee(amount: int) -> int:  # 1 %, half up, at least 1.00
    return max(100, (amount + 50) // 100)


@dataclass
class Step:
    kind: str
    who: int
    other: int
    amount: int
    flag: bool


steps = st.lists(
    st.builds(
        Step,
        kind=st.sampled_from(KINDS),
        who=st.integers(0, 2),
        other=st.integers(0, 2),
        amount=st.one_of(st.integers(1, 150_000), st.integers(REVIEW_OVER + 1, 400_000)),
        flag=st.booleans(),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=steps)
@example(  # every outcome of a review, whatever the random draws give
    seq=[
        Step("topup", 0, 0, 300_000, False),
        Step("withdrawal", 0, 0, 200_000, False),  # held
        Step("decide", 0, 0, 0, True),  # approved: done
        Step("withdrawal", 0, 0, 150_000, False),  # held
        Step("decide", 0, 0, 0, False),  # rejected: no trace
        Step("withdrawal", 0, 0, 120_000, False),  # held
        Step("p2p", 0, 1, 50_000, False),  # meanwhile the money goes elsewhere
        Step("decide", 0, 0, 0, True),  # approved, but can no longer be posted: failed
        Step("withdrawal", 0, 0, 101_000, False),  # held
        Step("block", 0, 0, 0, False),
        Step("decide", 0, 0, 0, True),  # approved for a blocked customer: failed
        Step("replay", 0, 0, 1, False),
    ]
)
async def test_random_operations_keep_the_ledger_and_the_model_equal(
    session: AsyncSession, seq: list[Step]
) -> None:
    accounts = AccountCache()
    try:
        await apply_catalog(session, CATALOG, actor="test")
        channel_id = await session.scalar(select(Channel.id).where(Channel.code == "c"))
        assert channel_id is not None
        await add_rate(session, "EUR", "RUB", "98.4512", effective_from=service.day_start(service.utcnow()))
        rub = await service.create_issuer(
            session,
            accounts,
            code="rub",
            name="RUB",
            kind="emoney",
            currency="RUB",
            precision=None,
            emission_limit=None,
            fee_rules=service.parse_fee_rules(
                {"p2p": {"percent": "1", "min": 100}, "withdrawal": {"fixed": 500}, "exchange": {"fixed": 50}}
            ),
            exchange_spread_percent="2",
        )
        eur = await service.create_issuer(
            session,
            accounts,
            code="eur",
            name="EUR",
            kind="emoney",
            currency="EUR",
            precision=None,
            emission_limit=EMISSION_LIMIT,
            fee_rules={},
            exchange_spread_percent="1.5",
        )
        customers: list[WalletCustomer] = []
        wallets: dict[tuple[int, str], Wallet] = {}
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
            customers.append(c)
            for issuer in (rub, eur):
                wallets[(i, issuer.code)], _ = await service.open_wallet(session, accounts, c, issuer)
        wallets[(1, "rub")].overdraft = 10_000  # customer 1 may go 100.00 below zero in RUB
        # RUB withdrawals over 1000.00 wait for review
        session.add(
            WalletLimit(
                issuer_id=rub.id,
                type="withdrawal",
                identification="identified",
                name="big",
                max_amount=REVIEW_OVER,
                action="review",
            )
        )
        await session.flush()
        model: dict[int, int] = {w.id: 0 for w in wallets.values()}
        eur_emitted = 0
        blocked: set[int] = set()
        sent: list[tuple[service.OperationRequest, int, str]] = []
        pending: list[tuple[int, int, int, dict[int, int]]] = []  # index in sent, op id, who, delta

        def fits(delta: dict[int, int], eur_change: int) -> bool:
            for wid, d in delta.items():
                wallet = next(x for x in wallets.values() if x.id == wid)
                if d < 0 and model[wid] + d < -wallet.overdraft:
                    return False
            return eur_emitted + eur_change <= EMISSION_LIMIT

        for n, s in enumerate(seq):
            c = customers[s.who]
            if s.kind == "block":
                c.status = "active" if s.who in blocked else "blocked"
                blocked ^= {s.who}
                await session.flush()
                continue
            if s.kind == "decide":
                if not pending:
                    continue
                i, op_id, who, delta = pending.pop(s.amount % len(pending))
                op = await service.review(session, accounts, op_id, approve=s.flag, actor="t", reason="r")
                if not s.flag:
                    expected = "rejected"  # and no trace in balances
                elif who in blocked or not fits(delta, 0):
                    expected = "failed"
                else:
                    expected = "done"
                    for wid, d in delta.items():
                        model[wid] += d
                assert op.state == expected, (s, op.state, op.problem)
                event(f"review: {expected}")
                sent[i] = (sent[i][0], op_id, op.state)
                continue
            if s.kind == "replay":
                if not sent:
                    continue
                req, op_id, state = sent[s.amount % len(sent)]
                op, created = await service.execute(session, accounts, req)
                assert (op.id, op.state, created) == (op_id, state, False)
                continue
            code = "eur" if s.flag and s.kind in ("topup", "withdrawal") else "rub"
            w = wallets[(s.who, code)]
            if s.kind == "topup":
                req = service.OperationRequest(channel_id, f"k{n}", "topup", c.id, s.amount, None, w.id)
            elif s.kind == "withdrawal":
                req = service.OperationRequest(channel_id, f"k{n}", "withdrawal", c.id, s.amount, w.id, None)
            elif s.kind == "p2p":
                if s.other == s.who:
                    continue
                to = wallets[(s.other, "rub")]
                req = service.OperationRequest(channel_id, f"k{n}", "p2p", c.id, s.amount, w.id, to.id)
            else:
                src, dst = (wallets[(s.who, "rub")], wallets[(s.who, "eur")])
                if s.flag:
                    src, dst = dst, src
                req = service.OperationRequest(
                    channel_id, f"k{n}", "exchange", c.id, s.amount, src.id, dst.id
                )
            try:
                op, created = await service.execute(session, accounts, req)
            except Problem as e:  # refused before anything was recorded
                assert req.type == "exchange" and e.slug == "amount-too-small", e
                continue
            assert created

            # what the model expects
            ok = s.who not in blocked
            if req.type == "p2p" and s.other in blocked:
                ok = False
            delta: dict[int, int] = {}
            eur_change = 0
            if req.type == "topup":
                delta = {w.id: s.amount}
                if code == "eur":
                    eur_change = s.amount
            elif req.type == "withdrawal":
                fee = 500 if code == "rub" else 0
                delta = {w.id: -(s.amount + fee)}
                if code == "eur":
                    eur_change = -s.amount
            elif req.type == "p2p":
                delta = {w.id: -(s.amount + p2p_fee(s.amount)), wallets[(s.other, "rub")].id: s.amount}
            else:
                assert req.from_wallet_id is not None and req.to_wallet_id is not None
                into_eur = not s.flag
                got = exchanged(s.amount, into_eur)
                fee = 50 if into_eur else 0  # the source issuer's exchange fee: RUB has one
                delta = {req.from_wallet_id: -(s.amount + fee), req.to_wallet_id: got}
                eur_change = got if into_eur else -s.amount
                assert op.to_amount == got
            held = ok and req.type == "withdrawal" and code == "rub" and s.amount > REVIEW_OVER
            if held:
                assert op.state == "pending_review", (s, op.state, op.problem)
                pending.append((len(sent), op.id, s.who, delta))
                event("held for review")
                sent.append((req, op.id, op.state))
                continue
            ok = ok and fits(delta, eur_change)
            assert op.state == ("done" if ok else "failed"), (s, op.state, op.problem)
            if ok:
                for wid, d in delta.items():
                    model[wid] += d
                eur_emitted += eur_change
            sent.append((req, op.id, op.state))

            for wid, expected in model.items():
                wallet = next(x for x in wallets.values() if x.id == wid)
                assert await service.account_balance(session, wallet.account_id) == expected

        check = await verify_ledger(session)
        assert check.balanced, check
        for wid, bal in model.items():
            wallet = next(x for x in wallets.values() if x.id == wid)
            assert bal >= -wallet.overdraft
        for issuer in (await session.scalars(select(Issuer))).all():
            t = await service.issuer_totals(session, accounts, issuer)
            assert t["emitted"] == t["wallets"] + t["fees"], t
        assert (
            (await service.issuer_totals(session, accounts, eur))["emitted"] == eur_emitted <= EMISSION_LIMIT
        )
    finally:
        await session.rollback()


def test_exchange_rounds_down_exactly() -> None:
    # 1.00 RUB into EUR at 98.4512 less 1.5 %: 100 * 0.985 / 98.4512 = 1.0004.. cents -> 1
    eur = Issuer(currency="EUR", precision=2, kind="emoney", exchange_spread_percent="1.5")
    assert service.exchanged(100, Fraction(985, 1000) / RATE) == 1
    assert service.exchanged(99, Fraction(985, 1000) / RATE) == 0
    # a rate that gives an exact whole number is not rounded away
    assert service.exchanged(1000, Fraction(3, 2)) == 1500
    assert service.exchanged(1001, Fraction(3, 2)) == 1501  # 1501.5 -> 1501: down, never up
    assert eur.precision == 2


def test_migration_0022_downgrades_and_upgrades(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import create_engine, inspect

    from paymux.db.migrate import alembic_config, upgrade

    path = tmp_path / "m.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    command.downgrade(alembic_config(url), "0018")
    engine = create_engine(f"sqlite:///{path}")
    tables = set(inspect(engine).get_table_names())
    assert not {t for t in tables if t.startswith("wallet")}
    engine.dispose()
    upgrade(url)
    engine = create_engine(f"sqlite:///{path}")
    assert {"wallets", "wallet_issuers", "wallet_operations", "wallet_limits"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()
