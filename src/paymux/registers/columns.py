"""The fields a register column can show, and how a payment row becomes typed values."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from paymux.money import exponent, format_amount, to_decimal
from paymux.payments.visibility import earned


class Money(NamedTuple):
    """An amount in minor units with its currency; formats like a Decimal in major units."""

    minor: int
    currency: str

    def decimal(self) -> Decimal:
        return to_decimal(self.minor, self.currency)

    def __format__(self, spec: str) -> str:
        return format(self.decimal(), spec) if spec else format_amount(self.minor, self.currency)


@dataclass(frozen=True, slots=True)
class Lookups:
    """Codes and names of the catalog rows payments refer to, loaded once per build."""

    services: dict[int, tuple[str, str]]  # id -> (code, name)
    channels: dict[int, tuple[str, str, str, int | None]]  # id -> (code, name, kind, agent id)
    agents: dict[int, str]  # id -> code
    tz: ZoneInfo


Getter = Callable[[Any, Lookups], Any]


@dataclass(frozen=True, slots=True)
class FieldDef:
    kind: str  # int | str | money | datetime | date
    title: str
    width: int  # default width in fixed-width formats (DBF character fields)
    get: Getter


def _local(v: dt.datetime | None, lk: Lookups) -> dt.datetime | None:
    return v.astimezone(lk.tz) if v is not None else None


def _local_date(v: dt.datetime | None, lk: Lookups) -> dt.date | None:
    return v.astimezone(lk.tz).date() if v is not None else None


def _money(name: str) -> Getter:
    return lambda r, lk: Money(int(getattr(r, name)), r.currency)


def _earned(name: str) -> Getter:
    """Remuneration or commission: earned only by a succeeded payment (0 on the others)."""
    return lambda r, lk: Money(earned(r.status, int(getattr(r, name))) or 0, r.currency)


FIELDS: dict[str, FieldDef] = {
    "number": FieldDef("int", "No", 10, lambda r, lk: None),  # filled in by the builder (1..N)
    "id": FieldDef("int", "Payment ID", 19, lambda r, lk: r.id),
    "external_id": FieldDef("str", "External ID", 64, lambda r, lk: r.external_id),
    "provider_txn_id": FieldDef("str", "Provider txn ID", 40, lambda r, lk: r.provider_txn_id or ""),
    "created_at": FieldDef("datetime", "Created", 19, lambda r, lk: _local(r.created_at, lk)),
    "final_at": FieldDef("datetime", "Completed", 19, lambda r, lk: _local(r.final_at, lk)),
    "created_date": FieldDef("date", "Date", 8, lambda r, lk: _local_date(r.created_at, lk)),
    "final_date": FieldDef("date", "Completed date", 8, lambda r, lk: _local_date(r.final_at, lk)),
    "account": FieldDef("str", "Account", 32, lambda r, lk: r.account),
    "amount": FieldDef("money", "Amount", 15, _money("amount")),
    "fee": FieldDef("money", "Fee", 15, _money("fee")),
    "total": FieldDef("money", "Total", 15, _money("total")),
    "remuneration": FieldDef("money", "Remuneration", 15, _earned("remuneration")),
    "commission": FieldDef("money", "Commission", 15, _earned("commission")),
    "currency": FieldDef("str", "Currency", 3, lambda r, lk: r.currency),
    "service": FieldDef("str", "Service", 20, lambda r, lk: lk.services.get(r.service_id, ("", ""))[0]),
    "service_name": FieldDef(
        "str", "Service name", 60, lambda r, lk: lk.services.get(r.service_id, ("", ""))[1]
    ),
    "provider_service_code": FieldDef("str", "Provider service", 20, lambda r, lk: r.provider_service_code),
    "channel": FieldDef("str", "Channel", 20, lambda r, lk: lk.channels.get(r.channel_id, ("",))[0]),
    "channel_name": FieldDef(
        "str", "Channel name", 60, lambda r, lk: lk.channels.get(r.channel_id, ("", ""))[1]
    ),
    "channel_kind": FieldDef(
        "str", "Channel kind", 16, lambda r, lk: lk.channels.get(r.channel_id, ("", "", ""))[2]
    ),
    "agent": FieldDef("str", "Agent", 20, lambda r, lk: _agent(r, lk)),
    "status": FieldDef("str", "Status", 10, lambda r, lk: r.status),
    "error_code": FieldDef("str", "Error", 16, lambda r, lk: r.error_code or ""),
}

MONEY_FIELDS = tuple(k for k, f in FIELDS.items() if f.kind == "money")
EXTRA_PREFIX = "fields."


def _agent(r: Any, lk: Lookups) -> str:
    ch = lk.channels.get(r.channel_id)
    if ch is None or ch[3] is None:
        return ""
    return lk.agents.get(ch[3], "")


def field_def(name: str) -> FieldDef:
    """The definition of a column's field: a known name or ``fields.<key>`` (extra payment fields)."""
    if name in FIELDS:
        return FIELDS[name]
    if name.startswith(EXTRA_PREFIX) and len(name) > len(EXTRA_PREFIX):
        key = name[len(EXTRA_PREFIX) :]
        return FieldDef("str", key, 40, lambda r, lk: str((r.fields or {}).get(key, "")))
    raise KeyError(name)


def minor_digits(currency: str) -> int:
    return exponent(currency)
