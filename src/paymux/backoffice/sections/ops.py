"""Helpers shared by the operational screens (not a section): amounts in the user's locale, local days,
catalog choices, Excel workbooks of several tables."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import Select, false, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.access import zone
from paymux.backoffice.framework import format_dt, language_of, timezone_of
from paymux.backoffice.i18n import Translator, translator
from paymux.catalog.models import Agent, Channel, ChannelGroup, Provider, Service
from paymux.downloads import attachment_built
from paymux.money import MoneyError, format_amount

# (group separator, decimal separator) per language
_SEPARATORS = {"en": (",", "."), "ru": ("\u00a0", ","), "ro": (".", ",")}


def money(minor: int | None, currency: str, lang: str = "en", *, code: bool = True) -> str:
    """An amount in minor units shown in ``lang``'s conventions: ``1,234.50 RUB`` / ``1 234,50 RUB``."""
    if minor is None:
        return ""
    try:
        plain = format_amount(minor, currency)
    except MoneyError:
        plain = str(minor)
    group, point = _SEPARATORS.get(lang, _SEPARATORS["en"])
    sign = "-" if plain.startswith("-") else ""
    whole, _, frac = plain.lstrip("-").partition(".")
    grouped = ""
    while len(whole) > 3:
        grouped = group + whole[-3:] + grouped
        whole = whole[:-3]
    text = sign + whole + grouped + (point + frac if frac else "")
    return f"{text} {currency}" if code else text


def money_for(request: Request) -> Callable[..., str]:
    """``money(minor, currency)`` in the request's language, for templates."""
    lang = language_of(request)
    return lambda minor, currency, code=True: money(minor, currency, lang, code=code)


def plain_money_for(request: Request) -> Callable[[int | None, str], str]:
    """``money(minor, currency)`` in the request's language without the currency code, for templates."""
    lang = language_of(request)
    return lambda minor, currency: money(minor, currency, lang, code=False)


def local_day_start(day: dt.date, tz: str) -> dt.datetime:
    """Midnight of ``day`` in ``tz``, in UTC."""
    return dt.datetime.combine(day, dt.time(), zone(tz)).astimezone(dt.UTC)


def today_start(tz: str, now: dt.datetime | None = None) -> dt.datetime:
    """Midnight of today in ``tz``, in UTC."""
    local = (now or dt.datetime.now(dt.UTC)).astimezone(zone(tz))
    return local_day_start(local.date(), tz)


def day_filter(column: Any, tz: str, *, end: bool) -> Callable[[Select[Any], str], Select[Any]]:
    """A list filter on a date typed in the user's timezone: from its midnight, or to the next one."""

    def apply(q: Select[Any], v: str) -> Select[Any]:
        try:
            day = dt.date.fromisoformat(v)
        except ValueError:
            return q.where(false())
        start = local_day_start(day + dt.timedelta(days=1 if end else 0), tz)
        return q.where(column < start) if end else q.where(column >= start)

    return apply


def yes_no(column: Any) -> Callable[[Select[Any], str], Select[Any]]:
    return lambda q, v: q.where(column.is_(v == "yes"))


YES_NO = [("yes", "yes"), ("no", "no")]


async def code_choices(
    session: AsyncSession, model: Any, ids: set[int] | None = None
) -> list[tuple[str, str]]:
    """(code, "code · name") of a catalog table, for filters and forms; optionally only some ids."""
    q = select(model.code, model.name).order_by(model.code)
    if ids is not None:
        q = q.where(model.id.in_(ids or [-1]))
    return [(c, f"{c} · {n}") for c, n in (await session.execute(q)).all()]


async def id_by_code(session: AsyncSession, model: Any, code: str) -> int | None:
    value = await session.scalar(select(model.id).where(model.code == code))
    return None if value is None else int(value)


async def codes_by_id(session: AsyncSession) -> dict[str, dict[int, str]]:
    """Codes of every catalog table by id (the catalog is small)."""
    out: dict[str, dict[int, str]] = {}
    for name, model in (
        ("service", Service),
        ("provider", Provider),
        ("channel", Channel),
        ("channel_group", ChannelGroup),
        ("agent", Agent),
    ):
        out[name] = {i: c for i, c in (await session.execute(select(model.id, model.code))).all()}
    return out


def workbook(
    request: Request, name: str, sheets: Sequence[tuple[str, list[str], list[list[Any]]]]
) -> Response:
    """An Excel file with one sheet per (title, header msgids, rows); datetimes in the user's timezone.
    Written in a thread as it is sent."""
    _ = translator(language_of(request))
    tz = timezone_of(request)
    return attachment_built(lambda: _workbook(_, tz, sheets), f"{name}.xlsx")


def _workbook(_: Translator, tz: str, sheets: Sequence[tuple[str, list[str], list[list[Any]]]]) -> bytes:
    from openpyxl import Workbook  # imported when needed: 6 MB the server does not hold idle

    wb = Workbook()
    first = True
    for title, header, rows in sheets:
        ws = wb.active if first else wb.create_sheet()
        assert ws is not None
        first = False
        ws.title = _(title)[:31]
        ws.append([_(h) for h in header])
        for row in rows:
            ws.append([format_dt(v, tz, True) if isinstance(v, dt.datetime) else v for v in row])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
