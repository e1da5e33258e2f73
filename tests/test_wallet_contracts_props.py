"""Properties of contracts and cashback (the service, no HTTP): random contracts (a group's and a
customer's own, random fee rules and limits per identification level), a random cashback profile of
a merchant, and random top-ups, P2P transfers (to customers and to the merchant) and withdrawals.

Against an independent model: the fee of every done operation is the one its contract's rule
gives (own, else the group's, else the issuer's); an operation is refused by a limit exactly when
the model says one is broken, so done operations never exceed a limit; the cashback of each
payment is the profile's amount rounded down within its caps, and never over them; every entry
balances and each issuer's emission equals its wallets plus its fees."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.file import apply_catalog
from paymux.catalog.models import Channel
from paymux.ledger.service import AccountCache, verify_ledger
from paymux.wallets import contracts, service
from paymux.wallets.contract_models import WalletCashback
from paymux.wallets.contract_proposals import add_profile_version
from paymux.wallets.models import Issuer, Wallet, WalletCustomer

CATALOG = {
    "channel_groups": [{"code": "g", "name": "G"}],
    "channels": [{"code": "c", "name": "C", "kind": "terminal", "group": "g"}],
}
ISSUER_P2P = {"percent": "1", "min": 100}  # the RUB issuer's default P2P fee (rounded half up)
LEVELS = ("unidentified", "identified")
PAST = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Rule:
    fixed: int
    percent: str
    min: int | None
    max: int | None

    def storage(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fixed": self.fixed, "percent": self.percent, "rounding": "down"}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        return out

    def fee(self, amount: int) -> int:  # the model: fixed + floor(amount * percent / 100), clamped
        exact = Fraction(amount) * Fraction(Decimal(self.percent)) / 100
        value = self.fixed + exact.numerator // exact.denominator
        if self.min is not None:
            value = max(value, self.min)
        if self.max is not None:
            value = min(value, self.max)
        return value


@dataclass(frozen=True)
class Lim:
    identification: str | None
    min_amount: int | None
    max_amount: int | None
    daily_count: int | None
    daily_amount: int | None
    monthly_count: int | None
    monthly_amount: int | None

    def storage(self, name: str) -> dict[str, Any]:
        return {"name": name, "action": "refuse", **self.__dict__}

    def broken(self, amount: int, count: int, total: int) -> bool:
        """Over it, with ``count`` operations totalling ``total`` done before (same day and month)."""
        return (
            (self.min_amount is not None and amount < self.min_amount)
            or (self.max_amount is not None and amount > self.max_amount)
            or any(c is not None and count + 1 > c for c in (self.daily_count, self.monthly_count))
            or any(a is not None and total + amount > a for a in (self.daily_amount, self.monthly_amount))
        )


@dataclass(frozen=True)
class Terms:
    fee: Rule | None
    limits: tuple[Lim, ...]


@dataclass(frozen=True)
class Profile:
    percent: str | None
    fixed: int | None
    per_op_cap: int | None
    monthly_cap: int | None
    funding: str


@dataclass(frozen=True)
class Step:
    kind: str
    who: int
    other: int
    amount: int


opt = st.one_of(st.none(), st.integers(0, 60_000))
rules = st.builds(
    Rule,
    fixed=st.integers(0, 300),
    percent=st.sampled_from(["0", "0.5", "1.25", "2", "0.333"]),
    min=st.one_of(st.none(), st.integers(0, 200)),
    max=st.one_of(st.none(), st.integers(200, 2_000)),
)
lims = st.builds(
    Lim,
    identification=st.sampled_from([None, None, *LEVELS]),
    min_amount=st.one_of(st.none(), st.integers(1, 5_000)),
    max_amount=st.one_of(st.none(), st.integers(5_000, 60_000)),
    daily_count=st.one_of(st.none(), st.integers(0, 4)),
    daily_amount=opt,
    monthly_count=st.one_of(st.none(), st.integers(0, 6)),
    monthly_amount=opt,
)
terms = st.builds(Terms, fee=st.one_of(st.none(), rules), limits=st.lists(lims, max_size=2).map(tuple))
contract = st.dictionaries(st.sampled_from(["p2p", "withdrawal"]), terms, max_size=2)
group_contract = st.fixed_dictionaries(
    {
        "p2p": st.builds(
            Terms, fee=st.one_of(st.none(), rules), limits=st.lists(lims, min_size=1, max_size=2).map(tuple)
        )
    },
    optional={"withdrawal": terms},
)
profiles = st.one_of(
    st.none(),
    st.builds(
        Profile,
        percent=st.sampled_from(["1", "2.5", "0.75"]),
        fixed=st.none(),
        per_op_cap=st.one_of(st.none(), st.integers(1, 300)),
        monthly_cap=st.one_of(st.none(), st.integers(1, 600)),
        funding=st.sampled_from(["merchant", "issuer"]),
    ),
    st.builds(
        Profile,
        percent=st.none(),
        fixed=st.integers(1, 150),
        per_op_cap=st.one_of(st.none(), st.integers(1, 300)),
        monthly_cap=st.one_of(st.none(), st.integers(1, 600)),
        funding=st.sampled_from(["merchant", "issuer"]),
    ),
)
steps = st.lists(
    st.builds(
        Step,
        kind=st.sampled_from(["topup", "p2p", "shop", "shop", "withdrawal"]),
        who=st.sampled_from([0, 1, 1, 2]),
        other=st.integers(0, 2),
        amount=st.integers(1, 40_000),
    ),
    min_size=1,
    max_size=20,
)


BOUNDARY = Lim("identified", None, None, 1, None, 2, 30_000)  # one a day, two a month, 300.00 a month


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    group_terms=group_contract,
    own_terms=contract,
    in_group=st.lists(st.sampled_from([True, True, False]), min_size=3, max_size=3),
    levels=st.lists(st.sampled_from(LEVELS), min_size=3, max_size=3),
    profile=profiles,
    seq=steps,
)
@example(  # each bound exactly at its edge, and the caps of a cashback
    group_terms={"p2p": Terms(Rule(10, "1.25", None, 300), (BOUNDARY,))},
    own_terms={},
    in_group=[False, True, True],
    levels=["identified", "identified", "unidentified"],
    profile=Profile("2.5", None, 150, 200, "issuer"),
    seq=[
        Step("topup", 1, 0, 40_000),
        Step("shop", 1, 0, 10_000),  # done: 250 points capped to 150
        Step("shop", 1, 0, 100),  # the day's count is used up
        Step("topup", 2, 0, 40_000),
        Step("shop", 2, 0, 8_000),  # unidentified: the limit is not theirs; 200 points capped to 150
        Step("shop", 2, 0, 8_000),  # 150 again, but the month leaves 50
        Step("shop", 2, 0, 8_000),  # the month's cap is used up: nothing
    ],
)
async def test_contracts_fees_limits_and_cashback_hold(
    session: AsyncSession,
    group_terms: dict[str, Terms],
    own_terms: dict[str, Terms],
    in_group: list[bool],
    levels: list[str],
    profile: Profile | None,
    seq: list[Step],
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
            fee_rules=service.parse_fee_rules({"p2p": ISSUER_P2P}),
            exchange_spread_percent="0",
        )
        bonus = await service.create_issuer(
            session,
            accounts,
            code="bonus",
            name="Bonus",
            kind="points",
            currency="PTS",
            precision=0,
            emission_limit=None,
            fee_rules={},
            exchange_spread_percent="0",
        )
        people: list[WalletCustomer] = []
        for i in range(4):
            c, _ = await service.signup(
                session,
                channel_id=channel_id,
                agent_id=None,
                external_ref=f"c{i}",
                kind="merchant" if i == 3 else "individual",
                identification=levels[i] if i < 3 else "identified",
                name=None,
                email=None,
                phone=None,
            )
            people.append(c)
        shop = people[3]
        wallets = {c.id: (await service.open_wallet(session, accounts, c, rub))[0] for c in people}
        shop_points = (await service.open_wallet(session, accounts, shop, bonus))[0]

        def stored(t: dict[str, Terms]) -> dict[str, Any]:
            return {
                k: {
                    "fee": None if v.fee is None else v.fee.storage(),
                    "limits": [lim.storage(f"l{n}") for n, lim in enumerate(v.limits)],
                }
                for k, v in t.items()
            }

        await contracts.add_version(
            session,
            issuer=rub,
            customer_id=None,
            group="g",
            terms=stored(group_terms),
            effective_from=PAST,
            created_by="t",
        )
        await contracts.add_version(
            session,
            issuer=rub,
            customer_id=people[0].id,
            group=None,
            terms=stored(own_terms),
            effective_from=PAST,
            created_by="t",
        )
        for i in range(3):
            if in_group[i]:
                await contracts.set_group(session, people[i].id, "g", "t")
        if profile is not None:
            cols = {
                "mode": "percent" if profile.percent else "fixed",
                "percent": profile.percent,
                "fixed": profile.fixed,
                "per_operation_cap": profile.per_op_cap,
                "monthly_cap": profile.monthly_cap,
                "funding": profile.funding,
                "operation_types": ["merchant_payment", "p2p"],
                "enabled": True,
            }
            await add_profile_version(session, shop.id, bonus, cols, PAST, "t")
            if profile.funding == "merchant":  # the shop holds 500 points to pay cashback from
                await service.execute(
                    session,
                    accounts,
                    service.OperationRequest(channel_id, "seed", "topup", shop.id, 500, None, shop_points.id),
                )

        def applicable(i: int, op_type: str) -> Terms | None:
            if i == 0 and op_type in own_terms:
                return own_terms[op_type]
            if in_group[i] and op_type in group_terms:
                return group_terms[op_type]
            return None

        balances = {c.id: 0 for c in people}
        done: dict[tuple[int, str], list[int]] = {}  # amounts of done operations per customer and type
        cashback_total = 0
        points: dict[int, int] = {}
        for n, s in enumerate(seq):
            payer = people[s.who]
            w = wallets[payer.id]
            if s.kind == "topup":
                req = service.OperationRequest(channel_id, f"k{n}", "topup", payer.id, s.amount, None, w.id)
            elif s.kind == "withdrawal":
                req = service.OperationRequest(
                    channel_id, f"k{n}", "withdrawal", payer.id, s.amount, w.id, None
                )
            else:
                to = shop if s.kind == "shop" else people[s.other]
                if to.id == payer.id:
                    continue
                req = service.OperationRequest(
                    channel_id, f"k{n}", "p2p", payer.id, s.amount, w.id, wallets[to.id].id
                )
            op, created = await service.execute(session, accounts, req)
            assert created

            # the model: the fee and the limits of the applicable terms
            t = applicable(s.who, req.type)
            if t is None:
                fee = max(100, (s.amount + 50) // 100) if req.type == "p2p" else 0  # 1 %, half up
                limits: tuple[Lim, ...] = ()
            else:
                fee = 0 if t.fee is None else t.fee.fee(s.amount)
                limits = tuple(x for x in t.limits if x.identification in (None, payer.identification))
            before = done.get((payer.id, req.type), [])
            over = any(x.broken(s.amount, len(before), sum(before)) for x in limits)
            assert op.fee == fee, (s, op.fee, fee)
            if over:
                assert op.state == "failed" and op.problem is not None, (s, op.state)
                assert op.problem["type"].endswith("limit-exceeded"), op.problem
                continue
            debit = s.amount + fee if req.type != "topup" else 0
            if req.type != "topup" and balances[payer.id] < debit:
                assert op.state == "failed" and op.problem["type"].endswith("insufficient-funds"), op.problem
                continue
            assert op.state == "done", (s, op.state, op.problem)
            done.setdefault((payer.id, req.type), []).append(s.amount)
            if req.type == "topup":
                balances[payer.id] += s.amount - fee
            else:
                balances[payer.id] -= debit
            if req.type == "p2p":
                assert req.to_wallet_id is not None
                receiver = next(c for c in people if wallets[c.id].id == req.to_wallet_id)
                balances[receiver.id] += s.amount

            # cashback: the profile's amount, rounded down, within the caps
            row = await session.scalar(select(WalletCashback).where(WalletCashback.operation_id == op.id))
            expected = 0
            if profile is not None and s.kind == "shop":
                if profile.percent is not None:
                    exact = (
                        Fraction(s.amount) * Fraction(Decimal(profile.percent)) / 100 / 100
                    )  # kopecks -> points
                    expected = exact.numerator // exact.denominator
                else:
                    expected = profile.fixed or 0
                if profile.per_op_cap is not None:
                    expected = min(expected, profile.per_op_cap)
                if profile.monthly_cap is not None:
                    expected = min(expected, profile.monthly_cap - points.get(payer.id, 0))
                if profile.funding == "merchant" and expected > 500 - cashback_total:
                    assert row is not None and row.state == "failed"  # the shop cannot cover it
                    continue
            if expected <= 0:
                assert row is None, (s, row.amount if row else None)
                continue
            assert row is not None and row.state == "done" and row.amount == expected, (s, expected, row)
            points[payer.id] = points.get(payer.id, 0) + expected
            cashback_total += expected

        for c in people:
            assert await service.account_balance(session, wallets[c.id].account_id) == balances[c.id]
        if profile is not None and profile.monthly_cap is not None:
            assert all(v <= profile.monthly_cap for v in points.values())
        check = await verify_ledger(session)
        assert check.balanced, check
        for issuer in (await session.scalars(select(Issuer))).all():
            totals = await service.issuer_totals(session, accounts, issuer)
            assert totals["emitted"] == totals["wallets"] + totals["fees"], totals
        for wallet in (await session.scalars(select(Wallet))).all():
            assert await service.account_balance(session, wallet.account_id) >= -wallet.overdraft
    finally:
        await session.rollback()


def test_migration_0030_downgrades_and_upgrades(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import create_engine, inspect

    from paymux.db.migrate import alembic_config, upgrade

    path = tmp_path / "m.db"
    url = f"sqlite+aiosqlite:///{path}"
    ours = {
        "wallet_contracts",
        "wallet_customer_groups",
        "wallet_cashback_profiles",
        "wallet_cashbacks",
        "wallet_contract_proposals",
    }
    upgrade(url)
    command.downgrade(alembic_config(url), "0029")
    engine = create_engine(f"sqlite:///{path}")
    assert not ours & set(inspect(engine).get_table_names())
    engine.dispose()
    upgrade(url)
    engine = create_engine(f"sqlite:///{path}")
    assert ours <= set(inspect(engine).get_table_names())
    engine.dispose()
