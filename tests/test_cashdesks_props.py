"""Properties of cash desks (the service, no HTTP): random sequences of days opened and closed with
counts, cash top-ups and withdrawals, counter-operations, replays and system operations, against a
model. After every step the desk's cash equals the model's and equals what its operations, counts
and system operations add up to; no operation is made outside an open day; a closed day never
changes; every journal entry balances."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.users import ensure_operator_org
from paymux.cashdesks import service as cash
from paymux.cashdesks.models import CashDay, CashOperation, CashSystemOperation
from paymux.catalog.file import apply_catalog
from paymux.catalog.models import Channel
from paymux.errors import Problem
from paymux.ledger.service import AccountCache, verify_ledger
from paymux.wallets import service as wallets

CATALOG = {
    "channel_groups": [{"code": "g", "name": "G"}],
    "channels": [{"code": "c", "name": "C", "kind": "terminal", "group": "g"}],
}
CASHIER = cash.Actor("user:cashier", None, "admin_token:cashier")
ACCOUNTANT = cash.Actor("user:acc", 2, "user:2")
CFO = cash.Actor("user:cfo", 3, "user:3")
WITHDRAWAL_FEE = 500
KINDS = [
    "open",
    "close",
    "topup",
    "topup",
    "topup",
    "withdrawal",
    "withdrawal",
    "reverse",
    "replay",
    "system",
]
SYSTEM_KINDS = ["cash_input", "collection", "investment"]


@dataclass
class Step:
    kind: str
    amount: int
    pick: int
    flag: bool


steps = st.lists(
    st.builds(
        Step,
        kind=st.sampled_from(KINDS),
        amount=st.integers(1, 200_000),
        pick=st.integers(0, 1000),
        flag=st.booleans(),
    ),
    min_size=1,
    max_size=25,
)


async def desk_cash_from_records(session: AsyncSession, desk_id: int) -> int:
    """What the desk's records add up to: done operations, count differences, approved system ops."""
    ops = await session.scalar(
        select(func.coalesce(func.sum(CashOperation.cash_delta), 0)).where(
            CashOperation.desk_id == desk_id, CashOperation.state == "done"
        )
    )
    total = int(ops or 0)
    for day in (await session.scalars(select(CashDay).where(CashDay.desk_id == desk_id))).all():
        total += day.opening_count["RUB"] - day.opening_book["RUB"]
        if day.difference:
            total += day.difference["RUB"]
    for s in (
        await session.scalars(
            select(CashSystemOperation).where(
                CashSystemOperation.desk_id == desk_id, CashSystemOperation.state == "approved"
            )
        )
    ).all():
        total += {"cash_input": s.amount, "collection": -s.amount, "investment": s.amount}[s.type]
    return total


def snapshot(day: CashDay, ops: int) -> tuple[Any, ...]:
    return (day.state, day.closed_at, dict(day.closing_count or {}), dict(day.difference or {}), ops)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=steps)
