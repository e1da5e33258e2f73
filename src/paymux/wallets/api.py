"""The customer API of wallets (``/api/v1/wallet/...``).

Two kinds of caller:

* a **channel** (its API key, as on the rest of ``/api/v1``) signs customers up, mints their
  short-lived tokens and tops their wallets up with money it received;
* a **customer** (``Authorization: Bearer pmxw...``, a token its channel minted) lists and opens its
  wallets, reads balances and history, transfers, exchanges and withdraws, pays merchants and the
  hub's services; a merchant refunds the payments it received.

Every write of money carries an ``Idempotency-Key`` header (1 to 100 printable ASCII characters,
unique per channel): the same key with the same request answers as the first time; with another
request, 409. Errors are RFC 9457 problems; a refusal by a limit names the limit.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from sqlalchemy import select

from paymux.api.app import problem_response
from paymux.api.deps import ChannelDep, HubDep, ReadSessionDep, SessionDep, bearer_token
from paymux.api.params import MAX_ID, Id, Ident
from paymux.errors import Problem, invalid, not_found, unauthorized
from paymux.ledger.models import JournalEntry, Posting
from paymux.wallets import hub_payments, service
from paymux.wallets.models import Issuer, Wallet, WalletCustomer, WalletOperation
from paymux.wallets.statement import statement_answer
from paymux.wallets.tokens import WalletSettings, mint, signing_key, verify
from paymux.wallets.units import format_units, parse_units

router = APIRouter(prefix="/api/v1/wallet", tags=["wallet"])

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, invalid or expired key or customer token (problem+json)"},
    403: {"description": "the customer or a wallet is blocked, or the channel is disabled (problem+json)"},
    404: {"description": "no such customer, wallet, issuer or operation (problem+json)"},
    409: {"description": "the Idempotency-Key was used for another request (problem+json)"},
    422: {"description": "invalid request, a limit, insufficient funds, the emission limit (problem+json)"},
}
KEY = re.compile(r"^[\x21-\x7e]{1,100}\Z")
REF = r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,99}$"
EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,189}$"
PHONE = r"^\+?[0-9]{5,20}$"
AMOUNT = Annotated[StrictStr, Field(max_length=24, examples=["150.00"])]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignupIn(Strict):
    external_ref: Annotated[StrictStr, Field(pattern=REF, description="the channel's own id of the customer")]
    kind: Literal["individual", "merchant"] = "individual"
    identification: Literal["unidentified", "identified"] = "unidentified"
    name: Annotated[Ident, Field(max_length=200)] | None = None
    email: Annotated[StrictStr, Field(pattern=EMAIL, max_length=254)] | None = None
    phone: Annotated[StrictStr, Field(pattern=PHONE)] | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "external_ref": "client-1042",
                    "kind": "individual",
                    "identification": "identified",
                    "name": "Ion Popescu",
                    "email": "ion@example.md",
                    "phone": "+37369123456",
                }
            ]
        },
    )


class TopupIn(Strict):
    customer: Annotated[StrictStr, Field(pattern=REF, description="the customer's external_ref")]
    issuer: Annotated[StrictStr, Field(max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    amount: AMOUNT

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"customer": "client-1042", "issuer": "rub", "amount": "500.00"}]},
    )


class OpenIn(Strict):
    issuer: Annotated[StrictStr, Field(max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"issuer": "rub"}]})


class TransferIn(Strict):
    from_wallet: Id
    to_wallet: Id
    amount: AMOUNT

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"from_wallet": 12, "to_wallet": 31, "amount": "25.50"}]},
    )


class WithdrawalIn(Strict):
    from_wallet: Id
    amount: AMOUNT

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"from_wallet": 12, "amount": "100.00"}]}
    )


class MerchantPaymentIn(Strict):
    from_wallet: Id
    to_wallet: Annotated[int, Field(ge=1, le=MAX_ID, description="the merchant's wallet")]
    amount: AMOUNT

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"from_wallet": 12, "to_wallet": 40, "amount": "99.90"}]},
    )


class RefundIn(Strict):
    operation: Annotated[int, Field(ge=1, le=MAX_ID, description="the merchant payment to refund")]
    amount: AMOUNT | None = Field(default=None, description="what to give back; omitted: the whole payment")

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"operation": 815, "amount": "10.00"}]}
    )


class ServicePaymentIn(Strict):
    from_wallet: Id
    service: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
    account: Annotated[Ident, Field(min_length=1, max_length=64)]
    amount: AMOUNT
    fields: dict[Annotated[Ident, Field(max_length=64)], Annotated[Ident, Field(max_length=200)]] = Field(
        default_factory=dict, max_length=20, description="the service's extra fields"
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"from_wallet": 12, "service": "topup", "account": "0791234567", "amount": "100.00"}]
        },
    )


IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        description="unique per channel; the same key and request answer as the first time",
        examples=["3f1c2a9e-topup-0001"],
    ),
]


def _key(value: str) -> str:
    if not KEY.match(value):
        raise invalid("invalid-idempotency-key", "Idempotency-Key is 1 to 100 printable ASCII characters")
    return value


# --- customer authentication --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerRef:
    """The customer a valid token names: enough for the operations, which lock the customer's row
    and check its status themselves (so the writes read no customer before their transaction)."""

    id: int
    channel_id: int


async def token_customer(request: Request, hub: HubDep) -> CustomerRef:
    """The customer of a valid, unexpired token of an enabled channel (no database read)."""
    token = bearer_token(request.headers.get("authorization"))
    key = await signing_key(hub, WalletSettings())
    claims = verify(key, token)
    if claims is None:
        raise unauthorized("Invalid customer token", "the customer token is invalid or has expired")
    snap = await hub.catalog.get()
    channel = snap.channels.get(claims.channel_id)
    if channel is None or not channel.enabled:
        raise unauthorized("Invalid customer token", "the token's channel is disabled or gone")
    return CustomerRef(claims.customer_id, claims.channel_id)


async def current_customer(request: Request, hub: HubDep) -> WalletCustomer:
    ref = await token_customer(request, hub)
    async with hub.read_sessions() as session:
        customer = await session.get(WalletCustomer, ref.id)
    if customer is None or customer.channel_id != ref.channel_id:
        raise unauthorized("Invalid customer token", "the token's customer is gone")
    return customer


CustomerDep = Annotated[WalletCustomer, Depends(current_customer)]
# the writes of money: the token is enough (see CustomerRef)
PayerDep = Annotated[CustomerRef, Depends(token_customer)]


# --- views --------------------------------------------------------------------------------------------


def customer_view(c: WalletCustomer) -> dict[str, Any]:
    return {
        "id": c.id,
        "external_ref": c.external_ref,
        "kind": c.kind,
        "identification": c.identification,
        "status": c.status,
        "name": c.name,
        "email": c.email,
        "phone": c.phone,
        "created_at": c.created_at.isoformat(),
    }


async def wallet_view(session: Any, w: Wallet, issuer: Issuer | None = None) -> dict[str, Any]:
    issuer = issuer or await session.get(Issuer, w.issuer_id)
    assert issuer is not None
    balance = await service.account_balance(session, w.account_id)
    return {
        "id": w.id,
        "issuer": issuer.code,
        "currency": issuer.currency,
        "status": w.status,
        "balance": format_units(balance, issuer.precision),
        "available": format_units(balance + w.overdraft, issuer.precision),
        "overdraft": format_units(w.overdraft, issuer.precision),
        "created_at": w.created_at.isoformat(),
    }


async def operation_response(session: Any, op: WalletOperation, created: bool) -> JSONResponse:
    """201/200 for a done operation (first time/again), 202 waiting for review, the problem if failed."""
    if op.state in ("failed", "rejected") and op.problem:
        body = dict(op.problem)
        body["operation_id"] = op.id
        return problem_response(int(body.get("status", 422)), body)
    view = service.operation_view(op, await service.precisions_of(session, op))
    if op.state == "rejected":
        return problem_response(
            422,
            {
                "type": "https://paymux.dev/problems/operation-rejected",
                "title": "Operation rejected",
                "status": 422,
                "detail": f"operation {op.id} was rejected on review",
                "operation_id": op.id,
            },
        )
    status = 202 if op.state == "pending_review" else (201 if created else 200)
    return JSONResponse(view, status_code=status)


async def wallet_history(session: Any, w: Wallet, cursor: int | None, limit: int) -> dict[str, Any]:
    """A page of the wallet's postings, newest first, with the operation of each."""
    issuer = await session.get(Issuer, w.issuer_id)
    assert issuer is not None
    q = (
        select(
            Posting.id,
            Posting.amount,
            Posting.created_at,
            JournalEntry.kind,
            WalletOperation.id,
            WalletOperation.type,
        )
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .outerjoin(WalletOperation, WalletOperation.entry_id == Posting.entry_id)
        .where(Posting.account_id == w.account_id)
        .order_by(Posting.id.desc())
        .limit(limit + 1)
    )
    if cursor is not None:
        q = q.where(Posting.id < cursor)
    rows = (await session.execute(q)).all()
    items = [
        {
            "id": pid,
            "amount": format_units(amount, issuer.precision),
            "currency": issuer.currency,
            "operation_id": op_id,
            "type": op_type or kind,
            "at": at.isoformat(),
        }
        for pid, amount, at, kind, op_id, op_type in rows[:limit]
    ]
    nxt = rows[limit - 1][0] if len(rows) > limit else None
    return {"items": items, "next_cursor": nxt}


