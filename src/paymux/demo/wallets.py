"""The demo's e-money: three issuers (RUB-backed and EUR-backed e-money, bonus points), customers of
each kind signed up by the mobile bank app, their wallets and a month of operations (top-ups, P2P
transfers, exchanges, withdrawals), a review limit and anti-fraud rules, and one transfer over the
limit left waiting for the Anti-fraud specialist.

Every operation carries a fixed idempotency key, so seeding again replays instead of repeating;
issuers, customers, limits and rules are found by their codes and names.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.models import Channel
from paymux.db.base import utcnow
from paymux.ledger.models import JournalEntry, Posting
from paymux.ledger.service import AccountCache
from paymux.wallets import fraud, service
from paymux.wallets.models import Issuer, WalletCustomer, WalletFraudRule, WalletLimit, WalletOperation

CHANNEL = "mobile"
DAYS = 30

ISSUERS: tuple[tuple[str, str, str, str, int, int | None, dict[str, Any], str], ...] = (
    # code, name, kind, currency, precision, emission limit (minor), fee rules, spread
    (
        "rub",
        "RUB e-money",
        "emoney",
        "RUB",
        2,
        10_000_000_00,
        {"p2p": {"percent": "0.5", "min": 1000}},
        "1.5",
    ),
    ("eur", "EUR e-money", "emoney", "EUR", 2, 100_000_00, {"withdrawal": {"fixed": 150}}, "1"),
    ("bonus", "Bonus points", "points", "PTS", 0, None, {}, "0"),
)


@dataclass(frozen=True)
class DemoHolder:
    ref: str
    kind: str
    identification: str
    name: str
    email: str
    phone: str


HOLDERS = (
    DemoHolder("w-ivan", "individual", "unidentified", "Ivan Petrov", "ivan@example.ru", "+79160000101"),
    DemoHolder("w-olga", "individual", "identified", "Olga Smirnova", "olga@example.ru", "+79160000102"),
    DemoHolder("w-ion", "individual", "identified", "Ion Popescu", "ion@example.md", "+37369000103"),
    DemoHolder("w-cafe", "merchant", "identified", "Cafe Lumiere", "cafe@example.md", "+37322000104"),
)


async def _issuers(session: AsyncSession, accounts: AccountCache) -> dict[str, Issuer]:
    out: dict[str, Issuer] = {}
    for code, name, kind, currency, precision, limit, fees, spread in ISSUERS:
        found = await session.scalar(select(Issuer).where(Issuer.code == code))
        if found is None:
            found = await service.create_issuer(
                session,
                accounts,
                code=code,
                name=name,
                kind=kind,
                currency=currency,
                precision=precision,
                emission_limit=limit,
                fee_rules=service.parse_fee_rules(fees),
                exchange_spread_percent=spread,
            )
        out[code] = found
    return out


async def _limits_and_rules(session: AsyncSession, issuers: dict[str, Issuer]) -> None:
    rub = issuers["rub"]
    name = "p2p-unidentified-review"
    if await session.scalar(select(WalletLimit.id).where(WalletLimit.name == name)) is None:
        session.add(
            WalletLimit(
                issuer_id=rub.id,
                type="p2p",
                identification="unidentified",
                name=name,
                max_amount=15_000_00,
                action="review",
            )
        )
    rules = (
        fraud.RuleFields("big-p2p-rub", "amount", "p2p", rub, None, 50_000_00, None),
        fraud.RuleFields("p2p-burst", "velocity", "p2p", None, 10, None, 10),
    )
    for f in rules:
        if await session.scalar(select(WalletFraudRule.id).where(WalletFraudRule.name == f.name)) is None:
            await fraud.add_rule(session, f, "demo")
    await session.flush()


async def _backdate(session: AsyncSession, op: WalletOperation, at: dt.datetime) -> None:
    """Move a just-made operation (and its postings) to ``at``, so the month reads as lived."""
    op.created_at = op.updated_at = at
    if op.entry_id is not None:
        await session.execute(
            update(JournalEntry).where(JournalEntry.id == op.entry_id).values(created_at=at)
        )
        await session.execute(update(Posting).where(Posting.entry_id == op.entry_id).values(created_at=at))


async def seed_wallets(session: AsyncSession, accounts: AccountCache, now: dt.datetime | None = None) -> int:
    """Load the demo's e-money (idempotent); returns how many operations this call made."""
    channel_id = await session.scalar(select(Channel.id).where(Channel.code == CHANNEL))
    if channel_id is None:
        return 0
    issuers = await _issuers(session, accounts)
    await _limits_and_rules(session, issuers)
    people: dict[str, WalletCustomer] = {}
    for h in HOLDERS:
        people[h.ref], _ = await service.signup(
            session,
            channel_id=channel_id,
            agent_id=None,
            external_ref=h.ref,
            kind=h.kind,
            identification=h.identification,
            name=h.name,
            email=h.email,
            phone=h.phone,
        )
    wallets = {}
    for ref, codes in {
        "w-ivan": ("rub",),
        "w-olga": ("rub", "eur", "bonus"),
        "w-ion": ("eur", "rub"),
        "w-cafe": ("rub", "eur"),
    }.items():
        for code in codes:
            wallets[ref, code], _ = await service.open_wallet(session, accounts, people[ref], issuers[code])
    await session.flush()

    start = (now or utcnow()).replace(hour=9, minute=0, second=0, microsecond=0) - dt.timedelta(days=DAYS)
    made = 0

    Ref = tuple[str, str] | None

    async def op(
        key: str, kind: str, who: str, amount: int, frm: Ref, to: Ref, at: dt.datetime | None
    ) -> None:
        nonlocal made
        req = service.OperationRequest(
            channel_id,
            f"demo-{key}",
            kind,
            people[who].id,
            amount,
            wallets[frm].id if frm else None,
            wallets[to].id if to else None,
        )
        row, new = await service.execute(session, accounts, req)
        if new:
            made += 1
            if at is not None:
                await _backdate(session, row, at)

    for day in range(DAYS):
        at = start + dt.timedelta(days=day)
        if day % 7 == 0:  # weekly salaries and savings in
            await op(f"top-olga-{day}", "topup", "w-olga", 60_000_00, None, ("w-olga", "rub"), at)
            await op(f"top-ivan-{day}", "topup", "w-ivan", 8_000_00, None, ("w-ivan", "rub"), at)
            await op(f"top-ion-{day}", "topup", "w-ion", 400_00, None, ("w-ion", "eur"), at)
            await op(f"bonus-olga-{day}", "topup", "w-olga", 250, None, ("w-olga", "bonus"), at)
        hour = dt.timedelta(hours=2 + day % 8)
        await op(
            f"p2p-olga-cafe-{day}",
            "p2p",
            "w-olga",
            (350 + 17 * day) * 100,
            ("w-olga", "rub"),
            ("w-cafe", "rub"),
            at + hour,
        )
        if day % 2:
            await op(
                f"p2p-ivan-olga-{day}",
                "p2p",
                "w-ivan",
                (500 + 40 * day) * 100,
                ("w-ivan", "rub"),
                ("w-olga", "rub"),
                at + hour,
            )
        if day % 3 == 1:
            await op(
                f"p2p-ion-cafe-{day}",
                "p2p",
                "w-ion",
                (12 + day) * 100,
                ("w-ion", "eur"),
                ("w-cafe", "eur"),
                at + hour,
            )
        if day % 5 == 2:
            await op(
                f"fx-olga-{day}",
                "exchange",
                "w-olga",
                10_000_00,
                ("w-olga", "rub"),
                ("w-olga", "eur"),
                at + hour,
            )
        if day % 10 == 9:
            await op(f"out-cafe-{day}", "withdrawal", "w-cafe", 3_000_00, ("w-cafe", "rub"), None, at + hour)
            await op(f"out-ion-{day}", "withdrawal", "w-ion", 150_00, ("w-ion", "eur"), None, at + hour)
    # today: an unidentified customer's transfer over the review limit waits for the anti-fraud role
    await op("p2p-ivan-over-limit", "p2p", "w-ivan", 16_000_00, ("w-ivan", "rub"), ("w-cafe", "rub"), None)
    await session.flush()
    return made
