"""Cash desks on the double-entry ledger: desks and cashiers, cash days, cashier operations and their
counter-operations, and the system operations an accountant proposes and a CFO approves.

Sign convention (the ledger's: debit > 0). A desk's cash in a currency is account ``cash_desk``/desk
id; ``emoney_backing``/issuer id is minus the money taken for an issuer's e-money (at desks, or paid
out for it); ``cash_difference``/desk id takes what a count finds more (credit) or less (debit) than
the books. The postings (``A`` the cash, ``F`` the wallet's fee)::

    cash top-up        wallet top-up (float -A, wallet +(A-F), fees +F)  +  desk +A, backing -A
    cash withdrawal    wallet withdrawal (wallet -(A+F), float +A, fees +F)  +  desk -A, backing +A
    counter-operation  both entries of the operation reversed, as one entry
    count difference D desk +D, cash_difference -D        (D = counted - books, at opening and closing)
    cash input         desk +A, cash_input -A
    collection         desk -A, cash_in_transit +A
    investment         cash_in_transit -A, desk +A

A desk's cash never goes below zero (a floor on the account, checked as the balance is updated).

A cashier works in a **cash day**: opened with a count of the cash, closed with another; no cash
operation is made outside an open day, and a closed day never changes (its row is locked by every
operation and by the close, so an operation and the close never interleave). Functions flush, never
commit: the request edge commits.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.principal import Principal
from paymux.auth.user_models import Organization, User
from paymux.auth.users import OPERATOR_ORG, ensure_operator_org
from paymux.cashdesks.models import (
    SYSTEM_OPERATION_TYPES,
    CashDay,
    CashDesk,
    CashDeskCashier,
    CashOperation,
    CashSystemOperation,
)
from paymux.db.base import utcnow
from paymux.db.concurrent import inserted, locked
from paymux.errors import Problem, invalid, not_found
from paymux.ledger.models import Account, Posting
from paymux.ledger.service import SYSTEM, AccountCache, AccountKey, InsufficientFunds, Line, post_entry
from paymux.money import CURRENCIES
from paymux.wallets import service as wallets
from paymux.wallets.models import Issuer, Wallet, WalletCustomer, WalletOperation
from paymux.wallets.units import conflict

DESK = "cash_desk"
DIFFERENCE = "cash_difference"
TRANSIT = "cash_in_transit"
INPUT = "cash_input"
BACKING = "emoney_backing"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: ``name`` as audited, ``user_id`` (None for an admin token), ``key`` stable across
    renames (``user:<id>``), for the maker-checker."""

    name: str
    user_id: int | None
    key: str

    @classmethod
    def of(cls, who: Principal) -> Actor:
        key = f"user:{who.user_id}" if who.user_id is not None else f"{who.kind}:{who.name}"
        return cls((who.name if who.user_id is not None else who.audit_name)[:100], who.user_id, key)


# --- keys -----------------------------------------------------------------------------------------------


def desk_key(desk_id: int, currency: str) -> AccountKey:
    return AccountKey(DESK, desk_id, currency)


def backing_key(issuer: Issuer) -> AccountKey:
    return AccountKey(BACKING, issuer.id, issuer.currency)


def difference_key(desk_id: int, currency: str) -> AccountKey:
    return AccountKey(DIFFERENCE, desk_id, currency)


def transit_key(currency: str) -> AccountKey:
    return AccountKey(TRANSIT, SYSTEM, currency)


def input_key(currency: str) -> AccountKey:
    return AccountKey(INPUT, SYSTEM, currency)


# --- desks and cashiers ---------------------------------------------------------------------------------


def check_currencies(currencies: list[str]) -> list[str]:
    out: list[str] = []
    for c in currencies:
        if c not in CURRENCIES:
            raise invalid("invalid-currency", f"{str(c)[:10]!r} is not an ISO 4217 currency")
        if c not in out:
            out.append(c)
    if not out or len(out) > 20:
        raise invalid("invalid-currency", "a desk holds cash in 1 to 20 currencies")
    return out


async def create_desk(
    session: AsyncSession, *, code: str, name: str, organization: str, currencies: list[str]
) -> CashDesk:
    org = await session.scalar(select(Organization).where(Organization.code == organization))
    if org is None and organization == OPERATOR_ORG:  # made with the first user; maybe not yet
        org = await ensure_operator_org(session)
    if org is None:
        raise not_found(f"organization {organization}")
    desk = CashDesk(code=code, name=name, organization_id=org.id, currencies=check_currencies(currencies))
    if not await inserted(session, desk):
        raise conflict("desk-exists", "Cash desk exists", f"cash desk {code} exists already")
    return desk


