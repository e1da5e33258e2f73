"""Channel API: check, pay, status, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from paymux.api.deps import ChannelDep, HubDep, ReadSessionDep, SessionDep
from paymux.api.params import Id
from paymux.auth.proxy import client_ip, proxy_settings
from paymux.payments import fastpath, service
from paymux.payments.checks import check_account
from paymux.payments.fastpath import payment_view
from paymux.payments.schemas import CheckIn, CheckOut, PaymentIn, PaymentOut

router = APIRouter(prefix="/api/v1", tags=["channel"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid key or signature (problem+json)"},
    403: {"description": "channel disabled (problem+json)"},
    422: {"description": "invalid request (problem+json)"},
}


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
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PaymentIn.model_json_schema()}},
        }
    },
)
async def create_payment(request: Request) -> Response:
    """Accept a payment. Idempotent by ``external_id`` within the channel.

    Served by ``paymux.payments.fastpath`` ahead of the framework; this route documents it and
    answers only when the app runs without that middleware.
    """

    def address() -> str:
        return client_ip(request, proxy_settings(request.app))

    try:
        status, out = await fastpath.create_payment(
            request.app.state.hub, request.headers, await request.body(), address
        )
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_url=False)) from None
    return Response(out.model_dump_json(), status_code=status, media_type="application/json")


@router.get("/payments/{payment_id}", response_model=PaymentOut, responses=PROBLEMS)
async def get_payment(
    payment_id: Id, channel: ChannelDep, hub: HubDep, session: ReadSessionDep
) -> PaymentOut:
    return await payment_view(hub, await service.get_payment(session, channel.id, payment_id))


@router.get("/payments/by-external-id/{external_id:path}", response_model=PaymentOut, responses=PROBLEMS)
async def get_payment_by_external_id(
    external_id: str, channel: ChannelDep, hub: HubDep, session: ReadSessionDep
) -> PaymentOut:
    """The payment of ``external_id``, percent-encoded as a path segment (it may hold ``/``)."""
    return await payment_view(hub, await service.get_by_external_id(session, channel.id, external_id))


@router.post("/payments/{payment_id}/cancel", response_model=PaymentOut, responses=PROBLEMS)
async def cancel_payment(payment_id: Id, channel: ChannelDep, hub: HubDep, session: SessionDep) -> PaymentOut:
    """Cancel a payment that has not been sent to a provider yet."""
    payment = await service.cancel(hub, session, channel.id, payment_id)
    await session.commit()
    return await payment_view(hub, payment)


@router.post("/checks", response_model=CheckOut, responses=PROBLEMS)
async def check(body: CheckIn, channel: ChannelDep, hub: HubDep) -> CheckOut:
    """Ask the routed provider whether the account can be paid."""
    return await check_account(hub, channel, body)
