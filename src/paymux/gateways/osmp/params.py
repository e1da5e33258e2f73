"""Reading an OSMP request: query and form parameters into a checked :class:`OsmpRequest`."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from paymux.api.params import CONTROL
from paymux.gateways.osmp.codes import BAD_ACCOUNT_FORMAT, BAD_EXTRA_FIELD, FORBIDDEN, OTHER, OsmpRefusal
from paymux.gateways.registry import GatewayView
from paymux.money import MoneyError, check_currency

COMMANDS = ("getInfo", "check", "pay")
SECRET_PARAMS = frozenset({"password"})

_TXN_ID = re.compile(r"^[0-9]{1,20}\Z")  # the payment system's transaction number
_TXN_DATE = re.compile(r"^[0-9]{14}\Z")  # YYYYMMDDHHMMSS
_SUM = re.compile(r"^[0-9]{1,15}(?:\.[0-9]{1,6})?\Z")  # dot decimal; digits checked per currency later
_CCY = re.compile(r"^[A-Z]{3}\Z")
MAX_ACCOUNT = 64
MAX_FIELD = 256


@dataclass(slots=True)
class OsmpRequest:
    command: str
    txn_id: str | None  # getInfo has none (one given is checked and echoed)
    account: str
    sum: str | None  # optional in getInfo only
    service: str
    txn_date: dt.datetime | None = None  # as the payment system wrote it (its own local time)
    ccy: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


def collect(items: list[tuple[str, str]]) -> dict[str, str]:
    """Parameters by name; a parameter given twice (in the query, the form or both), or with a
    control character in its name or value, is refused."""
    out: dict[str, str] = {}
    for name, value in items:
        if name in out:
            raise OsmpRefusal(OTHER, f"parameter {name!r} given more than once")
        if CONTROL.search(name) or CONTROL.search(value):
            raise OsmpRefusal(OTHER, f"parameter {name[:32]!r} has a control character")
        out[name] = value
    return out


def parse_txn_date(value: str) -> dt.datetime:
    if not _TXN_DATE.match(value):
        raise OsmpRefusal(OTHER, f"txn_date {value!r} is not YYYYMMDDHHMMSS")
    try:
        return dt.datetime.strptime(value, "%Y%m%d%H%M%S")
    except ValueError:
        raise OsmpRefusal(OTHER, f"txn_date {value!r} is not a valid date and time") from None


def parse(gw: GatewayView, params: dict[str, str]) -> OsmpRequest:
    """Check the parameters; an OsmpRefusal says what is wrong (300 malformed, 4 account, 7 service).

    ``getInfo`` needs no ``txn_id`` and no ``sum`` (both are checked when given)."""
    command = params.get("command")
    if not command:
        raise OsmpRefusal(OTHER, "command is missing")
    if command not in COMMANDS:
        raise OsmpRefusal(OTHER, f"unknown command {command[:32]!r} (getInfo, check or pay)")
    lookup = command == "getInfo"
    txn_id = params.get("txn_id") or None
    if txn_id is None and not lookup:
        raise OsmpRefusal(OTHER, "txn_id is missing")
    if txn_id is not None and not _TXN_ID.match(txn_id):
        raise OsmpRefusal(OTHER, "txn_id must be 1-20 digits")
    txn_date = None
    raw_date = params.get("txn_date")
    if raw_date is not None:
        txn_date = parse_txn_date(raw_date)
    elif command == "pay":
        raise OsmpRefusal(OTHER, "txn_date is missing")
    amount = params.get("sum") or None
    if amount is None and not lookup:
        raise OsmpRefusal(OTHER, "sum is missing")
    if amount is not None and not _SUM.match(amount):
        raise OsmpRefusal(OTHER, f"sum {amount[:32]!r} is not a decimal with a dot such as 10.45")
    ccy = params.get("ccy") or None
    if ccy is not None:
        try:
            if not _CCY.match(ccy):
                raise MoneyError(ccy)
            check_currency(ccy)
        except MoneyError:
            raise OsmpRefusal(OTHER, f"ccy {ccy[:16]!r} is not an ISO 4217 currency code") from None
    account = params.get("account", "")
    if not account:
        raise OsmpRefusal(BAD_ACCOUNT_FORMAT, "account is missing")
    if len(account) > MAX_ACCOUNT:
        raise OsmpRefusal(BAD_ACCOUNT_FORMAT, f"account is longer than {MAX_ACCOUNT} characters")
    service = params.get(gw.service_param) or gw.default_service
    if not service:
        raise OsmpRefusal(OTHER, f"no service: send the parameter {gw.service_param!r}")
    if service not in gw.services:
        raise OsmpRefusal(FORBIDDEN, f"service {service[:64]!r} is not open to this gateway")
    skip = {"command", "txn_id", "txn_date", "sum", "ccy", "account", "login", "password", gw.service_param}
    fields = {
        name: value for name, value in params.items() if name not in skip and name not in gw.ignore_params
    }
    for name, value in fields.items():
        if len(value) > MAX_FIELD:
            raise OsmpRefusal(BAD_EXTRA_FIELD, f"field {name[:64]!r} is longer than {MAX_FIELD} characters")
    return OsmpRequest(command, txn_id, account, amount, service, txn_date, ccy, fields)