async def get_desk(session: AsyncSession, desk_id: int) -> CashDesk:
    desk = await session.get(CashDesk, desk_id)
    if desk is None:
        raise not_found(f"cash desk {desk_id}")
    return desk


async def set_cashiers(session: AsyncSession, desk: CashDesk, usernames: list[str]) -> list[str]:
    """Make exactly these users the desk's cashiers; returns their names."""
    users = (await session.scalars(select(User).where(User.username.in_(usernames)))).all()
    missing = set(usernames) - {u.username for u in users}
    if missing:
        raise not_found(f"user {sorted(missing)[0]}")
    current = (await session.scalars(select(CashDeskCashier).where(CashDeskCashier.desk_id == desk.id))).all()
    wanted = {u.id for u in users}
    for row in current:
        if row.user_id not in wanted:
            await session.delete(row)
    have = {row.user_id for row in current}
    for u in users:
        if u.id not in have:
            session.add(CashDeskCashier(desk_id=desk.id, user_id=u.id))
    await session.flush()
    return sorted(u.username for u in users)


async def cashiers_of(session: AsyncSession, desk_id: int) -> list[str]:
    rows = await session.scalars(
        select(User.username)
        .join(CashDeskCashier, CashDeskCashier.user_id == User.id)
        .where(CashDeskCashier.desk_id == desk_id)
        .order_by(User.username)
    )
    return list(rows.all())


async def desks_of_user(session: AsyncSession, user_id: int) -> list[int]:
    rows = await session.scalars(select(CashDeskCashier.desk_id).where(CashDeskCashier.user_id == user_id))
    return list(rows.all())


async def check_cashier(session: AsyncSession, desk: CashDesk, actor: Actor) -> None:
    """Only the desk's cashiers work at it (an admin token, with no user, may too)."""
    if actor.user_id is None:
        return
    found = await session.scalar(
        select(CashDeskCashier.id).where(
            CashDeskCashier.desk_id == desk.id, CashDeskCashier.user_id == actor.user_id
        )
    )
    if found is None:
        raise Problem(
            403, "not-a-cashier", "Not a cashier of this desk", f"you do not work at desk {desk.code}"
        )


async def desk_balances(session: AsyncSession, desk: CashDesk) -> dict[str, int]:
    """The desk's cash per currency (minor units), from the ledger."""
    rows = (
        await session.execute(
            select(Account.currency, Account.balance).where(Account.kind == DESK, Account.owner_id == desk.id)
        )
    ).all()
    found = {str(c): int(b) for c, b in rows}
    return {c: found.get(c, 0) for c in desk.currencies}


# --- cash days ------------------------------------------------------------------------------------------


def no_open_day(desk: CashDesk) -> Problem:
    return conflict("no-open-day", "No open cash day", f"desk {desk.code} has no open cash day")


async def open_day_of(session: AsyncSession, desk: CashDesk, *, lock: bool) -> CashDay | None:
    day_id = await session.scalar(select(CashDay.id).where(CashDay.open_desk_id == desk.id))
    if day_id is None:
        return None
    day = await locked(session, CashDay, day_id) if lock else await session.get(CashDay, day_id)
    if day is None or day.state != "open":  # closed meanwhile
        return None
    return day


