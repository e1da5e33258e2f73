"""Admin API for exchange rates: the versions of each pair, adding one, converting an amount."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictStr
from sqlalchemy import select

from paymux import audit
from paymux.api.deps import ReadSessionDep, SessionDep
from paymux.auth import permissions as P
from paymux.auth.admin_api import require_api
from paymux.auth.principal import Principal
from paymux.db.base import utcnow
from paymux.errors import invalid, not_found
from paymux.money import MoneyError, format_amount, parse_amount
from paymux.rates.models import ExchangeRate
from paymux.rates.service import RateError, add_rate, rate_at, rate_view

router = APIRouter(prefix="/api/v1/admin", tags=["exchange rates"])

Reader = Annotated[Principal, Depends(require_api(P.RATES_READ))]
Writer = Annotated[Principal, Depends(require_api(P.RATES_WRITE))]


class RateIn(BaseModel):
    base: StrictStr = Field(examples=["EUR"])
    quote: StrictStr = Field(examples=["RUB"])
    rate: StrictStr = Field(description="quote units per base unit, a decimal string", examples=["98.4512"])
    effective_from: dt.datetime | None = Field(default=None, description="default: now")
    source: StrictStr | None = Field(default=None, max_length=100, examples=["central bank"])


@router.get("/exchange-rates")
async def list_rates(
    session: ReadSessionDep,
    _: Reader,
    base: str = "",
    quote: str = "",
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """Versions, newest first (optionally of one base and/or quote currency)."""
    q = select(ExchangeRate).order_by(ExchangeRate.effective_from.desc(), ExchangeRate.id.desc()).limit(limit)
    if base:
        q = q.where(ExchangeRate.base == base.upper())
    if quote:
        q = q.where(ExchangeRate.quote == quote.upper())
    return {"items": [rate_view(r) for r in (await session.scalars(q)).all()]}


@router.post("/exchange-rates", status_code=201)
async def post_rate(body: RateIn, session: SessionDep, me: Writer) -> Any:
    """Add a version (201); the identical version again answers 200; a different rate at the same
    time is refused (422): versions are never changed."""
    try:
        row, created = await add_rate(
            session,
            body.base,
            body.quote,
            body.rate,
            effective_from=body.effective_from,
            source=body.source,
            actor=me.audit_name,
        )
    except RateError as e:
        raise invalid("invalid-rate", str(e)) from e
    if created:
        await audit.record(
            session, me, "exchange_rate.add", f"rate:{row.base}/{row.quote}", None, rate_view(row)
        )
    await session.commit()
    return JSONResponse(rate_view(row), status_code=201 if created else 200)


@router.get("/exchange-rates/convert")
async def convert_amount(
    session: ReadSessionDep,
    _: Reader,
    amount: str,
    from_: Annotated[str, Query(alias="from")],
    to: str,
    at: dt.datetime | None = None,
    rounding: str = "half_up",
) -> dict[str, Any]:
    """``amount`` of ``from`` in ``to`` at the rate in force at ``at`` (default: now)."""
    when = at or utcnow()
    if when.tzinfo is None:
        raise invalid("invalid-rate", "at needs a timezone (an offset or Z)")
    try:
        minor = parse_amount(amount, from_.upper(), allow_zero=True)
        found = await rate_at(session, from_, to, when)
        if found is None:
            raise not_found(f"a {from_.upper()}/{to.upper()} rate in force at {when.isoformat()}")
        converted = found.convert(minor, rounding)
    except (MoneyError, RateError) as e:
        raise invalid("invalid-rate", str(e)) from e
    return {
        "amount": format_amount(minor, found.base),
        "from": found.base,
        "to": found.quote,
        "converted": format_amount(converted, found.quote),
        "rate": str(found.rate),
        "inverted": found.inverted,
        "rate_version": rate_view(found.version),
        "rounding": rounding,
    }
