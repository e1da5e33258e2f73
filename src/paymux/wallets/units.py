"""Amounts in an issuer's unit: decimal strings in major units <-> integer minor units, exactly.

Like ``paymux.money`` but with the issuer's own precision, so that units and points (which have no
ISO 4217 code) are handled the same way as e-money.
"""

from __future__ import annotations

import re
from typing import Any

from paymux.errors import Problem, invalid

MAX_PRECISION = 6
MAX_MINOR = 10**15  # the largest amount of one operation or limit, in minor units
_AMOUNT_RE = re.compile(r"^(?P<int>[0-9]{1,15})(?:\.(?P<frac>[0-9]{1,6}))?\Z")
UNIT_CODE = re.compile(r"^[A-Z]{3}\Z")


def parse_units(text: object, precision: int, field: str = "amount", *, allow_zero: bool = False) -> int:
    """``"150.00"`` at precision 2 gives ``15000``; more decimals than ``precision`` is refused (422)."""
    if not isinstance(text, str):
        raise invalid("invalid-amount", f'{field} must be a decimal string such as "150.00"', field=field)
    m = _AMOUNT_RE.match(text)
    if not m:
        raise invalid(
            "invalid-amount", f'{field} {text!r} is not a decimal number such as "150.00"', field=field
        )
    frac = m.group("frac") or ""
    if len(frac) > precision:
        raise invalid(
            "invalid-amount", f"{field} {text!r} has more than {precision} decimal places", field=field
        )
    minor = int(m.group("int")) * 10**precision + (int(frac.ljust(precision, "0")) if precision else 0)
    if minor == 0 and not allow_zero:
        raise invalid("invalid-amount", f"{field} must be greater than zero", field=field)
    if minor > MAX_MINOR:
        raise invalid("invalid-amount", f"{field} is too large", field=field)
    return minor


def format_units(minor: int, precision: int) -> str:
    """Minor units as a decimal string in major units: ``15000`` at precision 2 gives ``"150.00"``."""
    sign = "-" if minor < 0 else ""
    q, r = divmod(abs(minor), 10**precision)
    return f"{sign}{q}.{r:0{precision}d}" if precision else f"{sign}{q}"


def conflict(slug: str, title: str, detail: str, **extra: Any) -> Problem:
    return Problem(409, slug, title, detail, **extra)
