"""Money as integer minor units plus an ISO 4217 code.

Amounts cross the API as decimal strings in major units ("150.00"). They are parsed exactly
(never through float) and rejected if they carry more decimals than the currency has.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal

# ISO 4217: code -> number of minor-unit digits. The common active currencies.
CURRENCIES: dict[str, int] = {
    "AED": 2,
    "AMD": 2,
    "AUD": 2,
    "AZN": 2,
    "BGN": 2,
    "BHD": 3,
    "BRL": 2,
    "BYN": 2,
    "CAD": 2,
    "CHF": 2,
    "CLP": 0,
    "CNY": 2,
    "CZK": 2,
    "DKK": 2,
    "EGP": 2,
    "EUR": 2,
    "GBP": 2,
    "GEL": 2,
    "HKD": 2,
    "HUF": 2,
    "IDR": 2,
    "ILS": 2,
    "INR": 2,
    "IQD": 3,
    "ISK": 0,
    "JOD": 3,
    "JPY": 0,
    "KGS": 2,
    "KRW": 0,
    "KWD": 3,
    "KZT": 2,
    "LYD": 3,
    "MDL": 2,
    "MXN": 2,
    "NOK": 2,
    "NZD": 2,
    "OMR": 3,
    "PLN": 2,
    "RON": 2,
    "RSD": 2,
    "RUB": 2,
    "SAR": 2,
    "SEK": 2,
    "SGD": 2,
    "THB": 2,
    "TJS": 2,
    "TMT": 2,
    "TND": 3,
    "TRY": 2,
    "UAH": 2,
    "USD": 2,
    "UZS": 2,
    "VND": 0,
    "XAF": 0,
    "XOF": 0,
    "ZAR": 2,
}

# ASCII digits only, and \Z rather than $ so that a trailing newline is not accepted.
_AMOUNT_RE = re.compile(r"^(?P<int>[0-9]{1,15})(?:\.(?P<frac>[0-9]{1,6}))?\Z")

ROUNDING_MODES: dict[str, str] = {
    "half_up": ROUND_HALF_UP,
    "half_even": ROUND_HALF_EVEN,
    "down": ROUND_DOWN,
    "up": ROUND_UP,
    "floor": ROUND_FLOOR,
    "ceiling": ROUND_CEILING,
}


class MoneyError(ValueError):
    """An amount or currency that cannot be used."""


def exponent(currency: str) -> int:
    """Number of minor-unit digits of ``currency``."""
    try:
        return CURRENCIES[currency]
    except KeyError:
        raise MoneyError(f"unknown currency {currency!r} (expected an ISO 4217 code)") from None


def check_currency(currency: str) -> str:
    exponent(currency)
    return currency


def parse_amount(text: str | int, currency: str, *, allow_zero: bool = False) -> int:
    """Parse a non-negative decimal string in major units into minor units, exactly.

    ``"150.00"`` in RUB gives ``15000``. More decimals than the currency has is an error, as is
    anything that is not a plain decimal (no signs, exponents, spaces or thousands separators).
    """
    digits = exponent(currency)
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise MoneyError('amount must be a decimal string such as "150.00"')
    raw = str(text)
    m = _AMOUNT_RE.match(raw)
    if not m:
        raise MoneyError(f'amount {raw!r} is not a decimal number such as "150.00"')
    frac = m.group("frac") or ""
    if len(frac) > digits:
        raise MoneyError(f"amount {raw!r} has more than {digits} decimal places allowed for {currency}")
    minor = int(m.group("int")) * 10**digits + (int(frac.ljust(digits, "0")) if digits else 0)
    if minor == 0 and not allow_zero:
        raise MoneyError("amount must be greater than zero")
    return minor


def format_amount(minor: int, currency: str) -> str:
    """Minor units to a decimal string in major units: ``15000`` RUB gives ``"150.00"``."""
    digits = exponent(currency)
    sign = "-" if minor < 0 else ""
    q, r = divmod(abs(minor), 10**digits)
    return f"{sign}{q}.{r:0{digits}d}" if digits else f"{sign}{q}"


def to_decimal(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))


def excel_format(currency: str) -> str:
    """The spreadsheet number format that shows ``currency``'s decimals (``#,##0.00``; yen ``#,##0``)."""
    digits = exponent(currency)
    return "#,##0" + ("." + "0" * digits if digits else "")


def round_minor(value: Decimal, mode: str = "half_up") -> int:
    """Round a Decimal amount expressed in minor units to an integer, with an explicit mode."""
    try:
        rounding = ROUNDING_MODES[mode]
    except KeyError:
        raise MoneyError(f"unknown rounding mode {mode!r}; use one of {sorted(ROUNDING_MODES)}") from None
    return int(value.quantize(Decimal(1), rounding=rounding))
