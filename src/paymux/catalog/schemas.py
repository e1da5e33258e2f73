"""The catalog in its user-facing form: the YAML catalog file and the admin API use these models.

Money is written as decimal strings in major units of the relevant currency (``"150.00"``); a YAML
float such as ``150.00`` (unquoted) is refused because floats are inexact. Unknown keys are refused
with the list of allowed ones, so that typos are reported instead of silently ignored.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from paymux.api.params import MAX_INT32, no_control_characters
from paymux.catalog.fields import Amount, Code, Currency, catalog_pattern
from paymux.catalog.fields import StrictIn as _In
from paymux.gateways.schemas import GatewayIn
from paymux.masking import MASK
from paymux.money import MoneyError, check_currency, parse_amount
from paymux.tariffs.calc import TariffError, parse_rule

__all__ = [
    "AgentIn",
    "BreakerIn",
    "CandidateIn",
    "CatalogFile",
    "ChannelGroupIn",
    "ChannelIn",
    "ChannelKind",
    "FieldIn",
    "ProviderIn",
    "RouteIn",
    "ServiceIn",
    "SigningIn",
    "SwitchIn",
    "TariffIn",
    "TariffKind",
    "describe_validation_error",
]

ChannelKind = Literal[
    "atm", "terminal", "pos", "internet_bank", "mobile_bank", "cashier", "payment_link", "billing", "gateway"
]
Settlement = Literal["prepaid", "postpaid"]
SigningMode = Literal["none", "hmac", "rsa"]
Strategy = Literal["priority", "cheapest", "weighted"]
TariffKind = Literal["remuneration", "fee", "commission"]

_FIELD_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_HHMM = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
_HOURS_RE = re.compile(rf"^(?P<start>{_HHMM})-(?P<end>{_HHMM})\Z")
_MIN_HMAC_SECRET = 16


# --- field types ----------------------------------------------------------------------------------------


def _provider_code(value: object) -> object:
    """The provider's own service code: any non-empty text up to 64 characters."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and not 1 <= len(value) <= 64:
        raise ValueError("the provider's service code must be 1-64 characters")
    return value


ProviderServiceCode = Annotated[str, BeforeValidator(_provider_code)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(no_control_characters)]
Manager = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="the username of the staff user who manages it (the reports' 'manager' dimension)",
    ),
    AfterValidator(no_control_characters),
]


def _check_regex(pattern: str, what: str) -> None:
    try:
        catalog_pattern(pattern)
    except (re.error, ValueError) as exc:  # ValueError: a (?u) flag, which ASCII semantics refuse
        raise ValueError(f"{what} {pattern!r} is not a valid regular expression: {exc}") from None


def _check_amount(value: str | None, currency: str, field: str, *, allow_zero: bool) -> int | None:
    if value is None:
        return None
    try:
        return parse_amount(value, currency, allow_zero=allow_zero)
    except MoneyError as exc:
        raise ValueError(f"{field}: {exc}") from None


def _check_range(low: str | None, high: str | None, currency: str, prefix: str) -> None:
    lo = _check_amount(low, currency, prefix + "min_amount", allow_zero=True)
    hi = _check_amount(high, currency, prefix + "max_amount", allow_zero=False)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{prefix}min_amount {low} is greater than {prefix}max_amount {high}")


# --- providers --------------------------------------------------------------------------------------------


class BreakerIn(_In):
    """Circuit breaker: open for ``open_seconds`` when ``failure_rate_percent`` of at least
    ``min_calls`` calls within ``window_seconds`` failed."""

    window_seconds: int = Field(60, ge=1, le=MAX_INT32)
    min_calls: int = Field(10, ge=1, le=MAX_INT32)
    failure_rate_percent: int = Field(50, ge=1, le=100)
    open_seconds: int = Field(30, ge=1, le=MAX_INT32)


class ProviderIn(_In):
    code: Code
    name: Name
    protocol: str = Field(min_length=1, max_length=32)
    config: dict[str, Any] = Field(default_factory=dict)
    timezone: str = "UTC"
    settlement: Settlement = "postpaid"
    # currency -> how far below zero a prepaid deposit may go, e.g. {"RUB": "1000.00"}
    overdraft: dict[str, Amount] = Field(default_factory=dict)
    breaker: BreakerIn = Field(default_factory=BreakerIn)
    enabled: bool = True

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as 'Europe/Moscow' or 'UTC')"
            ) from None
        return value

    @field_validator("overdraft")
    @classmethod
    def _overdraft(cls, value: dict[str, str]) -> dict[str, str]:
        for currency, amount in value.items():
            try:
                check_currency(currency)
                parse_amount(amount, currency, allow_zero=True)
            except MoneyError as exc:
                raise ValueError(f"{currency}: {exc}") from None
        return value


