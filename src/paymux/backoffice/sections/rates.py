"""Exchange rates: every version of every pair (search, filters, Excel), and a form to add one."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import select

from paymux import audit
from paymux.auth import permissions as P
from paymux.auth.access import zone
from paymux.auth.principal import Principal
from paymux.backoffice.framework import (
    FINANCE,
    DbDep,
    MenuEntry,
    ReadDbDep,
    Section,
    redirect,
    register,
    require,
    require_before_reading,
    section_router,
)
from paymux.backoffice.listing import Column, Filter, ListSpec, respond
from paymux.money import CURRENCIES
from paymux.rates.models import ExchangeRate
from paymux.rates.service import RateError, add_rate, rate_view

router = section_router()
register(
    Section(
        "rates",
        router,
        menu=(MenuEntry("Exchange rates", "/backoffice/rates", P.RATES_READ, 38, area=FINANCE),),
        permissions=(P.RATES_READ, P.RATES_WRITE),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.RATES_READ))]
Writer = Annotated[Principal, Depends(require(P.RATES_WRITE))]


@router.get("/rates")
async def rates_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    spec = ListSpec(
        query=select(ExchangeRate),
        columns=[
            Column("base", "Base currency", ExchangeRate.base),
            Column("quote", "Quote currency", ExchangeRate.quote),
            Column("rate", "Rate"),
            Column("effective_from", "Effective from", ExchangeRate.effective_from),
            Column("source", "Source"),
            Column("created_by", "Added by", ExchangeRate.created_by),
            Column("created_at", "Added at", ExchangeRate.created_at),
        ],
        search=[ExchangeRate.source, ExchangeRate.created_by],
        filters=[
            Filter("base", "Base currency", lambda q, v: q.where(ExchangeRate.base == v.upper())),
            Filter("quote", "Quote currency", lambda q, v: q.where(ExchangeRate.quote == v.upper())),
        ],
        default_sort="effective_from",
        sheet="exchange-rates",
    )
    return respond(
        request,
        await spec.run(session, request),
        "rates/list.html",
        currencies=sorted(CURRENCIES),
        now=dt.datetime.now(zone(me.timezone)).strftime("%Y-%m-%dT%H:%M"),
    )


@router.post("/rates")
async def rates_add(request: Request, session: DbDep, me: Writer) -> Response:
    form = await request.form()
    when_text = str(form.get("effective_from", "")).strip()
    try:
        when = None
        if when_text:
            try:  # typed in the user's timezone (a datetime-local field)
                when = dt.datetime.fromisoformat(when_text).replace(tzinfo=zone(me.timezone))
            except ValueError as e:
                raise RateError(f"{when_text!r} is not a date and time") from e
        row, created = await add_rate(
            session,
            str(form.get("base", "")),
            str(form.get("quote", "")),
            str(form.get("rate", "")),
            effective_from=when,
            source=str(form.get("source", "")),
            actor=me.audit_name,
        )
    except RateError as e:
        await session.rollback()
        return redirect("/backoffice/rates", error=str(e))
    if created:
        await audit.record(
            session, me, "exchange_rate.add", f"rate:{row.base}/{row.quote}", None, rate_view(row)
        )
    await session.commit()
    return redirect("/backoffice/rates", "The rate was added." if created else "This rate was already there.")
