"""The bank transfer file of approved redeem requests: an ISO 20022 pain.001.001.03 credit transfer
(the settlement writer, ``paymux.settlement.exports.pain001``) from our account
(``PAYMUX_SETTLEMENT_DEBTOR_*``) to the IBAN the customer gave, one transaction per request with its
payment order number (``RDM-…``) as the end-to-end id.

Writing the file marks its requests ``sent`` (batch = the file's MsgId, its time, who); the file of a
sent request is built again from those, so it downloads unchanged and nothing is marked twice.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.cashdesks.models import RedeemRequest
from paymux.cashdesks.redeem import _issuer_of, notify_customer
from paymux.cashdesks.service import Actor
from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.errors import Problem, not_found
from paymux.wallets.units import conflict

MAX_FILE = 500  # requests in one file


def check_debtor() -> None:
    """A 422 problem naming the ``PAYMUX_SETTLEMENT_DEBTOR_*`` settings a pain.001 file lacks."""
    from paymux.settlement.exports.checks import check_export
    from paymux.settlement.settings import SettlementSettings

    try:
        check_export(SettlementSettings(), "pain001", [])
    except Problem as e:
        raise Problem(422, e.slug, e.title, e.detail, **e.extra) from None


def build_file(rows: Sequence[RedeemRequest], tz: dt.tzinfo | zoneinfo.ZoneInfo) -> bytes:
    """The pain.001 of ``rows`` (all sent in the same batch, at the same time)."""
    from paymux.settlement.exports import pain001
    from paymux.settlement.models import PaymentOrder
    from paymux.settlement.settings import SettlementSettings

    first = rows[0]
    assert first.sent_at is not None and first.transfer_batch is not None
    orders = [
        PaymentOrder(
            number=r.order_number,
            currency=r.currency,
            amount=r.amount,
            payee={"name": r.beneficiary, "iban": r.iban},
            purpose=f"Redeem of e-money {r.order_number}",
        )
        for r in rows
    ]
    at = first.sent_at.astimezone(tz)
    return pain001.build(
        orders, SettlementSettings(), message_id=first.transfer_batch, execution_date=at.date(), created_at=at
    )


async def _batch(session: AsyncSession, batch: str) -> list[RedeemRequest]:
    q = select(RedeemRequest).where(RedeemRequest.transfer_batch == batch).order_by(RedeemRequest.id)
    return list((await session.scalars(q)).all())


async def _mark_sent(
    session: AsyncSession, rows: list[RedeemRequest], batch: str, actor: Actor
) -> list[RedeemRequest]:
    now = utcnow()
    for r in rows:
        r.state, r.transfer_batch, r.sent_at, r.sent_by, r.updated_at = "sent", batch, now, actor.name, now
    await session.flush()
    for r in rows:
        _, issuer = await _issuer_of(session, r)
        await notify_customer(session, r, issuer)
    return rows


async def file_of(
    session: AsyncSession, request_id: int, *, actor: Actor
) -> tuple[list[RedeemRequest], list[RedeemRequest]]:
    """The requests of the file of one bank-transfer request and those newly marked sent (none when
    it was sent before: its file again)."""
    check_debtor()
    r = await locked(session, RedeemRequest, request_id)
    if r is None or r.method != "bank_transfer":
        raise not_found(f"bank transfer redeem request {request_id}")
    if r.state == "sent" and r.transfer_batch:
        return await _batch(session, r.transfer_batch), []
    if r.state != "approved" or not r.order_number:
        raise conflict("not-approved", "Not approved", f"redeem request {r.id} is {r.state}")
    marked = await _mark_sent(session, [r], r.order_number, actor)
    return marked, marked


async def file_of_approved(session: AsyncSession, *, actor: Actor) -> list[RedeemRequest]:
    """Mark every approved, not yet sent bank-transfer request (up to ``MAX_FILE``) sent in one new
    batch and return them; a 409 problem when none waits."""
    check_debtor()
    q = (
        select(RedeemRequest)
        .where(RedeemRequest.method == "bank_transfer", RedeemRequest.state == "approved")
        .order_by(RedeemRequest.id)
        .limit(MAX_FILE)
        .with_for_update(skip_locked=True)
    )
    rows = [r for r in (await session.scalars(q)).all() if r.order_number]
    if not rows:
        raise conflict("nothing-to-send", "Nothing to send", "no approved bank transfer waits to be sent")
    batch = f"RDMB-{utcnow():%Y%m%d%H%M%S}-{rows[0].id}"[:35]
    return await _mark_sent(session, rows, batch, actor)