# --- channels ---------------------------------------------------------------------------------------------


class ChannelGroupIn(_In):
    code: Code
    name: Name


class AgentIn(_In):
    code: Code
    name: Name
    enabled: bool = True
    manager: Manager | None = None


class SigningIn(_In):
    """Request signing of a channel: HMAC with a shared secret, or RSA with the channel's public key.

    Reads show a stored ``hmac_secret`` as ``***``; written back as ``***`` it keeps the stored one.
    """

    mode: SigningMode = "none"
    required: bool = False
    hmac_secret: str | None = Field(None, max_length=200)
    rsa_public_key: str | None = None

    @model_validator(mode="after")
    def _check(self) -> SigningIn:
        if self.required and self.mode == "none":
            raise ValueError("required: true needs mode hmac or rsa")
        if self.mode == "hmac":
            if not self.hmac_secret:
                raise ValueError("mode hmac needs hmac_secret")
            if self.hmac_secret != MASK and len(self.hmac_secret) < _MIN_HMAC_SECRET:
                raise ValueError(f"hmac_secret must be at least {_MIN_HMAC_SECRET} characters")
        if self.mode == "rsa":
            if not self.rsa_public_key:
                raise ValueError("mode rsa needs rsa_public_key (a PEM 'BEGIN PUBLIC KEY' block)")
        if self.rsa_public_key:
            _check_rsa_public_key(self.rsa_public_key)
        return self


def _check_rsa_public_key(pem: str) -> None:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"rsa_public_key is not a PEM public key that can be loaded: {exc}") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError("rsa_public_key must be an RSA key")


class ChannelIn(_In):
    code: Code
    name: Name
    kind: ChannelKind
    group: Code | None = None
    agent: Code | None = None
    enabled: bool = True
    manager: Manager | None = Field(None, description="the staff user managing it; else its agent's manager")
    signing: SigningIn = Field(default_factory=SigningIn)


# --- services and routes ----------------------------------------------------------------------------------


class CandidateIn(_In):
    """One provider that can deliver the service, with the criteria under which it is used."""

    provider: Code
    code: ProviderServiceCode
    # None: position in the list + 1; lower is tried first
    priority: int | None = Field(None, ge=1, le=MAX_INT32)
    weight: int = Field(1, ge=1, le=MAX_INT32)
    min_amount: Amount | None = None
    max_amount: Amount | None = None
    channel_group: Code | None = None
    hours: str | None = None  # "HH:MM-HH:MM" in the provider's time zone, may wrap midnight
    enabled: bool = True

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is None:
            return None
        m = _HOURS_RE.match(value)
        if not m:
            raise ValueError(f'hours {value!r} must look like "08:00-20:00" (24-hour clock, HH:MM-HH:MM)')
        if m.group("start") == m.group("end"):
            raise ValueError(f"hours {value!r} is empty; leave hours out for all day")
        return value

    @property
    def hours_range(self) -> tuple[str, str] | None:
        if self.hours is None:
            return None
        start, end = self.hours.split("-")
        return start, end


class RouteIn(_In):
    strategy: Strategy = "priority"
    candidates: list[CandidateIn] = Field(default_factory=list)


class FieldIn(_In):
    """An extra input a service needs besides the account (e.g. a meter reading)."""

    name: str
    pattern: str | None = None
    required: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _FIELD_NAME_RE.match(value):
            raise ValueError(f"field name {value!r} must be an identifier (letters, digits, '_')")
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            _check_regex(value, "pattern")
        return value


class ServiceIn(_In):
    code: Code
    name: Name
    category: str = Field("other", min_length=1, max_length=64)
    currency: Currency
    account_pattern: str = Field(r"^.{1,64}$", min_length=1, max_length=200)
    account_hint: str | None = Field(None, max_length=200)
    min_amount: Amount | None = None
    max_amount: Amount | None = None
    fields: list[FieldIn] = Field(default_factory=list)
    lifetime_seconds: int | None = Field(None, ge=1, le=MAX_INT32)
    periodic_days: int | None = Field(
        None,
        ge=1,
        le=366,
        description="paid again every so many days (e.g. 30): a one-off payment naming its customer is"
        " reminded one period later (hidden subscriptions)",
    )
    project: Code | None = Field(
        None, description="the project it belongs to (the reports' 'project' dimension)"
    )
    enabled: bool = True
    route: RouteIn = Field(default_factory=RouteIn)

    @field_validator("account_pattern")
    @classmethod
    def _account_pattern(cls, value: str) -> str:
        _check_regex(value, "account_pattern")
        return value

    @model_validator(mode="after")
    def _check(self) -> ServiceIn:
        _check_range(self.min_amount, self.max_amount, self.currency, "")
        for i, cand in enumerate(self.route.candidates):
            _check_range(cand.min_amount, cand.max_amount, self.currency, f"route.candidates[{i}].")
        seen: set[str] = set()
        for f in self.fields:
            if f.name in seen:
                raise ValueError(f"fields: duplicate field name {f.name!r}")
            seen.add(f.name)
        return self