# --- channel routes -----------------------------------------------------------------------------------


@router.post("/customers", status_code=201, summary="Sign a customer up", responses=PROBLEMS)
async def sign_up(body: SignupIn, channel: ChannelDep, session: SessionDep) -> JSONResponse:
    """Sign up the customer the channel knows as ``external_ref`` (201); the same reference again
    answers with the customer as it is (200)."""
    c, created = await service.signup(
        session,
        channel_id=channel.id,
        agent_id=channel.agent_id,
        external_ref=body.external_ref,
        kind=body.kind,
        identification=body.identification,
        name=body.name,
        email=body.email,
        phone=body.phone,
    )
    await session.commit()
    return JSONResponse(customer_view(c), status_code=201 if created else 200)


@router.post(
    "/customers/{external_ref}/tokens", status_code=201, summary="Mint a customer token", responses=PROBLEMS
)
async def mint_token(external_ref: str, channel: ChannelDep, hub: HubDep) -> dict[str, Any]:
    """A short-lived bearer token for the customer's own calls (15 minutes by default)."""
    ref = _ref(external_ref)
    async with hub.read_sessions() as session:
        c = await service.customer_by_ref(session, channel.id, ref)
    if c.status != "active":
        raise service.blocked_customer(c)
    settings = WalletSettings()
    token, expires = mint(await signing_key(hub, settings), c.id, channel.id, settings.token_ttl_seconds)
    return {
        "token": token,
        "token_type": "Bearer",
        "expires_in": settings.token_ttl_seconds,
        "expires_at": expires,
    }


