"""The customer's redeem requests (``/api/v1/wallet/redeem-requests``): with the customer token, ask to
take e-money out in cash (at a desk) or by bank transfer, and follow the request."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field, StrictStr
from sqlalchemy import select

from paymux.api.deps import HubDep, ReadSessionDep, SessionDep
from paymux.api.params import Id, Ident
from paymux.cashdesks import redeem
from paymux.cashdesks.models import RedeemRequest
from paymux.errors import Problem, not_found
from paymux.wallets.api import AMOUNT, PROBLEMS, CustomerDep, IdempotencyKey, Strict, _key
from paymux.wallets.models import Issuer, Wallet
from paymux.wallets.units import parse_units

router = APIRouter(prefix="/api/v1/wallet", tags=["wallet"])


class RedeemIn(Strict):
    from_wallet: Id
    amount: AMOUNT
    method: Literal["cash", "bank_transfer"]
    iban: Annotated[StrictStr, Field(pattern=r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")] | None = None
    beneficiary: Annotated[Ident, Field(min_length=1, max_length=140)] | None = None


async def _precision(session: Any, wallet_id: int) -> int:
    p = await session.scalar(
        select(Issuer.precision).join(Wallet, Wallet.issuer_id == Issuer.id).where(Wallet.id == wallet_id)
    )
    return int(p or 0)


@router.post(
    "/redeem-requests", status_code=201, summary="Ask to redeem e-money (cash or bank)", responses=PROBLEMS
)
async def create_request(
    body: RedeemIn, customer: CustomerDep, session: SessionDep, hub: HubDep, idempotency_key: IdempotencyKey
) -> JSONResponse:
    """The amount is held until an accountant approves (then paid in cash at a desk, or sent by bank
    transfer) or cancels the request (given back)."""
    w = await session.get(Wallet, body.from_wallet)
    if w is None or w.customer_id != customer.id:
        raise not_found(f"wallet {body.from_wallet}")
    precision = await _precision(session, w.id)
    amount = parse_units(body.amount, precision)
    try:
        r, created = await redeem.create(
            session,
            hub.accounts,
            customer=customer,
            idempotency_key=_key(idempotency_key),
            wallet_id=w.id,
            method=body.method,
            amount=amount,
            iban=body.iban,
            beneficiary=body.beneficiary,
        )
    except Problem:
        await session.rollback()
        raise
    await session.commit()
    return JSONResponse(redeem.view(r, precision), status_code=201 if created else 200)


@router.get("/redeem-requests", summary="The customer's redeem requests", responses=PROBLEMS)
async def list_requests(customer: CustomerDep, session: ReadSessionDep) -> dict[str, Any]:
    rows = (
        await session.scalars(
            select(RedeemRequest)
            .where(RedeemRequest.customer_id == customer.id)
            .order_by(RedeemRequest.id.desc())
            .limit(100)
        )
    ).all()
    return {"items": [redeem.view(r, await _precision(session, r.wallet_id)) for r in rows]}


@router.get("/redeem-requests/{request_id}", summary="A redeem request", responses=PROBLEMS)
async def get_request(request_id: Id, customer: CustomerDep, session: ReadSessionDep) -> dict[str, Any]:
    r = await session.get(RedeemRequest, request_id)
    if r is None or r.customer_id != customer.id:
        raise not_found(f"redeem request {request_id}")
    return redeem.view(r, await _precision(session, r.wallet_id))
