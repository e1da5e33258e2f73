"""Cashback: merchants' profiles, and the credit of cashback to a payer once a payment succeeds.

When an operation of a type a merchant's profile lists (``merchant_payment`` and ``p2p`` by default)
is ``done`` and its destination wallet is the merchant's, the payer receives a ``cashback``
operation in the profile's issuer's unit (a wallet in it is opened if the payer has none):

* ``percent``: ``floor(amount × percent / 100 × 10^(paying precision − source precision))``, exact
  (fractions), rounded **down**; one point per major unit of the source currency for points;
* ``fixed``: the profile's amount per operation;

then capped by ``per_operation_cap`` and by what ``monthly_cap`` leaves for this payer with this
merchant in the calendar month (UTC). Postings, ``C`` the cashback::

    funding merchant   merchant's wallet −C   payer's wallet +C
    funding issuer     issuer's float −C      payer's wallet +C   (emission)

One cashback per operation, ever (``wallet_cashbacks.operation_id`` is unique). A cashback that
cannot be paid (the merchant's wallet cannot cover it, a blocked wallet, the emission limit) is
recorded ``failed`` with its problem; the payment itself stays done. An e-money issuer pays
cashback only on operations in its own currency. Functions flush, never commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.db.base import utcnow
from paymux.db.concurrent import inserted
from paymux.errors import Problem
from paymux.ledger.service import AccountCache, AccountKey, InsufficientFunds, Line, post_entry
from paymux.wallets import service
from paymux.wallets.contract_models import WalletCashback, WalletCashbackProfile
from paymux.wallets.contracts import month_start
from paymux.wallets.models import Issuer, Wallet, WalletCustomer, WalletOperation
from paymux.wallets.units import format_units


async def profile_in_force(
    session: AsyncSession, merchant_id: int, at: dt.datetime | None = None
) -> WalletCashbackProfile | None:
    """The version of the merchant's profile in force at ``at`` (now by default)."""
    return await session.scalar(
        select(WalletCashbackProfile)
        .where(
            WalletCashbackProfile.merchant_id == merchant_id,
            WalletCashbackProfile.effective_from <= (at or utcnow()),
        )
        .order_by(WalletCashbackProfile.effective_from.desc(), WalletCashbackProfile.version.desc())
        .limit(1)
    )


def cashback_amount(profile: WalletCashbackProfile, amount: int, source: Issuer, pay: Issuer) -> int:
    """The cashback of one operation of ``amount`` (minor units of ``source``) in ``pay``'s minor
    units, with the per-operation cap; 0 when ``pay`` is e-money of another currency."""
    if pay.kind == "emoney" and pay.currency != source.currency:
        return 0
    if profile.mode == "fixed":
        value = int(profile.fixed or 0)
    else:
        scale = Fraction(10) ** (pay.precision - source.precision)
        exact = Fraction(amount) * Fraction(Decimal(profile.percent or "0")) / 100 * scale
        value = exact.numerator // exact.denominator  # rounded down, explicitly
    if profile.per_operation_cap is not None:
        value = min(value, profile.per_operation_cap)
    return max(value, 0)


async def month_used(session: AsyncSession, payer_id: int, merchant_id: int, at: dt.datetime) -> int:
    """Cashback this payer received for payments to this merchant in ``at``'s month."""
    total = await session.scalar(
        select(func.coalesce(func.sum(WalletCashback.amount), 0)).where(
            WalletCashback.payer_id == payer_id,
            WalletCashback.merchant_id == merchant_id,
            WalletCashback.state == "done",
            WalletCashback.created_at >= month_start(at),
        )
    )
    return int(total or 0)