# --- tariffs ---------------------------------------------------------------------------------------------


class TariffIn(_In):
    """One tariff version. ``None`` in a scope field means "any"."""

    kind: TariffKind
    service: Code | None = None
    provider: Code | None = None  # required for remuneration, not allowed for fee and commission
    channel_group: Code | None = None
    channel: Code | None = None
    currency: Currency
    effective_from: dt.datetime
    rule: dict[str, Any]  # paymux.tariffs.calc user-facing form, e.g. {"percent": "1.5", "min": "1.00"}
    note: str | None = Field(None, max_length=500)

    @field_validator("effective_from", mode="before")
    @classmethod
    def _no_bare_date(cls, value: object) -> object:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            raise ValueError(
                f"effective_from {value} needs a time and a time zone, e.g. {value}T00:00:00+00:00"
            )
        return value

    @field_validator("effective_from")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"effective_from {value.isoformat()} needs a time zone, "
                "e.g. 2025-01-01T00:00:00+03:00 or 2025-01-01T00:00:00Z"
            )
        return value.astimezone(dt.UTC)

    @model_validator(mode="after")
    def _check(self) -> TariffIn:
        if self.kind == "remuneration" and self.provider is None:
            raise ValueError("a remuneration tariff needs provider (remuneration is paid by one provider)")
        if self.kind != "remuneration" and self.provider is not None:
            raise ValueError(f"a {self.kind} tariff cannot have provider (only remuneration is per provider)")
        try:
            parse_rule(self.rule, self.currency)
        except TariffError as exc:
            raise ValueError(f"rule: {exc}") from None
        return self


# --- the file ---------------------------------------------------------------------------------------------


class SwitchIn(_In):
    """Switch one service (or every service) off a provider, optionally onto another."""

    off: Code
    onto: Code | None = None
    service: Code | None = None


class CatalogFile(_In):
    providers: list[ProviderIn] = Field(default_factory=list)
    channel_groups: list[ChannelGroupIn] = Field(default_factory=list)
    agents: list[AgentIn] = Field(default_factory=list)
    channels: list[ChannelIn] = Field(default_factory=list)
    services: list[ServiceIn] = Field(default_factory=list)
    tariffs: list[TariffIn] = Field(default_factory=list)
    switches: list[SwitchIn] = Field(default_factory=list)
    gateways: list[GatewayIn] = Field(default_factory=list)  # inbound (paymux.gateways)

    @model_validator(mode="after")
    def _unique_codes(self) -> CatalogFile:
        lists: dict[str, list[Any]] = {
            "providers": self.providers,
            "channel_groups": self.channel_groups,
            "agents": self.agents,
            "channels": self.channels,
            "services": self.services,
            "gateways": self.gateways,
        }
        for name, items in lists.items():
            seen: set[str] = set()
            for i, item in enumerate(items):
                if item.code in seen:
                    raise ValueError(f"{name}[{i}]: duplicate code {item.code!r}")
                seen.add(item.code)
        return self


# --- readable errors --------------------------------------------------------------------------------------

_PREFIXES = ("Value error, ", "Assertion failed, ")


MAX_PROBLEM_LINES = 50


def describe_validation_error(exc: ValidationError, data: object = None) -> str:
    """One line per problem: ``services[2] (mts).route.candidates[0].hours: <message>``; after the
    first 50, one line says how many more there are.

    ``data`` is the validated input; when given, the code of the list item is shown after its index.
    """
    lines = []
    errors = exc.errors()
    for err in errors[:MAX_PROBLEM_LINES]:
        loc = err["loc"]
        path = ""
        node: object = data
        for depth, part in enumerate(loc):
            if isinstance(part, int):
                path += f"[{part}]"
                node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
                code = node.get("code") if isinstance(node, dict) and depth == 1 else None
                if code is not None:
                    path += f" ({code})"
            else:
                path += f".{part}" if path else str(part)
                node = node.get(part) if isinstance(node, dict) else None
        msg = err["msg"]
        for prefix in _PREFIXES:
            if msg.startswith(prefix):
                msg = msg[len(prefix) :]
        if err["type"] == "missing":
            msg = "this field is required"
        lines.append(f"{path}: {msg}" if path else msg)
    if len(errors) > MAX_PROBLEM_LINES:
        lines.append(f"... and {len(errors) - MAX_PROBLEM_LINES} more problems")
    return "\n".join(lines)
