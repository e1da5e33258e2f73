"""The inbound exchanges kept with payments: what a payment system sent and what we answered."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.db.base import utcnow
from paymux.gateways.models import InboundExchange, InboundGateway
from paymux.masking import mask_secrets
from paymux.runtime import Hub

log = logging.getLogger("paymux.gateways")


def masked_params(params: dict[str, str], secret: frozenset[str]) -> dict[str, str]:
    """The request's parameters as kept: the protocol's ``secret`` ones and secret-looking ones masked."""
    masked: dict[str, str] = mask_secrets(params, secret)
    return masked


async def record(hub: Hub, **values: Any) -> None:
    """Store one exchange in its own short transaction. A failure is logged, never raised: the
    answer (and the payment) must not depend on keeping the record."""
    try:
        async with hub.sessions() as session:
            session.add(InboundExchange(created_at=utcnow(), **values))
            await session.commit()
    except Exception:
        log.exception("could not record an inbound exchange (gateway %s)", values.get("gateway_id"))


async def for_payment(session: AsyncSession, payment_id: int) -> list[dict[str, Any]]:
    """The payment's inbound exchanges, oldest first (the admin API's payment details)."""
    rows = (
        await session.execute(
            select(InboundExchange, InboundGateway.code)
            .join(InboundGateway, InboundGateway.id == InboundExchange.gateway_id)
            .where(InboundExchange.payment_id == payment_id)
            .order_by(InboundExchange.id)
        )
    ).all()
    return [
        {
            "gateway": code,
            "command": e.command,
            "txn_id": e.txn_id,
            "method": e.method,
            "remote_addr": e.remote_addr,
            "request": e.request,
            "response": e.response,
            "result": e.result,
            "http_status": e.http_status,
            "elapsed_ms": e.elapsed_ms,
            "at": e.created_at,
        }
        for e, code in rows
    ]