async def credit_cashback(
    session: AsyncSession, accounts: AccountCache, op: WalletOperation
) -> WalletOperation | None:
    """Credit the cashback ``op`` earns, if any; returns the ``cashback`` operation (done or
    failed), or None when nothing is due. The payer's row must be locked by the caller (it is in
    ``service.execute`` and ``service.review``), so the monthly cap holds under concurrency."""
    if op.state != "done" or op.to_wallet_id is None or op.type == "cashback":
        return None
    to_wallet = await session.get(Wallet, op.to_wallet_id)
    if to_wallet is None or to_wallet.customer_id == op.customer_id:
        return None
    merchant_id = to_wallet.customer_id
    now = utcnow()
    profile = await profile_in_force(session, merchant_id, now)
    if profile is None or not profile.enabled or op.type not in (profile.operation_types or []):
        return None
    source = await session.get(Issuer, op.issuer_id)
    pay = await session.get(Issuer, profile.issuer_id)
    assert source is not None and pay is not None
    amount = cashback_amount(profile, op.amount, source, pay)
    if profile.monthly_cap is not None:
        amount = min(
            amount, profile.monthly_cap - await month_used(session, op.customer_id, merchant_id, now)
        )
    if amount <= 0:
        return None
    record = WalletCashback(
        operation_id=op.id,
        profile_id=profile.id,
        merchant_id=merchant_id,
        payer_id=op.customer_id,
        issuer_id=pay.id,
        amount=amount,
        state="created",
        created_at=now,
    )
    if not await inserted(session, record):  # credited already: one per operation
        return None
    cb = WalletOperation(
        channel_id=op.channel_id,
        idempotency_key=f"cashback\t{op.id}",  # a tab: no client key can be the same
        request_hash=hashlib.sha256(f"cashback:{op.id}".encode()).hexdigest(),
        type="cashback",
        state="created",
        customer_id=op.customer_id,
        issuer_id=pay.id,
        amount=amount,
        currency=pay.currency,
        to_amount=amount,
        to_currency=pay.currency,
        fee=0,
    )
    session.add(cb)
    await session.flush()
    record.cashback_operation_id = cb.id
    try:
        await _pay(session, accounts, cb, profile, pay, op.customer_id, merchant_id)
    except Problem as e:
        cb.state, cb.problem = "failed", e.to_dict()
    cb.updated_at = utcnow()
    record.state = cb.state
    await session.flush()
    return cb


async def _pay(
    session: AsyncSession,
    accounts: AccountCache,
    cb: WalletOperation,
    profile: WalletCashbackProfile,
    pay: Issuer,
    payer_id: int,
    merchant_id: int,
) -> None:
    payer = await session.get(WalletCustomer, payer_id)
    assert payer is not None
    payer_wallet, _ = await service.open_wallet(session, accounts, payer, pay)
    cb.to_wallet_id = payer_wallet.id
    if payer_wallet.status != "active":
        raise service.blocked_wallet(payer_wallet)
    floors: dict[AccountKey, int] = {}
    if profile.funding == "merchant":
        merchant = await session.get(WalletCustomer, merchant_id)
        assert merchant is not None
        if merchant.status != "active":
            raise service.blocked_customer(merchant)
        merchant_wallet, _ = await service.open_wallet(session, accounts, merchant, pay)
        cb.from_wallet_id = merchant_wallet.id
        if merchant_wallet.status != "active":
            raise service.blocked_wallet(merchant_wallet)
        source_key = service.wallet_key(merchant_wallet, pay)
        floors[source_key] = -merchant_wallet.overdraft
    else:
        source_key = service.float_key(pay)
        if pay.emission_limit is not None:
            floors[source_key] = -pay.emission_limit
    lines = [Line(source_key, -cb.amount), Line(service.wallet_key(payer_wallet, pay), cb.amount)]
    try:
        async with session.begin_nested():
            cb.entry_id = await post_entry(
                session, accounts, "wallet_cashback", lines, memo=f"wallet operation {cb.id}", floors=floors
            )
    except InsufficientFunds as e:
        if e.key.kind == service.FLOAT:
            raise Problem(
                422,
                "emission-limit-exceeded",
                "Emission limit exceeded",
                f"the cashback would take the emission of issuer {pay.code} over its limit",
                issuer=pay.code,
            ) from None
        raise Problem(
            422,
            "insufficient-funds",
            "Insufficient funds",
            "the merchant's wallet does not cover the cashback",
            wallet_id=e.key.owner_id,
        ) from None
    cb.state = "done"


def profile_view(row: WalletCashbackProfile, pay: Issuer) -> dict[str, Any]:
    def fmt(v: int | None) -> str | None:
        return None if v is None else format_units(v, pay.precision)

    return {
        "id": row.id,
        "merchant": row.merchant_id,
        "version": row.version,
        "effective_from": row.effective_from.isoformat(),
        "issuer": pay.code,
        "mode": row.mode,
        "percent": row.percent,
        "fixed": fmt(row.fixed),
        "per_operation_cap": fmt(row.per_operation_cap),
        "monthly_cap": fmt(row.monthly_cap),
        "funding": row.funding,
        "operation_types": list(row.operation_types or []),
        "enabled": row.enabled,
        "note": row.note,
        "created_by": row.created_by,
        "proposal_id": row.proposal_id,
        "created_at": row.created_at.isoformat(),
    }
