"""Channel API: check, pay, status, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from paymux.api.deps import ChannelDep, HubDep, SessionDep
from paymux.errors import not_found
from paymux.payments import service
from paymux.payments.checks import check_account
from paymux.payments.schemas import CheckIn, CheckOut, PaymentIn, PaymentOut, payment_out
from paymux.payments.service import PaymentRecord
from paymux.runtime import Hub

router = APIRouter(prefix="/api/v1", tags=["channel"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid key or signature (problem+json)"},
    403: {"description": "channel disabled (problem+json)"},
    422: {"description": "invalid request (problem+json)"},
}


async def _out(hub: Hub, p: PaymentRecord) -> PaymentOut:
    snap = await hub.catalog.get()
    svc = snap.services_by_id.get(p.service_id)
    prov = snap.providers.get(p.provider_id)
    if svc is None or prov is None:
        hub.catalog_changed()
        snap = await hub.catalog.get()
        svc, prov = snap.services_by_id.get(p.service_id), snap.providers.get(p.provider_id)
    if svc is None or prov is None:
        raise not_found(f"catalog entry of payment {p.id}")
    return payment_out(p, svc.code, prov.code)


@router.post(
    "/payments",
    status_code=201,
    response_model=PaymentOut,
    responses={
        200: {"model": PaymentOut, "description": "the same request again: the existing payment"},
        409: {"description": "external_id already used with a different body"},
        503: {"description": "no provider can take the payment now"},
        **PROBLEMS,
    },
)
async def create_payment(
    body: PaymentIn, channel: ChannelDep, hub: HubDep, session: SessionDep, response: Response
) -> PaymentOut:
    """Accept a payment. Idempotent by ``external_id`` within the channel."""
    payment, created = await service.accept(hub, session, channel, body)
    if created:
        await session.commit()
    else:
        response.status_code = 200
    return await _out(hub, payment)


@router.get("/payments/{payment_id}", response_model=PaymentOut, responses=PROBLEMS)
async def get_payment(payment_id: int, channel: ChannelDep, hub: HubDep, session: SessionDep) -> PaymentOut:
    return await _out(hub, await service.get_payment(session, channel.id, payment_id))


@router.get("/payments/by-external-id/{external_id}", response_model=PaymentOut, responses=PROBLEMS)
async def get_payment_by_external_id(
    external_id: str, channel: ChannelDep, hub: HubDep, session: SessionDep
) -> PaymentOut:
    return await _out(hub, await service.get_by_external_id(session, channel.id, external_id))


@router.post("/payments/{payment_id}/cancel", response_model=PaymentOut, responses=PROBLEMS)
async def cancel_payment(
    payment_id: int, channel: ChannelDep, hub: HubDep, session: SessionDep
) -> PaymentOut:
    """Cancel a payment that has not been sent to a provider yet."""
    payment = await service.cancel(hub, session, channel.id, payment_id)
    await session.commit()
    return await _out(hub, payment)


@router.post("/checks", response_model=CheckOut, responses=PROBLEMS)
async def check(body: CheckIn, channel: ChannelDep, hub: HubDep) -> CheckOut:
    """Ask the routed provider whether the account can be paid."""
    return await check_account(hub, channel, body)
