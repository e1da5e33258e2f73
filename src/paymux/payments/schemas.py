"""Request and response bodies of the channel API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from paymux.money import format_amount


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: StrictStr = Field(
        min_length=1, max_length=64, description="unique per channel; makes the call idempotent"
    )
    service: StrictStr = Field(min_length=1, max_length=64)
    account: StrictStr = Field(min_length=1, max_length=64)
    amount: StrictStr = Field(description='decimal string in major units, e.g. "150.00"', examples=["150.00"])
    currency: StrictStr = Field(min_length=3, max_length=3, examples=["RUB"])
    fields: dict[StrictStr, StrictStr] = Field(default_factory=dict, description="the service's extra fields")


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: StrictStr = Field(min_length=1, max_length=64)
    account: StrictStr = Field(min_length=1, max_length=64)
    amount: StrictStr = Field(examples=["150.00"])
    currency: StrictStr = Field(min_length=3, max_length=3)
    fields: dict[StrictStr, StrictStr] = Field(default_factory=dict)


class CheckOut(BaseModel):
    result: str = Field(description="ok or rejected")
    code: str | None = None
    message: str | None = None
    provider: str | None = None
    info: dict[str, Any] = Field(default_factory=dict, description="what the provider told about the account")
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
