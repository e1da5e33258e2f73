"""Top-ups of prepaid providers' deposits (idempotent by reference)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
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
    found = await _recorded(session, provider.id, provider_code, reference, amount, currency)
    if found is not None:
        return found, False
    key = provider_account(provider.id, provider.settlement, currency)
    topup = TopUp(
        provider_id=provider.id, currency=currency, amount=amount, reference=reference, created_by=actor
    )
    try:
        async with session.begin_nested():
            topup.entry_id = await post_entry(
                session,
                hub.accounts,
                "topup",
                [Line(key, amount), Line(AccountKey("bank", SYSTEM, currency), -amount)],
                memo=f"top-up {reference} of {provider_code}",
            )
            session.add(topup)
            await session.flush()
    except IntegrityError:
        # the same reference recorded at this moment by another request, committed since: its entry
        # stands and this one's is rolled back, answered as a repeat
        if topup in session:
            session.expunge(topup)
        found = await _recorded(session, provider.id, provider_code, reference, amount, currency)
        if found is None:
            raise
        return found, False
    return topup, True


async def _recorded(
    session: AsyncSession, provider_id: int, provider_code: str, reference: str, amount: int, currency: str
) -> TopUp | None:
    """The top-up already recorded under ``reference`` (409 if it was of another amount), or None."""
    existing = await session.scalar(
        select(TopUp).where(TopUp.provider_id == provider_id, TopUp.reference == reference)
    )
    if existing is not None and (existing.amount != amount or existing.currency != currency):
        raise Problem(
            409,
            "idempotency-conflict",
            "Reference already used",
            f"top-up {reference!r} of {provider_code} was recorded as "
            f"{format_amount(existing.amount, existing.currency)} {existing.currency}",
        )
    return existing