@example(  # every kind of step and outcome, whatever the random draws give
    seq=[
        Step("topup", 100_000, 0, True),  # an open day first (flag): done
        Step("withdrawal", 30_000, 0, False),  # done, fee 5.00
        Step("withdrawal", 500_000, 0, False),  # failed: the wallet cannot cover it
        Step("reverse", 0, 1, False),  # the withdrawal reversed
        Step("reverse", 0, 1, False),  # not twice
        Step("system", 50_000, 0, True),  # cash input approved
        Step("system", 20_000, 1, True),  # collection approved
        Step("system", 90_000, 2, True),  # investment over what is in transit: refused
        Step("system", 10_000, 2, True),  # investment approved
        Step("replay", 0, 0, False),
        Step("close", 7, 0, True),  # closed with a difference
        Step("topup", 1_000, 0, False),  # outside an open day: refused
        Step("reverse", 0, 0, False),  # outside an open day: refused
        Step("replay", 0, 1, False),  # a replay is answered as it was
        Step("close", 0, 0, False),  # nothing open to close
        Step("open", 100, 0, True),  # opened with a difference
        Step("reverse", 0, 0, False),  # the first top-up reversed in a later day
        Step("open", 0, 0, False),  # a second open day: refused
    ]
)
async def test_cash_of_a_desk_equals_its_operations(session: AsyncSession, seq: list[Step]) -> None:
    accounts = AccountCache()
    try:
        await apply_catalog(session, CATALOG, actor="test")
        channel_id = await session.scalar(select(Channel.id).where(Channel.code == "c"))
        assert channel_id is not None
        org = await ensure_operator_org(session)
        rub = await wallets.create_issuer(
            session,
            accounts,
            code="rub",
            name="RUB",
            kind="emoney",
            currency="RUB",
            precision=None,
            emission_limit=None,
            fee_rules=wallets.parse_fee_rules({"withdrawal": {"fixed": WITHDRAWAL_FEE}}),
            exchange_spread_percent="0",
        )
        customer, _ = await wallets.signup(
            session,
            channel_id=channel_id,
            agent_id=None,
            external_ref="c1",
            kind="individual",
            identification="identified",
            name=None,
            email=None,
            phone=None,
        )
        wallet, _ = await wallets.open_wallet(session, accounts, customer, rub)
        desk = await cash.create_desk(
            session, code="d1", name="Desk", organization=org.code, currencies=["RUB"]
        )
        desk_model = wallet_model = transit_model = 0
        done: list[CashOperation] = []
        reversed_ids: set[int] = set()
        replays: list[tuple[cash.CashRequest, int, str]] = []
        closed: dict[int, tuple[Any, ...]] = {}

        async def ops_of(day_id: int) -> int:
            return int(await session.scalar(select(func.count()).where(CashOperation.day_id == day_id)) or 0)

        # most sequences start in an open day (the others try everything outside one first)
        start = [Step("open", 0, 0, False)] if seq[0].flag else []
        for n, s in enumerate(start + seq):
            day = await cash.open_day_of(session, desk, lock=False)
            if s.kind == "open":
                count = max(0, desk_model + (s.amount % 300 - 150 if s.flag else 0))
                if day is not None:
                    try:
                        await cash.open_day(session, accounts, desk.id, {"RUB": count}, CASHIER)
                        raise AssertionError("a second day opened")
                    except Problem as e:
                        assert e.slug == "day-open"
                    continue
                await cash.open_day(session, accounts, desk.id, {"RUB": count}, CASHIER)
                desk_model = count
            elif s.kind == "close":
                count = max(0, desk_model + (s.amount % 300 - 150 if s.flag else 0))
                if day is None:
                    try:
                        await cash.close_day(session, accounts, desk.id, {"RUB": count}, CASHIER)
                        raise AssertionError("closed a day that was not open")
                    except Problem as e:
                        assert e.slug == "no-open-day"
                    continue
                closed_day = await cash.close_day(session, accounts, desk.id, {"RUB": count}, CASHIER)
                assert closed_day.difference == {"RUB": count - desk_model}
                event("closed with a difference" if count != desk_model else "closed even")
                desk_model = count
                closed[closed_day.id] = snapshot(closed_day, await ops_of(closed_day.id))
            elif s.kind in ("topup", "withdrawal"):
                req = cash.CashRequest(desk.id, f"k{n}", s.kind, wallet.id, s.amount, "passport AB123")
                if day is None:
                    try:
                        await cash.cash_operation(session, accounts, req, CASHIER)
                        raise AssertionError("an operation outside an open day")
                    except Problem as e:
                        assert e.slug == "no-open-day"
                    continue
                op, created = await cash.cash_operation(session, accounts, req, CASHIER)
                assert created
                if s.kind == "topup":
                    ok, dw, dc = True, s.amount, s.amount
                else:
                    ok = wallet_model >= s.amount + WITHDRAWAL_FEE and desk_model >= s.amount
                    dw, dc = -(s.amount + WITHDRAWAL_FEE), -s.amount
                assert op.state == ("done" if ok else "failed"), (s, op.problem)
                event(f"{s.kind}: {op.state}")
                if ok:
                    wallet_model += dw
                    desk_model += dc
                    done.append(op)
                replays.append((req, op.id, op.state))
            elif s.kind == "reverse":
                if not done:
                    continue
                orig = done[s.pick % len(done)]
                try:
                    await cash.reverse(
                        session,
                        accounts,
                        desk_id=desk.id,
                        operation_id=orig.id,
                        idempotency_key=f"r{n}",
                        reason="customer asked",
                        actor=CASHIER,
                    )
                except Problem as e:
                    if day is None:
                        assert e.slug == "no-open-day"
                    elif orig.id in reversed_ids:
                        assert e.slug == "already-reversed"
                    elif orig.type == "topup":
                        short = {"insufficient-funds": wallet_model, "insufficient-cash": desk_model}
                        assert short.get(e.slug, orig.amount) < orig.amount, (e.slug, short)
                    else:
                        raise
                    continue
                assert day is not None and orig.id not in reversed_ids
                event("reversed")
                reversed_ids.add(orig.id)
                if orig.type == "topup":
                    wallet_model -= orig.amount
                    desk_model -= orig.amount
                else:
                    wallet_model += orig.amount + WITHDRAWAL_FEE
                    desk_model += orig.amount
            elif s.kind == "replay":
                if not replays:
                    continue
                req, op_id, state = replays[s.pick % len(replays)]
                op, created = await cash.cash_operation(session, accounts, req, CASHIER)
                assert (op.id, op.state, created) == (op_id, state, False)
            else:
                kind = SYSTEM_KINDS[s.pick % 3]
                sop = await cash.propose_system(
                    session,
                    type=kind,
                    desk_id=desk.id,
                    currency="RUB",
                    amount=s.amount,
                    note="",
                    actor=ACCOUNTANT,
                )
                try:
                    await cash.decide_system(
                        session, accounts, sop.id, approve=True, note="", actor=ACCOUNTANT
                    )
                    raise AssertionError("the proposer approved their own operation")
                except Problem as e:
                    assert e.slug == "own-proposal"
                fits = {
                    "cash_input": True,
                    "collection": desk_model >= s.amount,
                    "investment": transit_model >= s.amount,
                }[kind]
                try:
                    await cash.decide_system(session, accounts, sop.id, approve=s.flag, note="", actor=CFO)
                except Problem as e:
                    assert s.flag and not fits and e.slug == "insufficient-cash"
                    continue
                if s.flag:
                    assert fits
                    desk_model += -s.amount if kind == "collection" else s.amount
                    transit_model += {"cash_input": 0, "collection": s.amount, "investment": -s.amount}[kind]
            balances = await cash.desk_balances(session, desk)
            assert balances == {"RUB": desk_model}
            assert await desk_cash_from_records(session, desk.id) == desk_model
            assert await wallets.account_balance(session, wallet.account_id) == wallet_model
            for day_id, snap in closed.items():
                row = await session.get(CashDay, day_id, populate_existing=True)
                assert row is not None and snapshot(row, await ops_of(day_id)) == snap
        check = await verify_ledger(session)
        assert check.balanced, check
    finally:
        await session.rollback()
