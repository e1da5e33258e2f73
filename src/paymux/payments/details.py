"""Reads behind a payment's details (admin API and back office): its attempts and its postings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.ledger.models import Account, JournalEntry, Posting
from paymux.payments.models import PaymentAttempt


async def payment_attempts(session: AsyncSession, payment_id: int) -> Sequence[PaymentAttempt]:
    """The payment's delivery attempts, oldest first."""
    q = select(PaymentAttempt).where(PaymentAttempt.payment_id == payment_id).order_by(PaymentAttempt.id)
    return (await session.scalars(q)).all()


async def payment_postings(session: AsyncSession, payment_id: int) -> Sequence[Any]:
    """The payment's postings, entry by entry: (entry id, entry kind, created at, account kind,
    account owner id, amount, currency)."""
    q = (
        select(
            JournalEntry.id,
            JournalEntry.kind,
            JournalEntry.created_at,
            Account.kind,
            Account.owner_id,
            Posting.amount,
            Posting.currency,
        )
        .join(Posting, Posting.entry_id == JournalEntry.id)
        .join(Account, Account.id == Posting.account_id)
        .where(JournalEntry.payment_id == payment_id)
        .order_by(JournalEntry.id, Posting.id)
    )
    return (await session.execute(q)).all()