@router.post(
    "/topups",
    summary="Top a customer's wallet up",
    responses={201: {"description": "done"}, 202: {"description": "held for review"}, **PROBLEMS},
)
async def topup(
    body: TopupIn, channel: ChannelDep, session: SessionDep, hub: HubDep, idempotency_key: IdempotencyKey
) -> JSONResponse:
    """Emit e-money into the customer's wallet of ``issuer`` (opened if it has none) against money
    the channel received; the issuer's top-up fee, if any, is taken from the amount."""
    c = await service.customer_by_ref(session, channel.id, body.customer)
    issuer = await service.issuer_by_code(session, body.issuer)
    amount = parse_units(body.amount, issuer.precision)
    w, _ = await service.open_wallet(session, hub.accounts, c, issuer)
    req = service.OperationRequest(channel.id, _key(idempotency_key), "topup", c.id, amount, None, w.id)
    return await _run(session, hub, req)


async def _run(session: Any, hub: Any, req: service.OperationRequest) -> JSONResponse:
    try:
        op, created = await service.execute(session, hub.accounts, req)
        response = await operation_response(session, op, created)  # read in the same transaction
    except Problem:
        await session.rollback()
        raise
    await session.commit()
    return response


def _ref(value: str) -> str:
    if not re.match(REF, value):
        raise not_found(f"customer {value[:100]!r}")
    return value


# --- customer routes ----------------------------------------------------------------------------------


@router.get("/me", summary="The customer", responses=PROBLEMS)
async def me(customer: CustomerDep) -> dict[str, Any]:
    return customer_view(customer)


@router.get("/wallets", summary="The customer's wallets", responses=PROBLEMS)
async def list_wallets(customer: CustomerDep, session: ReadSessionDep) -> dict[str, Any]:
    rows = (
        await session.scalars(select(Wallet).where(Wallet.customer_id == customer.id).order_by(Wallet.id))
    ).all()
    return {"items": [await wallet_view(session, w) for w in rows]}


