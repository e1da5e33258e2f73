"""Where and when a user may log in: allowed IP ranges and working hours (in the user's timezone)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class AccessRuleError(ValueError):
    pass


def parse_networks(text: str) -> list[str]:
    """CIDR ranges (or single addresses) separated by commas/whitespace, normalized; raises on a bad one."""
    out = []
    for part in text.replace(",", " ").split():
        try:
            out.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise AccessRuleError(f"not an IP range: {part}") from None
    return out


def ip_allowed(ip: str, networks: list[str]) -> bool:
    """True when ``networks`` is empty or contains ``ip``."""
    if not networks:
        return True
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(n, strict=False) for n in networks)


def _hm(value: str) -> dt.time:
    try:
        h, m = value.split(":")
        return dt.time(int(h), int(m))
    except ValueError:
        raise AccessRuleError(f"not a time of day (HH:MM): {value}") from None


def parse_hours(days: list[int] | None, start: str, end: str) -> dict[str, Any] | None:
    """A working-hours rule; None (any time) when start and end are both empty."""
    if not start and not end:
        return None
    s, e = _hm(start or "00:00"), _hm(end or "23:59")
    if e <= s:
        raise AccessRuleError("working hours must end after they start")
    chosen = sorted({int(d) for d in (days if days is not None else range(7)) if 0 <= int(d) <= 6})
    return {"days": chosen, "start": s.strftime("%H:%M"), "end": e.strftime("%H:%M")}


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def within_hours(rule: dict[str, Any] | None, tz: str, now: dt.datetime) -> bool:
    """True when ``rule`` is empty or ``now`` (UTC) falls inside it in timezone ``tz``."""
    if not rule:
        return True
    local = now.astimezone(zone(tz))
    if local.weekday() not in rule.get("days", range(7)):
        return False
    t = local.time().replace(second=0, microsecond=0)
    return _hm(rule.get("start", "00:00")) <= t < _hm(rule.get("end", "23:59")) or (
        rule.get("end") == "23:59" and t.hour == 23 and t.minute == 59
    )
