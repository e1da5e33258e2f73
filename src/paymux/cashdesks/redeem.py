"""Customers' redeem requests: take e-money out by cash (at a desk) or by bank transfer.

The amount is held when the request is made (wallet -A, ``redeem_hold`` +A; the customer's
withdrawal limits apply), so it cannot be spent twice. An accountant then approves or cancels it
with a reason; the customer is notified of each decision (``paymux.notifications``, event
``wallet.redeem.<state>``, through the agent of the customer's channel)::

    cancelled       redeem_hold -A, wallet +A                        (given back)
    bank transfer   redeem_hold -A, float +A; bank -A, backing +A    (approved: payment order RDM-<id>),
                    then sent in a pain.001 file (``redeem_transfers``)
    cash            approved, then paid at a desk in an open day:
                    redeem_hold -A, float +A; desk -A, backing +A    (paid)
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.cashdesks.models import REDEEM_METHODS, CashDesk, CashOperation, RedeemRequest
from paymux.cashdesks.service import Actor, backing_key, desk_key
from paymux.catalog.models import Channel
from paymux.db.base import utcnow
from paymux.db.concurrent import inserted, locked
from paymux.errors import Problem, invalid, not_found
from paymux.ledger.service import SYSTEM, AccountCache, AccountKey, InsufficientFunds, Line, post_entry
from paymux.notifications.service import Recipient, notify
from paymux.wallets import service as wallets
from paymux.wallets.models import Issuer, Wallet, WalletCustomer
from paymux.wallets.units import conflict, format_units

HOLD = "redeem_hold"
IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}\Z")


def hold_key(issuer: Issuer) -> AccountKey:
    return AccountKey(HOLD, issuer.id, issuer.currency)


def bank_key(currency: str) -> AccountKey:
    return AccountKey("bank", SYSTEM, currency)


def fingerprint(wallet_id: int, method: str, amount: int, iban: str | None, beneficiary: str | None) -> str:
    return hashlib.sha256(json.dumps([wallet_id, method, amount, iban, beneficiary]).encode()).hexdigest()


async def create(
    session: AsyncSession,
    accounts: AccountCache,
    *,
    customer: WalletCustomer,
    idempotency_key: str,
    wallet_id: int,
    method: str,
    amount: int,
    iban: str | None,
    beneficiary: str | None,
) -> tuple[RedeemRequest, bool]:
    """Make (or replay) a redeem request of the customer's own wallet, holding the amount."""
    if method not in REDEEM_METHODS:
        raise invalid("invalid-method", f"method must be one of {list(REDEEM_METHODS)}")
    if method == "bank_transfer":
        if iban is None or not IBAN.match(iban):
            raise invalid("invalid-iban", "a bank transfer needs the IBAN (capital letters and digits)")
        if not beneficiary:
            raise invalid("invalid-beneficiary", "a bank transfer needs the beneficiary's name")
    else:
        iban = beneficiary = None
    fp = fingerprint(wallet_id, method, amount, iban, beneficiary)
    query = select(RedeemRequest).where(
        RedeemRequest.channel_id == customer.channel_id, RedeemRequest.idempotency_key == idempotency_key
    )
    found = await session.scalar(query)
    if found is not None:
        if found.request_hash != fp or found.customer_id != customer.id:
            raise conflict(
                "idempotency-key-reused",
                "Idempotency key reused",
                "this Idempotency-Key was used for another request",
            )
        return found, False
    w = await session.get(Wallet, wallet_id)
    if w is None or w.customer_id != customer.id:
        raise not_found(f"wallet {wallet_id}")
    issuer = await session.get(Issuer, w.issuer_id)
    assert issuer is not None
    if issuer.kind != "emoney":
        raise invalid("not-redeemable", "only e-money is redeemed in money")
    c = await locked(session, WalletCustomer, customer.id, key_share=True)
    assert c is not None
    if c.status != "active":
        raise wallets.blocked_customer(c)
    if w.status != "active":
        raise wallets.blocked_wallet(w)
    await wallets.check_limits(session, c, "withdrawal", issuer, amount, exclude=None)
    row = RedeemRequest(
        channel_id=customer.channel_id,
        idempotency_key=idempotency_key,
        request_hash=fp,
        customer_id=customer.id,
        wallet_id=w.id,
        method=method,
        amount=amount,
        currency=issuer.currency,
        iban=iban,
        beneficiary=beneficiary,
        state="pending",
    )
    made = False
    try:
        async with session.begin_nested():  # the request and its hold together, or neither
            if await inserted(session, row):
                made = True
                row.hold_entry_id = await post_entry(
                    session,
                    accounts,
                    "redeem_hold",
                    [Line(wallets.wallet_key(w, issuer), -amount), Line(hold_key(issuer), amount)],
                    memo=f"redeem request {row.id}",
                    floors={wallets.wallet_key(w, issuer): -w.overdraft},
                )
    except InsufficientFunds:
        raise Problem(
            422, "insufficient-funds", "Insufficient funds", "the wallet's balance does not cover the amount"
        ) from None
    if not made:
        again = await session.scalar(query)
        if again is None:  # pragma: no cover
            raise conflict("idempotency-conflict", "Request in progress", "retry the request")
        return again, False
    await session.flush()
    return row, True


async def _issuer_of(session: AsyncSession, r: RedeemRequest) -> tuple[Wallet, Issuer]:
    w = await session.get(Wallet, r.wallet_id)
    assert w is not None
    issuer = await session.get(Issuer, w.issuer_id)
    assert issuer is not None
    return w, issuer