@router.post("/wallets", status_code=201, summary="Open a wallet", responses=PROBLEMS)
async def open_wallet(body: OpenIn, customer: CustomerDep, session: SessionDep, hub: HubDep) -> JSONResponse:
    """Open the customer's wallet in ``issuer``'s unit (201), or answer with the one it has (200)."""
    issuer = await service.issuer_by_code(session, body.issuer)
    c = await session.get(WalletCustomer, customer.id)
    assert c is not None
    w, created = await service.open_wallet(session, hub.accounts, c, issuer)
    await session.commit()
    return JSONResponse(await wallet_view(session, w, issuer), status_code=201 if created else 200)


async def _own_wallet(session: Any, customer: WalletCustomer | CustomerRef, wallet_id: int) -> Wallet:
    w = await session.get(Wallet, wallet_id)
    if w is None or w.customer_id != customer.id:
        raise not_found(f"wallet {wallet_id}")
    return w


@router.get("/wallets/{wallet_id}", summary="A wallet and its balance", responses=PROBLEMS)
async def get_wallet(wallet_id: Id, customer: CustomerDep, session: ReadSessionDep) -> dict[str, Any]:
    return await wallet_view(session, await _own_wallet(session, customer, wallet_id))


@router.get("/wallets/{wallet_id}/history", summary="A wallet's history", responses=PROBLEMS)
async def history(
    wallet_id: Id,
    customer: CustomerDep,
    session: ReadSessionDep,
    cursor: Annotated[int, Query(ge=1, le=MAX_ID, description="the next_cursor of the previous page")]
    | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The wallet's postings, newest first; pass ``next_cursor`` as ``cursor`` for the next page."""
    return await wallet_history(session, await _own_wallet(session, customer, wallet_id), cursor, limit)


@router.get(
    "/wallets/{wallet_id}/statement",
    summary="A wallet's statement for a period (JSON or Excel)",
    responses={**PROBLEMS, 200: {"description": "JSON, or an xlsx file with format=xlsx"}},
)
async def statement(
    wallet_id: Id,
    customer: CustomerDep,
    session: ReadSessionDep,
    first: Annotated[dt.date, Query(alias="from", description="the first day (in timezone)")],
    last: Annotated[dt.date, Query(alias="to", description="the last day (in timezone)")],
    timezone: Annotated[
        str | None, Query(max_length=64, description="IANA timezone of the days (UTC)")
    ] = None,
    format: Annotated[Literal["json", "xlsx"], Query()] = "json",
) -> Any:
    """Opening balance, every posting with its operation and the running balance, totals in and out,
    closing balance (at most 366 days; amounts in the wallet's unit)."""
    w = await _own_wallet(session, customer, wallet_id)
    return await statement_answer(session, w, first, last, timezone, format)


@router.get("/operations/{operation_id}", summary="An operation", responses=PROBLEMS)
async def get_operation(operation_id: Id, customer: CustomerDep, session: ReadSessionDep) -> dict[str, Any]:
    op = await session.get(WalletOperation, operation_id)
    if op is None or op.customer_id != customer.id:
        raise not_found(f"operation {operation_id}")
    return await full_view(session, op)


async def full_view(session: Any, op: WalletOperation) -> dict[str, Any]:
    """An operation with its problem, and a service payment with its payment."""
    view = service.operation_view(op, await service.precisions_of(session, op))
    if op.problem:
        view["problem"] = op.problem
    if op.type == "service_payment":
        view["service_payment"] = await hub_payments.job_view(session, op.id)
    return view


async def _customer_op(
    session: Any,
    hub: Any,
    customer: CustomerRef,
    key: str,
    op_type: str,
    from_id: int,
    to_id: int | None,
    text: str,
) -> JSONResponse:
    w = await _own_wallet(session, customer, from_id)
    issuer = await session.get(Issuer, w.issuer_id)
    assert issuer is not None
    amount = parse_units(text, issuer.precision)
    req = service.OperationRequest(
        customer.channel_id, _key(key), op_type, customer.id, amount, from_id, to_id
    )
    return await _run(session, hub, req)


OP_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"description": "done"},
    202: {"description": "held for review by a limit"},
    **PROBLEMS,
}


@router.post("/transfers", summary="Transfer to another wallet (P2P)", responses=OP_RESPONSES)
async def transfer(
    body: TransferIn, customer: PayerDep, session: SessionDep, hub: HubDep, idempotency_key: IdempotencyKey
) -> JSONResponse:
    """Move ``amount`` from the customer's wallet to another wallet of the same issuer; the
    issuer's P2P fee is charged on top, to the sender."""
    return await _customer_op(
        session, hub, customer, idempotency_key, "p2p", body.from_wallet, body.to_wallet, body.amount
    )


