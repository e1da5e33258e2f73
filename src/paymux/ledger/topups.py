"""Top-ups of prepaid providers' deposits (idempotent by reference)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.errors import Problem, invalid, not_found
from paymux.ledger.models import TopUp
from paymux.ledger.service import SYSTEM, AccountKey, Line, post_entry
from paymux.money import check_currency, format_amount
from paymux.payments.postings import provider_account
from paymux.runtime import Hub


async def record_topup(
    hub: Hub,
    session: AsyncSession,
    provider_code: str,
    currency: str,
    amount: int,
    *,
    reference: str,
    actor: str,
) -> tuple[TopUp, bool]:
    """Record money sent to a provider's deposit; a repeated reference returns the first record.

    Returns the top-up and whether it was created. The caller commits.
    """
    snap = await hub.catalog.get()
    provider = snap.providers_by_code.get(provider_code)
    if provider is None:
        raise not_found(f"provider {provider_code!r}")
    if provider.settlement != "prepaid":
        raise invalid("not-prepaid", f"provider {provider_code} is postpaid: it has no deposit to top up")
    check_currency(currency)
    if amount <= 0:
        raise invalid("invalid-amount", "a top-up amount must be greater than zero")
    existing = await session.scalar(
        select(TopUp).where(TopUp.provider_id == provider.id, TopUp.reference == reference)
    )
    if existing is not None:
        if existing.amount != amount or existing.currency != currency:
            raise Problem(
                409,
                "idempotency-conflict",
                "Reference already used",
                f"top-up {reference!r} of {provider_code} was recorded as "
                f"{format_amount(existing.amount, existing.currency)} {existing.currency}",
            )
        return existing, False
    key = provider_account(provider.id, provider.settlement, currency)
    entry_id = await post_entry(
        session,
        hub.accounts,
        "topup",
        [Line(key, amount), Line(AccountKey("bank", SYSTEM, currency), -amount)],
        memo=f"top-up {reference} of {provider_code}",
    )
    topup = TopUp(
        provider_id=provider.id,
        currency=currency,
        amount=amount,
        reference=reference,
        entry_id=entry_id,
        created_by=actor,
    )
    session.add(topup)
    await session.flush()
    return topup, True
