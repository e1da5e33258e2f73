"""Request and response bodies of the recurring channel API and its admin API.

Amounts cross the API as decimal strings in major units with their currency (as in the payments API);
dates are the customer's local calendar dates (ISO), instants are UTC with the customer's timezone
given beside them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from paymux.api.params import Id, Ident

REFERENCE_PATTERN = r"^[ -.0-~]{1,64}$"  # printable ASCII but "/"
Reference = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=REFERENCE_PATTERN,
        description="the agent's own reference of the customer (1..64 printable ASCII characters but /)",
        examples=["CUST-0001"],
    ),
]

Key = Annotated[
    Ident,
    Field(min_length=1, max_length=64, description="the channel's idempotency key of this creation"),
]
Amount = Annotated[Ident, Field(max_length=32, description='decimal string in major units, e.g. "150.00"')]
Seconds = Annotated[int, Ge(0), Le(31_536_000)]
Reason = Annotated[Ident, Field(max_length=500)]

KIND = Literal["scheduled", "threshold", "debt"]
PERIOD = Literal["monthly", "weekly", "days"]
STATUS = Literal["active", "paused", "cancelled", "finished"]
# a plain local date between these (far enough for any real schedule, near enough for calendar math)
FIRST_DATE = dt.date(2000, 1, 1)
LAST_DATE = dt.date(2199, 12, 31)
LocalDate = Annotated[dt.date, Ge(FIRST_DATE), Le(LAST_DATE)]

# --- customers -------------------------------------------------------------------------------------------


class CustomerIn(BaseModel):
    """Create or update a customer: only the fields given change (``null`` clears an optional one)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Ion Popescu",
                    "phone": "+37369123456",
                    "email": "ion@example.md",
                    "language": "ro",
                    "timezone": "Europe/Chisinau",
                    "currency": "MDL",
                    "month_limit": "5000.00",
                    "funding_account": "MD24AG000225100013104168",
                    "reminders": True,
                }
            ]
        },
    )

    name: Annotated[Ident, Field(max_length=200)] | None = None
    phone: Annotated[Ident, Field(pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164")] | None = None
    email: Annotated[Ident, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    language: Literal["en", "ru", "ro"] | None = None
    timezone: (
        Annotated[Ident, Field(max_length=64, description="IANA zone", examples=["Europe/Moscow"])] | None
    ) = None
    currency: Annotated[Ident, Field(min_length=3, max_length=3)] | None = Field(
        default=None, description="needed when the customer is created"
    )
    month_limit: Amount | None = Field(default=None, description="the most all runs may charge in a month")
    funding_account: Annotated[Ident, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="the customer's account at the bank, debited for the runs"
    )
    reminders: bool | None = Field(default=None, description="hidden-subscription reminders on or off")


class CustomerOut(BaseModel):
    reference: str
    name: str | None
    phone: str | None
    email: str | None
    language: str
    timezone: str
    currency: str
    month_limit: str | None
    funding_account: str | None
    reminders: bool
    created_at: dt.datetime
    updated_at: dt.datetime


# --- templates -------------------------------------------------------------------------------------------

Fields = Annotated[
    dict[Annotated[Ident, Field(max_length=64)], Annotated[Ident, Field(max_length=256)]],
    Field(max_length=50, description="the service's extra fields"),
]


class TemplateIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "key": "tpl-7f3a",
                    "name": "My phone",
                    "service": "topup",
                    "account": "9001234567",
                    "fields": {},
                    "amount": "300.00",
                }
            ]
        },
    )

    key: Key
    name: Annotated[Ident, Field(min_length=1, max_length=100)]
    service: Annotated[Ident, Field(min_length=1, max_length=64)]
    account: Annotated[Ident, Field(min_length=1, max_length=64)]
    fields: Fields = Field(default_factory=dict)
    amount: Amount | None = Field(default=None, description="null: asked each time")