@router.post("/exchanges", summary="Exchange between two of the customer's wallets", responses=OP_RESPONSES)
async def exchange(
    body: TransferIn, customer: PayerDep, session: SessionDep, hub: HubDep, idempotency_key: IdempotencyKey
) -> JSONResponse:
    """Sell ``amount`` of the source wallet's unit for the destination wallet's, at the system rate
    less the destination issuer's spread, rounded down to a whole minor unit."""
    return await _customer_op(
        session, hub, customer, idempotency_key, "exchange", body.from_wallet, body.to_wallet, body.amount
    )


@router.post("/withdrawals", summary="Withdraw (redeem) from a wallet", responses=OP_RESPONSES)
async def withdraw(
    body: WithdrawalIn,
    customer: PayerDep,
    session: SessionDep,
    hub: HubDep,
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    """Redeem ``amount`` from the wallet (paid out by the channel); the withdrawal fee on top."""
    return await _customer_op(
        session, hub, customer, idempotency_key, "withdrawal", body.from_wallet, None, body.amount
    )


@router.post("/payments", summary="Pay a merchant", responses=OP_RESPONSES)
async def pay_merchant(
    body: MerchantPaymentIn,
    customer: PayerDep,
    session: SessionDep,
    hub: HubDep,
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    """Pay ``amount`` to a merchant's wallet of the same issuer (``merchant_payment``); the
    merchant's fee (the issuer's tariff rule for the type) is taken from what the merchant gets."""
    return await _customer_op(
        session,
        hub,
        customer,
        idempotency_key,
        "merchant_payment",
        body.from_wallet,
        body.to_wallet,
        body.amount,
    )


async def refund_request(
    session: Any, original_id: int, merchant_id: int, channel_id: int, key: str, text: str | None
) -> service.OperationRequest:
    """The refund of merchant payment ``original_id`` by its merchant (404 if it is not its)."""
    original = await session.get(WalletOperation, original_id)
    merchant_w = await session.get(Wallet, original.to_wallet_id) if original is not None else None
    if original is None or original.type != "merchant_payment" or merchant_w is None:
        raise not_found(f"merchant payment {original_id}")
    if merchant_w.customer_id != merchant_id:
        raise not_found(f"merchant payment {original_id}")
    issuer = await session.get(Issuer, original.issuer_id)
    assert issuer is not None
    amount = original.amount if text is None else parse_units(text, issuer.precision)
    return service.OperationRequest(
        channel_id,
        _key(key),
        "refund",
        merchant_id,
        amount,
        merchant_w.id,
        original.from_wallet_id,
        original.id,
    )


@router.post("/refunds", summary="Refund a payment received (merchant)", responses=OP_RESPONSES)
async def refund(
    body: RefundIn, customer: PayerDep, session: SessionDep, hub: HubDep, idempotency_key: IdempotencyKey
) -> JSONResponse:
    """Give back all (``amount`` omitted) or part of a merchant payment the customer received;
    refunds of one payment never add up to more than it (``422 refund-exceeds-payment``)."""
    req = await refund_request(
        session, body.operation, customer.id, customer.channel_id, idempotency_key, body.amount
    )
    return await _run(session, hub, req)


@router.post(
    "/service-payments",
    summary="Pay a hub service from a wallet",
    responses={201: {"description": "held, the payment on its way"}, **OP_RESPONSES},
)
async def pay_service(
    body: ServicePaymentIn,
    customer: PayerDep,
    session: SessionDep,
    hub: HubDep,
    idempotency_key: IdempotencyKey,
) -> JSONResponse:
    """Pay a service of the hub's catalog (as the channel API's ``POST /api/v1/payments``) from an
    e-money wallet in the service's currency: the total (amount plus the hub's fee) is held now
    (``processing``), the payment accepted and delivered; ``done`` when it succeeds, else ``failed``
    with the wallet refunded. Poll ``GET /operations/{id}``."""
    try:
        op, created = await hub_payments.request(
            hub,
            session,
            customer,
            key=_key(idempotency_key),
            from_wallet_id=body.from_wallet,
            service_code=body.service,
            account=body.account,
            amount_text=body.amount,
            fields=dict(body.fields),
        )
        if op.state in ("processing", "done"):
            response = JSONResponse(await full_view(session, op), status_code=201 if created else 200)
        else:
            response = await operation_response(session, op, created)
    except Problem:
        await session.rollback()
        raise
    await session.commit()
    return response
