"""Small helpers for back-office forms: access rules, timezones, choices."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache
from typing import Any

from fastapi import Request

from paymux.api.params import ascii_digits
from paymux.auth.access import parse_hours, parse_networks

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@lru_cache(maxsize=1)
def timezones() -> list[str]:
    return sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC")


def valid_timezone(name: str) -> bool:
    return name in timezones()


async def access_rules(request: Request) -> tuple[list[str], dict[str, Any] | None]:
    """Allowed networks and working hours from the form fields ``networks``, ``days``, ``start``, ``end``.

    Raises AccessRuleError with a readable message.
    """
    form = await request.form()
    networks = parse_networks(str(form.get("networks", "")))
    days = [int(str(d)) for d in form.getlist("days") if ascii_digits(str(d)) and len(str(d)) == 1]
    hours = parse_hours(days, str(form.get("start", "")).strip(), str(form.get("end", "")).strip())
    return networks, hours