class TemplateChange(BaseModel):
    """Change a template: only the fields given change (``amount: null`` makes it asked each time)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "Mum's phone", "amount": "500.00"}]}
    )

    name: Annotated[Ident, Field(min_length=1, max_length=100)] | None = None
    account: Annotated[Ident, Field(min_length=1, max_length=64)] | None = None
    fields: Fields | None = None
    amount: Amount | None = None


class FromPaymentIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"key": "tpl-from-1842", "name": "Electricity"}]}
    )

    key: Key
    name: Annotated[Ident, Field(min_length=1, max_length=100)] | None = Field(
        default=None, description="default: the service's name"
    )


class TemplateOut(BaseModel):
    id: int
    key: str
    name: str
    service: str
    account: str
    fields: dict[str, Any]
    amount: str | None
    currency: str
    created_at: dt.datetime
    updated_at: dt.datetime


# --- subscriptions ---------------------------------------------------------------------------------------


class _SubscriptionTerms(BaseModel):
    """What a subscription's kind needs (see ``docs/recurring.md``)."""

    amount: Amount | None = Field(default=None, description="scheduled / threshold: default the template's")
    per_payment_limit: Amount | None = Field(default=None, description="no run pays more than this")
    period: PERIOD | None = Field(default=None, description="scheduled / debt")
    day_of_month: Annotated[int, Ge(1), Le(31)] | None = Field(
        default=None, description="monthly: 1..31, past the month's end meaning its last day"
    )
    weekday: Annotated[int, Ge(0), Le(6)] | None = Field(default=None, description="weekly: 0 = Monday")
    every_days: Annotated[int, Ge(1), Le(366)] | None = Field(default=None, description="days: every N days")
    time_of_day: (
        Annotated[Ident, Field(min_length=5, max_length=5, pattern=r"^[0-9]{2}:[0-9]{2}$")] | None
    ) = Field(default=None, description="HH:MM on the customer's clock (default 09:00)")
    start_date: LocalDate | None = Field(default=None, description="default: the customer's today")
    end_date: LocalDate | None = Field(default=None, description="inclusive")
    max_runs: Annotated[int, Ge(1), Le(100_000)] | None = Field(
        default=None, description="paid runs, then done"
    )
    threshold: Amount | None = Field(default=None, description="threshold: top up when the balance is below")
    poll_seconds: Annotated[int, Ge(60), Le(31_536_000)] | None = Field(
        default=None, description="threshold: ask the provider for the balance this often (null: pushed only)"
    )
    quiet_seconds: Seconds | None = Field(
        default=None, description="threshold: at most one top-up per (1 day)"
    )
    debt_limit: Amount | None = Field(default=None, description="debt: above it the customer is asked")


class SubscriptionIn(_SubscriptionTerms):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "key": "sub-rent-2027",
                    "template_id": 12,
                    "kind": "scheduled",
                    "amount": "300.00",
                    "period": "monthly",
                    "day_of_month": 31,
                    "time_of_day": "10:00",
                    "start_date": "2027-01-01",
                },
                {
                    "key": "sub-phone-low",
                    "template_id": 13,
                    "kind": "threshold",
                    "amount": "100.00",
                    "threshold": "20.00",
                    "poll_seconds": 3600,
                    "quiet_seconds": 86400,
                },
                {
                    "key": "sub-gas-debt",
                    "template_id": 14,
                    "kind": "debt",
                    "period": "monthly",
                    "day_of_month": 5,
                    "debt_limit": "1500.00",
                },
            ]
        },
    )

    key: Key
    template_id: Id
    kind: KIND


class SubscriptionChange(_SubscriptionTerms):
    """Change a subscription's amount, limits or schedule: only the fields given change (``null``
    clears an optional one); when the calendar changes, the next charge is computed from now."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"amount": "350.00", "day_of_month": 25}, {"per_payment_limit": None}]
        },
    )


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "moving abroad"}]})

    reason: Reason | None = None


class ConfirmIn(BaseModel):
    """The customer's answer to a ``debt.confirm`` notice (a debt above their limit)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"accept": True}]})

    accept: bool = Field(strict=True, description="true: pay the debt now; false: do not pay it this time")


class SubscriptionOut(BaseModel):
    id: int
    key: str
    kind: str
    status: str
    status_reason: str | None
    template_id: int
    service: str
    account: str
    currency: str
    amount: str | None
    per_payment_limit: str | None
    period: str | None
    day_of_month: int | None
    weekday: int | None
    every_days: int | None
    time_of_day: str
    start_date: dt.date
    end_date: dt.date | None
    max_runs: int | None
    runs_paid: int
    threshold: str | None
    poll_seconds: int | None
    quiet_seconds: int | None
    last_topup_at: dt.datetime | None
    debt_limit: str | None
    timezone: str = Field(description="the customer's timezone (the schedule's wall clock)")
    next_due_at: dt.datetime | None = Field(description="UTC: when the hub looks at it next")
    next_due_local: dt.datetime | None = Field(description="next_due_at on the customer's clock")
    created_at: dt.datetime
    updated_at: dt.datetime