def check_counts(desk: CashDesk, counts: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in desk.currencies:
        v = counts.get(c)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v > 10**15:
            raise invalid("invalid-count", f"give the count of {c} (0 or more)", currency=c)
        out[c] = v
    extra = set(counts) - set(desk.currencies)
    if extra:
        raise invalid("invalid-count", f"desk {desk.code} holds no {sorted(extra)[0][:10]}")
    return out


async def _post_differences(
    session: AsyncSession, accounts: AccountCache, desk: CashDesk, diff: dict[str, int], memo: str
) -> int | None:
    lines: list[Line] = []
    for cur, d in diff.items():
        if d:
            lines += [Line(desk_key(desk.id, cur), d), Line(difference_key(desk.id, cur), -d)]
    if not lines:
        return None
    return await post_entry(session, accounts, "cash_difference", lines, memo=memo)


async def open_day(
    session: AsyncSession, accounts: AccountCache, desk_id: int, counts: dict[str, int], actor: Actor
) -> CashDay:
    """Open the desk's day with the cash counted; a difference from the books is posted."""
    desk = await locked(session, CashDesk, desk_id)
    if desk is None:
        raise not_found(f"cash desk {desk_id}")
    await check_cashier(session, desk, actor)
    counted = check_counts(desk, counts)
    if await open_day_of(session, desk, lock=False) is not None:
        raise conflict("day-open", "Cash day open", f"desk {desk.code} has an open cash day already")
    book = await desk_balances(session, desk)
    day = CashDay(
        desk_id=desk.id,
        open_desk_id=desk.id,
        state="open",
        opened_by=actor.name,
        opened_by_id=actor.user_id,
        opened_at=utcnow(),
        opening_count=counted,
        opening_book=book,
    )
    if not await inserted(session, day):
        raise conflict("day-open", "Cash day open", f"desk {desk.code} has an open cash day already")
    await _post_differences(
        session,
        accounts,
        desk,
        {c: counted[c] - book[c] for c in counted},
        f"cash day {day.id} opening count",
    )
    return day


async def close_day(
    session: AsyncSession, accounts: AccountCache, desk_id: int, counts: dict[str, int], actor: Actor
) -> CashDay:
    """Close the desk's open day with the cash counted: the difference from the books is shown and
    posted to the cash-difference account; the day then waits for an accountant."""
    desk = await get_desk(session, desk_id)
    await check_cashier(session, desk, actor)
    counted = check_counts(desk, counts)
    day = await open_day_of(session, desk, lock=True)
    if day is None:
        raise no_open_day(desk)
    book = await desk_balances(session, desk)
    diff = {c: counted[c] - book[c] for c in counted}
    await _post_differences(session, accounts, desk, diff, f"cash day {day.id} closing count")
    day.state, day.open_desk_id = "closed", None
    day.closed_by, day.closed_at = actor.name, utcnow()
    day.closing_count, day.closing_book, day.difference = counted, book, diff
    await session.flush()
    return day


async def accept_day(session: AsyncSession, day_id: int, actor: Actor, note: str) -> CashDay:
    """An accountant accepts a closed day after reconciling it."""
    day = await locked(session, CashDay, day_id)
    if day is None:
        raise not_found(f"cash day {day_id}")
    if day.state != "closed":
        raise conflict("not-closed", "Cash day not closed", f"cash day {day.id} is {day.state}")
    day.state, day.accepted_by, day.accepted_at = "accepted", actor.name, utcnow()
    day.accept_note = note[:500] or None
    await session.flush()
    return day


async def day_totals(session: AsyncSession, day: CashDay) -> dict[str, dict[str, int]]:
    """Per currency: cash in and out by the day's operations (done ones) and system operations."""
    out: dict[str, dict[str, int]] = {}
    rows = (
        await session.execute(
            select(CashOperation.currency, CashOperation.cash_delta).where(
                CashOperation.day_id == day.id, CashOperation.state == "done"
            )
        )
    ).all()
    sys_rows = (
        await session.execute(
            select(CashSystemOperation.currency, CashSystemOperation.type, CashSystemOperation.amount).where(
                CashSystemOperation.day_id == day.id, CashSystemOperation.state == "approved"
            )
        )
    ).all()
    deltas = [(str(c), int(d)) for c, d in rows] + [
        (str(c), int(a) if t != "collection" else -int(a)) for c, t, a in sys_rows
    ]
    for cur, d in deltas:
        t = out.setdefault(cur, {"in": 0, "out": 0, "count": 0})
        t["in" if d > 0 else "out"] += abs(d)
        t["count"] += 1
    return out


# --- cashier operations ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CashRequest:
    """A cashier's request: a cash ``topup`` or ``withdrawal`` of a wallet (``amount`` the cash, in
    minor units), or the cash ``redeem_payout`` of an approved redeem request."""

    desk_id: int
    idempotency_key: str
    type: str
    wallet_id: int | None = None
    amount: int = 0
    document: str | None = None
    redeem_request_id: int | None = None

    def fingerprint(self) -> str:
        body = [self.type, self.wallet_id, self.amount, self.document, self.redeem_request_id]
        return hashlib.sha256(json.dumps(body).encode()).hexdigest()


async def _existing(session: AsyncSession, desk_id: int, key: str, fingerprint: str) -> CashOperation | None:
    op = await session.scalar(
        select(CashOperation).where(CashOperation.desk_id == desk_id, CashOperation.idempotency_key == key)
    )
    if op is not None and op.request_hash != fingerprint:
        raise conflict(
            "idempotency-key-reused",
            "Idempotency key reused",
            "this idempotency key was used for a different operation",
            operation_id=op.id,
        )
    return op


async def _cash_wallet(session: AsyncSession, desk: CashDesk, wallet_id: int) -> tuple[Wallet, Issuer]:
    w = await session.get(Wallet, wallet_id)
    if w is None:
        raise not_found(f"wallet {wallet_id}")
    issuer = await session.get(Issuer, w.issuer_id)
    assert issuer is not None
    if issuer.kind != "emoney" or issuer.currency not in desk.currencies:
        raise invalid(
            "currency-not-at-desk",
            f"desk {desk.code} has no cash in the unit of wallet {w.id} ({issuer.currency})",
        )
    return w, issuer


def _insufficient_cash(desk: CashDesk, currency: str) -> Problem:
    return Problem(
        422,
        "insufficient-cash",
        "Insufficient cash",
        f"desk {desk.code} has not that much {currency} in cash",
    )


async def cash_operation(
    session: AsyncSession, accounts: AccountCache, req: CashRequest, actor: Actor
) -> tuple[CashOperation, bool]:
    """Carry out (or replay) a cashier's operation in the desk's open day; returns it and whether
    this call made it. Refusals by the wallet (blocks, limits, funds) and a desk short of cash are
    recorded ``failed`` with the problem; a problem raised instead means nothing was recorded."""
    fingerprint = req.fingerprint()
    existing = await _existing(session, req.desk_id, req.idempotency_key, fingerprint)
    if existing is not None:
        return existing, False
    desk = await get_desk(session, req.desk_id)
    await check_cashier(session, desk, actor)
    day = await open_day_of(session, desk, lock=True)
    if day is None:
        raise no_open_day(desk)
    existing = await _existing(session, req.desk_id, req.idempotency_key, fingerprint)
    if existing is not None:
        return existing, False
    if req.type == "redeem_payout":
        from paymux.cashdesks.redeem import payout_plan

        wallet, issuer, customer_id, amount = await payout_plan(session, desk, req.redeem_request_id)
    elif req.type in ("topup", "withdrawal"):
        if req.wallet_id is None or req.amount <= 0:
            raise invalid("invalid-operation", "give the wallet and the amount")
        wallet, issuer = await _cash_wallet(session, desk, req.wallet_id)
        customer_id, amount = wallet.customer_id, req.amount
        if req.type == "withdrawal" and not (req.document or "").strip():
            raise invalid(
                "identification-required",
                "a cash withdrawal needs the customer's identity document (type and number)",
            )
    else:
        raise invalid("invalid-operation", "type must be topup, withdrawal or redeem_payout")
    op = CashOperation(
        desk_id=desk.id,
        day_id=day.id,
        idempotency_key=req.idempotency_key,
        request_hash=fingerprint,
        type=req.type,
        state="done",
        customer_id=customer_id,
        wallet_id=wallet.id,
        redeem_request_id=req.redeem_request_id,
        amount=amount,
        currency=issuer.currency,
        cash_delta=amount if req.type == "topup" else -amount,
        document=(req.document or "").strip()[:200] or None,
        cashier=actor.name,
        created_at=utcnow(),
    )
    if not await inserted(session, op):
        again = await _existing(session, req.desk_id, req.idempotency_key, fingerprint)
        if again is None:  # pragma: no cover - the unique key refused it, so it exists
            raise conflict("idempotency-conflict", "Request in progress", "retry the request")
        return again, False
    try:
        async with session.begin_nested():
            await _carry_out(session, accounts, desk, op, wallet, issuer)
    except Problem as e:
        op.state, op.problem = "failed", e.to_dict()
        op.entry_id = op.wallet_operation_id = None
        op.fee = 0
    await session.flush()
    return op, True


async def _carry_out(
    session: AsyncSession,
    accounts: AccountCache,
    desk: CashDesk,
    op: CashOperation,
    wallet: Wallet,
    issuer: Issuer,
) -> None:
    if op.type == "redeem_payout":
        from paymux.cashdesks.redeem import pay_out

        op.entry_id = await pay_out(session, accounts, desk, op)
        return
    customer = await session.get(WalletCustomer, wallet.customer_id)
    assert customer is not None
    wreq = wallets.OperationRequest(
        customer.channel_id,
        f"cashdesk:{desk.id}:{op.id}",
        op.type,
        customer.id,
        op.amount,
        wallet.id if op.type == "withdrawal" else None,
        wallet.id if op.type == "topup" else None,
    )
    wop, _ = await wallets.execute(session, accounts, wreq)
    if wop.state == "pending_review":  # cash is taken or given now or not at all (rolled back)
        raise Problem(
            422,
            "limit-exceeded",
            "Limit exceeded",
            "the operation is over a limit that needs a review: it cannot be made in cash",
        )
    if wop.state != "done":
        p = wop.problem or {}
        raise Problem(
            int(p.get("status", 422)),
            str(p.get("type", "refused")).rsplit("/", 1)[-1],
            str(p.get("title", "Refused")),
            str(p.get("detail") or p.get("title") or "the wallet refused the operation"),
        )
    op.wallet_operation_id, op.fee = wop.id, wop.fee
    lines = [
        Line(desk_key(desk.id, issuer.currency), op.cash_delta),
        Line(backing_key(issuer), -op.cash_delta),
    ]
    try:
        op.entry_id = await post_entry(
            session,
            accounts,
            f"cash_{op.type}",
            lines,
            memo=f"cash operation {op.id}",
            floors={desk_key(desk.id, issuer.currency): 0},
        )
    except InsufficientFunds:
        raise _insufficient_cash(desk, issuer.currency) from None


async def _entry_lines(session: AsyncSession, entry_ids: list[int]) -> list[Line]:
    rows = (
        await session.execute(
            select(Account.kind, Account.owner_id, Account.currency, Posting.amount)
            .join(Account, Account.id == Posting.account_id)
            .where(Posting.entry_id.in_(entry_ids))
        )
    ).all()
    return [Line(AccountKey(str(k), int(o), str(c)), int(a)) for k, o, c, a in rows]


async def reverse(
    session: AsyncSession,
    accounts: AccountCache,
    *,
    desk_id: int,
    operation_id: int,
    idempotency_key: str,
    reason: str,
    actor: Actor,
) -> tuple[CashOperation, bool]:
    """The counter-operation of a done top-up or withdrawal of this desk, in its open day, with a
    reason: both of its entries reversed as one (the wallet must cover a top-up's reversal, the
    desk's cash a withdrawal's). An operation is reversed once."""
    reason = " ".join(reason.split())[:500]
    if not reason:
        raise invalid("reason-required", "give the reason of the counter-operation")
    fingerprint = hashlib.sha256(json.dumps(["reversal", operation_id, reason]).encode()).hexdigest()
    existing = await _existing(session, desk_id, idempotency_key, fingerprint)
    if existing is not None:
        return existing, False
    desk = await get_desk(session, desk_id)
    await check_cashier(session, desk, actor)
    day = await open_day_of(session, desk, lock=True)
    if day is None:
        raise no_open_day(desk)
    orig = await locked(session, CashOperation, operation_id)
    if orig is None or orig.desk_id != desk.id:
        raise not_found(f"cash operation {operation_id}")
    if orig.state != "done" or orig.type not in ("topup", "withdrawal"):
        raise conflict("not-reversible", "Not reversible", f"operation {orig.id} cannot be reversed")
    if await session.scalar(select(CashOperation.id).where(CashOperation.reverses_id == orig.id)) is not None:
        raise conflict("already-reversed", "Already reversed", f"operation {orig.id} was reversed already")
    wop = await session.get(WalletOperation, orig.wallet_operation_id) if orig.wallet_operation_id else None
    entries = [e for e in (wop.entry_id if wop else None, orig.entry_id) if e is not None]
    lines = [Line(ln.key, -ln.amount) for ln in await _entry_lines(session, entries)]
    floors: dict[AccountKey, int] = {desk_key(desk.id, orig.currency): 0}
    wallet = await session.get(Wallet, orig.wallet_id) if orig.wallet_id else None
    if wallet is not None:
        floors[AccountKey(wallets.WALLET, wallet.id, orig.currency)] = -wallet.overdraft
    op = CashOperation(
        desk_id=desk.id,
        day_id=day.id,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        type="reversal",
        state="done",
        customer_id=orig.customer_id,
        wallet_id=orig.wallet_id,
        reverses_id=orig.id,
        amount=orig.amount,
        currency=orig.currency,
        fee=orig.fee,
        cash_delta=-orig.cash_delta,
        reason=reason,
        cashier=actor.name,
        created_at=utcnow(),
    )
    made = False
    try:
        async with session.begin_nested():  # the operation and its entry together, or neither
            if await inserted(session, op):
                made = True
                op.entry_id = await post_entry(
                    session,
                    accounts,
                    "cash_reversal",
                    lines,
                    memo=f"reversal of cash operation {orig.id}",
                    floors=floors,
                )
    except InsufficientFunds as e:
        if e.key.kind == DESK:
            raise _insufficient_cash(desk, orig.currency) from None
        raise Problem(
            422, "insufficient-funds", "Insufficient funds", "the wallet no longer holds what the top-up gave"
        ) from None
    if not made:
        again = await _existing(session, desk_id, idempotency_key, fingerprint)
        if again is None:
            raise conflict(
                "already-reversed", "Already reversed", f"operation {orig.id} was reversed already"
            )
        return again, False
    await session.flush()
    return op, True


# --- system operations (maker-checker) ------------------------------------------------------------------


def system_lines(op: CashSystemOperation) -> tuple[list[Line], dict[AccountKey, int]]:
    desk = desk_key(op.desk_id, op.currency)
    a = op.amount
    if op.type == "cash_input":
        return [Line(desk, a), Line(input_key(op.currency), -a)], {}
    if op.type == "collection":
        return [Line(desk, -a), Line(transit_key(op.currency), a)], {desk: 0}
    return [Line(transit_key(op.currency), -a), Line(desk, a)], {transit_key(op.currency): 0}


async def propose_system(
    session: AsyncSession,
    *,
    type: str,
    desk_id: int,
    currency: str,
    amount: int,
    note: str,
    actor: Actor,
) -> CashSystemOperation:
    if type not in SYSTEM_OPERATION_TYPES:
        raise invalid("invalid-operation", f"type must be one of {list(SYSTEM_OPERATION_TYPES)}")
    desk = await get_desk(session, desk_id)
    if currency not in desk.currencies:
        raise invalid("currency-not-at-desk", f"desk {desk.code} holds no {currency[:10]}")
    if not 0 < amount <= 10**15:
        raise invalid("invalid-amount", "amount must be greater than zero")
    op = CashSystemOperation(
        type=type,
        desk_id=desk.id,
        currency=currency,
        amount=amount,
        note=note[:500] or None,
        state="pending",
        proposed_by=actor.name,
        proposed_by_key=actor.key,
        proposed_at=utcnow(),
    )
    session.add(op)
    await session.flush()
    return op


async def decide_system(
    session: AsyncSession, accounts: AccountCache, op_id: int, *, approve: bool, note: str, actor: Actor
) -> CashSystemOperation:
    """Approve (posted now) or reject a pending system operation; never by its proposer."""
    op = await locked(session, CashSystemOperation, op_id)
    if op is None:
        raise not_found(f"system operation {op_id}")
    if op.state != "pending":
        raise conflict("already-decided", "Already decided", f"system operation {op.id} is {op.state}")
    if op.proposed_by_key == actor.key:
        raise Problem(403, "own-proposal", "Own proposal", "another person decides on your proposal")
    if not approve:
        op.state = "rejected"
        op.decided_by, op.decided_at, op.decision_note = actor.name, utcnow(), note[:500] or None
        await session.flush()
        return op
    desk = await get_desk(session, op.desk_id)
    day = await open_day_of(session, desk, lock=True)
    op.day_id = day.id if day is not None else None
    lines, floors = system_lines(op)
    try:
        async with session.begin_nested():
            op.entry_id = await post_entry(
                session, accounts, f"cash_{op.type}", lines, memo=f"system operation {op.id}", floors=floors
            )
    except InsufficientFunds as e:
        where = f"desk {desk.code}" if e.key.kind == DESK else "money in transit"
        raise Problem(
            422, "insufficient-cash", "Insufficient cash", f"{where} has not that much {op.currency}"
        ) from None
    op.state = "approved"
    op.decided_by, op.decided_at, op.decision_note = actor.name, utcnow(), note[:500] or None
    await session.flush()
    return op


async def all_balances(session: AsyncSession) -> list[dict[str, Any]]:
    """Every desk's cash per currency, with its organization (the CFO's view)."""
    desks = (
        await session.execute(
            select(CashDesk, Organization.name).join(
                Organization, Organization.id == CashDesk.organization_id
            )
        )
    ).all()
    out: list[dict[str, Any]] = []
    for desk, org in sorted(desks, key=lambda r: r[0].code):
        open_day = await session.scalar(select(func.count()).where(CashDay.open_desk_id == desk.id))
        for cur, bal in (await desk_balances(session, desk)).items():
            out.append(
                {
                    "desk": desk.code,
                    "desk_id": desk.id,
                    "name": desk.name,
                    "organization": org,
                    "currency": cur,
                    "balance": bal,
                    "open": bool(open_day),
                }
            )
    return out