async def decide(
    session: AsyncSession,
    accounts: AccountCache,
    request_id: int,
    *,
    approve: bool,
    reason: str,
    actor: Actor,
) -> RedeemRequest:
    """Approve (a bank transfer: redeemed and a payment order made; cash: waits for the payout at a
    desk) or cancel (the held amount given back) a pending request; the customer is notified."""
    reason = " ".join(reason.split())[:500]
    r = await locked(session, RedeemRequest, request_id)
    if r is None:
        raise not_found(f"redeem request {request_id}")
    if r.state != "pending":
        raise conflict("already-decided", "Already decided", f"redeem request {r.id} is {r.state}")
    if not approve and not reason:
        raise invalid("reason-required", "give the reason of the cancellation")
    w, issuer = await _issuer_of(session, r)
    r.decided_by, r.decided_at, r.updated_at, r.reason = actor.name, utcnow(), utcnow(), reason or None
    if not approve:
        r.entry_id = await post_entry(
            session,
            accounts,
            "redeem_cancel",
            [Line(hold_key(issuer), -r.amount), Line(wallets.wallet_key(w, issuer), r.amount)],
            memo=f"redeem request {r.id} cancelled",
        )
        r.state = "cancelled"
    elif r.method == "bank_transfer":
        r.entry_id = await post_entry(
            session,
            accounts,
            "redeem_bank",
            [
                Line(hold_key(issuer), -r.amount),
                Line(wallets.float_key(issuer), r.amount),
                Line(bank_key(r.currency), -r.amount),
                Line(backing_key(issuer), r.amount),
            ],
            memo=f"redeem request {r.id} by bank transfer",
        )
        r.state, r.order_number = "approved", f"RDM-{r.id:08d}"
    else:
        r.state = "approved"
    await session.flush()
    await notify_customer(session, r, issuer)
    return r


async def payout_plan(
    session: AsyncSession, desk: CashDesk, request_id: int | None
) -> tuple[Wallet, Issuer, int, int]:
    """What a desk pays for an approved cash request: its wallet, issuer, customer and amount."""
    r = await session.get(RedeemRequest, request_id) if request_id is not None else None
    if r is None:
        raise not_found(f"redeem request {request_id}")
    if r.method != "cash" or r.state != "approved":
        raise conflict("not-payable", "Not payable", f"redeem request {r.id} does not wait for a cash payout")
    w, issuer = await _issuer_of(session, r)
    if issuer.currency not in desk.currencies:
        raise invalid("currency-not-at-desk", f"desk {desk.code} has no {issuer.currency} in cash")
    return w, issuer, r.customer_id, r.amount


async def pay_out(session: AsyncSession, accounts: AccountCache, desk: CashDesk, op: CashOperation) -> int:
    """Pay an approved cash request at ``desk`` (``op`` the cashier's operation); returns the entry."""
    r = await locked(session, RedeemRequest, op.redeem_request_id)
    if r is None or r.state != "approved" or r.method != "cash":
        raise conflict("not-payable", "Not payable", "the redeem request does not wait for a cash payout")
    _, issuer = await _issuer_of(session, r)
    try:
        entry = await post_entry(
            session,
            accounts,
            "redeem_cash",
            [
                Line(hold_key(issuer), -r.amount),
                Line(wallets.float_key(issuer), r.amount),
                Line(desk_key(desk.id, r.currency), -r.amount),
                Line(backing_key(issuer), r.amount),
            ],
            memo=f"redeem request {r.id} paid in cash",
            floors={desk_key(desk.id, r.currency): 0},
        )
    except InsufficientFunds:
        raise Problem(
            422, "insufficient-cash", "Insufficient cash", f"desk {desk.code} has not that much {r.currency}"
        ) from None
    r.state, r.entry_id, r.updated_at = "paid", entry, utcnow()
    await notify_customer(session, r, issuer)
    return entry


async def notify_customer(session: AsyncSession, r: RedeemRequest, issuer: Issuer) -> list[int]:
    """Tell the customer what became of the request (through its channel's agent; none: no notice)."""
    c = await session.get(WalletCustomer, r.customer_id)
    assert c is not None
    agent_id = c.agent_id or await session.scalar(select(Channel.agent_id).where(Channel.id == c.channel_id))
    if agent_id is None:
        return []
    data: dict[str, Any] = {
        "request": r.id,
        "state": r.state,
        "method": r.method,
        "amount": format_units(r.amount, issuer.precision),
        "currency": r.currency,
        "reason": r.reason,
        "order_number": r.order_number,
    }
    return await notify(
        session,
        agent_id=agent_id,
        event=f"wallet.redeem.{r.state}",
        recipient=Recipient(name=c.name, phone=c.phone, email=c.email, reference=c.external_ref),
        data=data,
        key=f"redeem-{r.id}-{r.state}",
    )


def view(r: RedeemRequest, precision: int) -> dict[str, Any]:
    return {
        "id": r.id,
        "wallet": r.wallet_id,
        "method": r.method,
        "amount": format_units(r.amount, precision),
        "currency": r.currency,
        "iban": r.iban,
        "beneficiary": r.beneficiary,
        "state": r.state,
        "reason": r.reason,
        "order_number": r.order_number,
        "created_at": r.created_at.isoformat(),
        "decided_at": r.decided_at.isoformat() if r.decided_at else None,
        "sent_at": r.sent_at.isoformat() if r.sent_at else None,
        "transfer_batch": r.transfer_batch,
    }