class RunOut(BaseModel):
    id: int
    period_key: str
    scheduled_at: dt.datetime
    state: str
    currency: str
    amount: str | None
    observed: str | None = Field(description="the balance or debt seen (threshold / debt)")
    payment_id: int | None
    error_code: str | None
    error_message: str | None
    created_at: dt.datetime
    final_at: dt.datetime | None


class RunAdminOut(RunOut):
    debit_key: str
    debit_reference: str | None
    refund_key: str | None
    refund_reference: str | None
    status: str
    attempts: int


class RunPageOut(BaseModel):
    items: list[RunOut]
    next_before_id: int | None = Field(description="pass as before_id for the next (older) page")


class ActionOut(BaseModel):
    name: str = Field(examples=["confirm"])
    url: str | None = None


class CustomerNotificationOut(BaseModel):
    """A notice the customer was sent (action tokens are never shown here)."""

    id: int
    event: str = Field(examples=["run.paid"])
    channel: str = Field(examples=["sms"])
    address: str | None = Field(default=None, description="the phone or e-mail it went to")
    language: str
    subject: str | None = None
    text: str | None = Field(default=None, description="what the customer received (SMS and e-mail)")
    data: dict[str, Any] | None = None
    actions: list[ActionOut] = Field(default_factory=list)
    status: str = Field(description="pending, running, delivered or failed")
    attempts: int
    created_at: str
    delivered_at: str | None = None


class CustomerNotificationPageOut(BaseModel):
    items: list[CustomerNotificationOut]
    next_before_id: int | None = Field(description="pass as before_id for the next (older) page")


class RunAdminPageOut(BaseModel):
    items: list[RunAdminOut]
    next_before_id: int | None


# --- events ----------------------------------------------------------------------------------------------


class EventIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "key": "evt-20270105-001",
                    "kind": "balance",
                    "service": "topup",
                    "account": "9001234567",
                    "value": "12.50",
                    "currency": "RUB",
                },
                {
                    "key": "evt-20270105-002",
                    "kind": "debt",
                    "service": "gas",
                    "account": "4410021",
                    "value": "734.20",
                    "currency": "RUB",
                },
            ]
        },
    )

    key: Key
    kind: Literal["balance", "debt"]
    service: Annotated[Ident, Field(min_length=1, max_length=64)]
    account: Annotated[Ident, Field(min_length=1, max_length=64)]
    value: Annotated[Ident, Field(max_length=33, description='decimal string; a balance may be "-5.00"')]
    currency: Annotated[Ident, Field(min_length=3, max_length=3)]


class EventOut(BaseModel):
    id: int
    key: str
    kind: str
    service: str
    account: str
    value: str
    currency: str
    received_at: dt.datetime
    processed_at: dt.datetime | None
    due_subscriptions: list[int] = Field(
        default_factory=list, description="threshold subscriptions this balance made due now"
    )


# --- admin -----------------------------------------------------------------------------------------------


class AgentSettingsIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "channel": "mobile",
                    "funding_protocol": "jsonhttp",
                    "funding_config": {"url": "https://core.bank.example/funding", "token": "s3cret"},
                    "upcoming_lead_hours": 24,
                    "catch_up_hours": 72,
                    "enabled": True,
                }
            ]
        },
    )

    channel: Annotated[
        Ident, Field(min_length=1, max_length=64, description="the agent's channel runs pay under")
    ]
    funding_protocol: Annotated[Ident, Field(min_length=1, max_length=32)]
    funding_config: dict[Annotated[Ident, Field(max_length=64)], Any] = Field(
        default_factory=dict, description='the plug-in\'s settings; "***" keeps a stored secret'
    )
    upcoming_lead_hours: Annotated[int, Ge(0), Le(720)] = 24
    catch_up_hours: Annotated[int, Ge(0), Le(8760)] = 72
    enabled: bool = True


class AgentSettingsOut(BaseModel):
    agent: str
    channel: str
    funding_protocol: str
    funding_config: dict[str, Any] = Field(description="secrets masked")
    upcoming_lead_hours: int
    catch_up_hours: int
    enabled: bool
    updated_at: dt.datetime


class AdminReasonIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "customer asked by phone, ticket 8812"}]}
    )

    reason: Annotated[Ident, Field(min_length=1, max_length=500)]


class AdminCustomerOut(CustomerOut):
    id: int
    agent: str


class AdminSubscriptionOut(SubscriptionOut):
    customer_id: int
    customer_reference: str
    agent: str


class AdminCustomerDetailOut(BaseModel):
    customer: AdminCustomerOut
    templates: list[TemplateOut]
    subscriptions: list[AdminSubscriptionOut]
