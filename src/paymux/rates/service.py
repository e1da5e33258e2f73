"""Exchange rates: add a version, find the one in force, convert an amount exactly.

A rate says what one unit of ``base`` costs in ``quote`` (EUR/RUB 98.45: 1 EUR = 98.45 RUB). Versions
are never changed: a new rate is a new version effective from its time; adding one identical to an
existing version is a no-op, a different rate at the same time is refused. Converting the other way
(RUB to EUR) divides by the rate. Conversions are exact decimal arithmetic rounded once, explicitly.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.db.base import utcnow
from paymux.db.concurrent import inserted
from paymux.money import ROUNDING_MODES, MoneyError, check_currency, exponent, round_minor
from paymux.rates.models import ExchangeRate

MAX_DECIMALS = 10
_RATE_RE = re.compile(r"^(?P<int>\d{1,12})(?:\.(?P<frac>\d+))?$")


class RateError(ValueError):
    """A rate or a conversion that cannot be used (the message says why)."""


def parse_rate(text: str) -> Decimal:
    """A positive decimal string with at most 10 decimals (no signs, exponents or separators)."""
    m = _RATE_RE.match(text.strip())
    if not m:
        raise RateError(f'rate {text!r} is not a decimal number such as "98.4512"')
    if len(m.group("frac") or "") > MAX_DECIMALS:
        raise RateError(f"rate {text!r} has more than {MAX_DECIMALS} decimal places")
    value = Decimal(text.strip())
    if value == 0:
        raise RateError("a rate must be greater than zero")
    return value


def _pair(base: str, quote: str) -> tuple[str, str]:
    try:
        base, quote = check_currency(base.upper()), check_currency(quote.upper())
    except MoneyError as e:
        raise RateError(str(e)) from e
    if base == quote:
        raise RateError("a rate is between two different currencies")
    return base, quote


async def add_rate(
    session: AsyncSession,
    base: str,
    quote: str,
    rate: str,
    *,
    effective_from: dt.datetime | None = None,
    source: str | None = None,
    actor: str = "system",
) -> tuple[ExchangeRate, bool]:
    """The version (created, or the identical one already there) and whether it was created."""
    base, quote = _pair(base, quote)
    value = parse_rate(rate)
    when = effective_from or utcnow()
    if when.tzinfo is None:
        raise RateError("effective_from needs a timezone (an offset or Z)")

    async def same_time() -> tuple[ExchangeRate, bool] | None:
        existing = await session.scalar(
            select(ExchangeRate).where(
                ExchangeRate.base == base, ExchangeRate.quote == quote, ExchangeRate.effective_from == when
            )
        )
        if existing is None:
            return None
        if Decimal(existing.rate) == value:
            return existing, False
        raise RateError(
            f"{base}/{quote} already has rate {existing.rate} from {when.isoformat()}: a version is never"
            " changed; add one from a later time"
        )

    found = await same_time()
    if found is not None:
        return found
    row = ExchangeRate(
        base=base,
        quote=quote,
        rate=format(value, "f"),  # plain digits: str() would write 1E-7
        effective_from=when,
        source=(source or "").strip()[:100] or None,
        created_by=actor[:100],
    )
    if await inserted(session, row):
        return row, True
    found = await same_time()  # added at this moment by another request (paymux.db.concurrent)
    if found is None:
        raise RateError(f"the {base}/{quote} rate could not be stored")
    return found


@dataclass(frozen=True)
class RateInForce:
    """The version in force for ``base``/``quote``; ``inverted`` when it is the other way's version."""

    base: str
    quote: str
    version: ExchangeRate
    inverted: bool

    @property
    def rate(self) -> Decimal:
        """Quote units per base unit (an inverted version's to 10 decimals, for display only)."""
        stored = Decimal(self.version.rate)
        if not self.inverted:
            return stored
        with localcontext() as ctx:
            ctx.prec = 40
            return (1 / stored).quantize(Decimal(1).scaleb(-MAX_DECIMALS))

    def convert(self, minor: int, rounding: str = "half_up") -> int:
        """``minor`` units of ``base`` in minor units of ``quote``, exact, rounded once."""
        return convert(
            minor, self.base, self.quote, Decimal(self.version.rate), rounding, divide=self.inverted
        )


async def rate_at(session: AsyncSession, base: str, quote: str, at: dt.datetime) -> RateInForce | None:
    """The rate in force at ``at``: the latest version of the pair effective by then, or the other
    way's (whichever is newer when both exist); None if there is neither."""
    base, quote = _pair(base, quote)
    found: list[RateInForce] = []
    for b, q, inverted in ((base, quote, False), (quote, base, True)):
        row = await session.scalar(
            select(ExchangeRate)
            .where(ExchangeRate.base == b, ExchangeRate.quote == q, ExchangeRate.effective_from <= at)
            .order_by(ExchangeRate.effective_from.desc())
            .limit(1)
        )
        if row is not None:
            found.append(RateInForce(base, quote, row, inverted))
    if not found:
        return None
    return max(found, key=lambda r: (r.version.effective_from, not r.inverted))


def convert(
    minor: int,
    from_currency: str,
    to_currency: str,
    rate: Decimal,
    rounding: str = "half_up",
    *,
    divide: bool = False,
) -> int:
    """``minor`` units of ``from_currency`` in minor units of ``to_currency``: times ``rate`` (or
    divided by it, for a rate quoted the other way), in exact decimal arithmetic, rounded once.

    The division is carried to 60 digits: a quotient that is not a terminating decimal is never
    closer than 5e-23 to a rounding boundary for rates of at most 22 digits, so it rounds as the exact
    fraction would."""
    if rounding not in ROUNDING_MODES:
        raise RateError(f"unknown rounding {rounding!r}; use one of {sorted(ROUNDING_MODES)}")
    with localcontext() as ctx:
        ctx.prec = 60
        scale = Decimal(10) ** (exponent(to_currency) - exponent(from_currency))
        value = Decimal(minor) * scale / rate if divide else Decimal(minor) * scale * rate
        return round_minor(value, rounding)


def rate_view(r: ExchangeRate) -> dict[str, Any]:
    """A version as the admin API shows it and the audit log records it."""
    return {
        "id": r.id,
        "base": r.base,
        "quote": r.quote,
        "rate": r.rate,
        "effective_from": r.effective_from.isoformat(),
        "source": r.source,
        "created_at": r.created_at.isoformat(),
        "created_by": r.created_by,
    }
