"""Request and response bodies of the channel API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from paymux.api.params import Ident
from paymux.money import format_amount


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: Ident = Field(
        min_length=1, max_length=64, description="unique per channel; makes the call idempotent"
    )
    service: Ident = Field(min_length=1, max_length=64)
    account: Ident = Field(min_length=1, max_length=64)
    amount: Ident = Field(description='decimal string in major units, e.g. "150.00"', examples=["150.00"])
    currency: Ident = Field(min_length=3, max_length=3, examples=["RUB"])
    fields: dict[Ident, Ident] = Field(default_factory=dict, description="the service's extra fields")
    customer: Ident | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="the agent's own reference of the payer (optional): a payment of a periodic service"
        " naming its customer is reminded one period later (hidden subscriptions)",
        examples=["C-1001"],
    )


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: Ident = Field(min_length=1, max_length=64)
    account: Ident = Field(min_length=1, max_length=64)
    amount: Ident = Field(examples=["150.00"])
    currency: Ident = Field(min_length=3, max_length=3)
    fields: dict[Ident, Ident] = Field(default_factory=dict)


class CheckOut(BaseModel):
    result: str = Field(description="ok or rejected")
    code: str | None = None
    message: str | None = None
    provider: str | None = None
    info: dict[str, Any] = Field(default_factory=dict, description="what the provider told about the account")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="account details the provider gave for the payer to see (e.g. OSMP <fields>), as text",
    )
    fee: str | None = None
    total: str | None = None


class PaymentOut(BaseModel):
    id: int
    external_id: str
    status: str
    service: str
    account: str
    amount: str
    fee: str
    total: str
    currency: str
    provider: str
    provider_txn_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: dt.datetime
    final_at: dt.datetime | None = None


def payment_out(p: Any, service_code: str, provider_code: str) -> PaymentOut:
    cur = p.currency
    return PaymentOut(
        id=p.id,
        external_id=p.external_id,
        status=p.status,
        service=service_code,
        account=p.account,
        amount=format_amount(p.amount, cur),
        fee=format_amount(p.fee, cur),
        total=format_amount(p.total, cur),
        currency=cur,
        provider=provider_code,
        provider_txn_id=p.provider_txn_id,
        error_code=p.error_code,
        error_message=p.error_message,
        created_at=p.created_at,
        final_at=p.final_at,
    )
