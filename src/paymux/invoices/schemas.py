"""What billers send: an invoice (or a batch), a change, checked at the edge (422 otherwise)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr

from paymux.api.params import CONTROL, Ident, no_control_characters
from paymux.invoices.reference import rf_normal, rf_valid
from paymux.money import MoneyError, check_currency, parse_amount

NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
PHONE = re.compile(r"^\+[1-9][0-9]{6,14}\Z")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\Z")
LANGUAGES = ("en", "ru", "ro")
MAX_BATCH = 10_000
MIN_DUE = dt.date(2000, 1, 1)
MAX_DUE = dt.date(2199, 12, 31)


def number_ok(value: str) -> str:
    if not NUMBER.match(value):
        raise ValueError(
            "an invoice number is 1 to 64 letters, digits, '.', '_' or '-' (starting alphanumeric)"
        )
    return value


def _currency(value: str) -> str:
    try:
        return check_currency(value)
    except MoneyError as e:
        raise ValueError(str(e)) from None


def _amount_text(value: str) -> str:
    if len(value) > 30:
        raise ValueError("amount is too long")
    return value


def _phone(value: str) -> str:
    if not PHONE.match(value):
        raise ValueError("phone must be E.164, such as +37369123456")
    return value


def _email(value: str) -> str:
    if not EMAIL.match(value) or CONTROL.search(value):
        raise ValueError("email is not an e-mail address")
    return value


def _reference(value: str) -> str:
    if not rf_valid(value):
        raise ValueError(
            "reference must be an ISO 11649 RF creditor reference (RFnn + 1 to 21 letters/digits)"
        )
    return rf_normal(value)


def _due(value: dt.date) -> dt.date:
    if not MIN_DUE <= value <= MAX_DUE:
        raise ValueError("due_date must be between 2000-01-01 and 2199-12-31")
    return value


Number = Annotated[StrictStr, AfterValidator(number_ok)]
Currency = Annotated[StrictStr, Field(min_length=3, max_length=3), AfterValidator(_currency)]
AmountText = Annotated[StrictStr, AfterValidator(_amount_text)]
Text200 = Annotated[Ident, Field(min_length=1, max_length=200)]
Text500 = Annotated[StrictStr, Field(max_length=500), AfterValidator(no_control_characters)]
Phone = Annotated[StrictStr, AfterValidator(_phone)]
Email = Annotated[StrictStr, Field(max_length=320), AfterValidator(_email)]
Reference = Annotated[StrictStr, Field(max_length=40), AfterValidator(_reference)]
Due = Annotated[dt.date, AfterValidator(_due)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PayerIn(Strict):
    name: Text200 | None = None
    email: Email | None = None
    phone: Phone | None = None
    language: Annotated[StrictStr, Field(pattern="^(en|ru|ro)$")] = "en"


class LineIn(Strict):
    description: Text200
    quantity: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    amount: AmountText  # per unit, major units


class InvoiceIn(Strict):
    """One invoice. ``amount`` is a decimal string in major units (``"150.00"``)."""

    number: Number
    amount: AmountText
    currency: Currency
    due_date: Due
    payer: PayerIn = Field(default_factory=PayerIn)
    description: Text500 | None = None
    lines: Annotated[list[LineIn], Field(max_length=200)] | None = None
    reference: Reference | None = None
    partial_allowed: StrictBool = False

    def minor(self) -> int:
        return parse_amount(self.amount, self.currency)

    def lines_minor(self) -> list[dict[str, Any]] | None:
        if self.lines is None:
            return None
        return [
            {
                "description": x.description,
                "quantity": x.quantity,
                "amount": parse_amount(x.amount, self.currency),
            }
            for x in self.lines
        ]


class InvoicePatch(Strict):
    """What may change while an invoice is open (nothing paid): amount, due date, payer, description."""

    amount: AmountText | None = None
    due_date: Due | None = None
    payer: PayerIn | None = None
    description: Text500 | None = None


class CancelIn(Strict):
    reason: Annotated[StrictStr, Field(max_length=500), AfterValidator(no_control_characters)] = ""
