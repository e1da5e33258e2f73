"""The provider protocol plug-in interface.

A protocol is one module exposing a subclass of :class:`Protocol`, registered under the entry
point group ``paymux.protocols``. The hub creates one instance per provider with the provider's
``config`` mapping and a shared ``httpx.AsyncClient``; it calls :meth:`check`, :meth:`pay` and
:meth:`status` and only ever looks at the :class:`ProtocolResult` they return.

Protocols must never raise for a provider's answer or a network failure: they classify it.
The classification decides what the hub may do next:

``ok``           the step succeeded (for ``pay``: the provider has taken the payment and done it).
``pending``      the provider has the payment but it is not final yet: ask ``status`` later.
``temporary``    the provider refused for now; the same payment may be sent again later to the
                 same provider with the same transaction id.
``fatal``        a definitive refusal by this provider; the hub may try the next provider.
``unreachable``  the request certainly did not reach the provider (connection refused, DNS,
                 connect timeout): safe to send elsewhere.
``unknown``      the request may have reached the provider and the answer was lost (read timeout,
                 connection reset, malformed answer): only ``status`` at the same provider may
                 settle it.
``not_found``    (``status`` only) the provider has never seen this transaction id.
"""

from __future__ import annotations

import abc
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal

import httpx

Outcome = Literal["ok", "pending", "temporary", "fatal", "unreachable", "unknown", "not_found"]

DEFAULT_TIMEOUT = "10"  # seconds a provider has to answer (config ``timeout``)
DEFAULT_CONNECT_TIMEOUT = "3"  # seconds to connect to a provider (config ``connect_timeout``)

# httpx errors that mean the request certainly did not reach the provider: ``unreachable``.
UNREACHABLE_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


@dataclass(slots=True)
class Exchange:
    """One request to a provider and what came back, with secrets masked (for payment details)."""

    step: str
    url: str
    request: str
    response: str | None
    status_code: int | None
    elapsed_ms: int


@dataclass(slots=True)
class CheckRequest:
    # a check's own id (digits only, never a payment's id: paymux.payments.check_ids), or the id a
    # payment system gave the check it forwards; a pay's pre-check uses the payment's txn_id
    txn_id: str
    service_code: str  # the provider's own code for the service
    account: str
    amount: int  # minor units
    currency: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class PayRequest:
    txn_id: str  # the same on every retry of one payment
    txn_date: dt.datetime  # UTC, the payment's acceptance time
    service_code: str
    account: str
    amount: int  # minor units
    currency: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StatusRequest:
    txn_id: str
    service_code: str
    provider_txn_id: str | None = None
    # the pay request whose outcome is asked for (protocols without a status step repeat it)
    pay: PayRequest | None = None


@dataclass(slots=True)
class ProtocolResult:
    outcome: Outcome
    code: str | None = None
    message: str | None = None
    provider_txn_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # extra fields the provider told
    exchanges: list[Exchange] = field(default_factory=list)
    # what the provider told about the account or payment for the payer to see (OSMP's <fields>,
    # the JSON protocol's check info), as text: an inbound gateway passes them on to its payment system
    fields: dict[str, str] = field(default_factory=dict)


class Protocol(abc.ABC):
    """Base class of a provider protocol. One instance per provider (its ``config``)."""

    name: str = ""
    # config keys holding secrets (passwords, tokens, private keys): masked wherever a provider is
    # shown (admin API, back office, catalog export, audit log). Keys whose names look secret
    # (paymux.masking.looks_secret) are masked too; declaring them all documents the protocol.
    secret_config_keys: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        self.config = config
        self.http = http

    @abc.abstractmethod
    async def check(self, req: CheckRequest) -> ProtocolResult:
        """Is this account payable with this amount?"""

    @abc.abstractmethod
    async def pay(self, req: PayRequest) -> ProtocolResult:
        """Deliver the payment. Repeating it with the same ``txn_id`` must be safe."""

    @abc.abstractmethod
    async def status(self, req: StatusRequest) -> ProtocolResult:
        """What became of the payment with this ``txn_id``?"""

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[str]:
        """Problems with a provider's config for this protocol (empty when usable)."""
        return []


def display_url(url: str) -> str:
    """``url`` without the user and password it may carry, for the recorded exchange."""
    if "@" not in url:  # no userinfo possible: skip parsing (this runs for every request)
        return url
    parsed = httpx.URL(url)
    if parsed.userinfo:
        return str(parsed.copy_with(username=None, password=None))
    return url


def base_url_problems(url: Any, example: str) -> list[str]:
    """What is wrong with a config's ``url``: an absolute http(s) base URL without query or fragment."""
    if not url:
        return [f"url is required (the base URL, e.g. {example})"]
    if not isinstance(url, str):
        return [f"url must be a string (got {url!r})"]
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        return [f"url {url!r} is not a valid URL: {exc}"]
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return [f"url {url!r} must be an absolute http:// or https:// URL"]
    if parsed.query or parsed.fragment:
        return [f"url {url!r} must not have a query or fragment"]
    return []


def parse_seconds(value: Any, name: str) -> tuple[Decimal | None, str | None]:
    """A positive number of seconds given as a decimal string or an int, or the problem with it."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        return None, f'{name} must be a number of seconds such as "10" (got {value!r})'
    try:
        seconds = Decimal(str(value).strip())
    except InvalidOperation:
        return None, f'{name} must be a number of seconds such as "10" (got {value!r})'
    if not seconds.is_finite() or seconds <= 0 or seconds > 3600:
        return None, f"{name} must be between 0 and 3600 seconds (got {value!r})"
    return seconds, None


def timeout_problems(config: dict[str, Any]) -> list[str]:
    """What is wrong with a provider config's ``timeout`` and ``connect_timeout``."""
    problems: list[str] = []
    for key, default in (("timeout", DEFAULT_TIMEOUT), ("connect_timeout", DEFAULT_CONNECT_TIMEOUT)):
        _, problem = parse_seconds(config.get(key, default), key)
        if problem:
            problems.append(problem)
    return problems


def http_timeout(config: dict[str, Any]) -> httpx.Timeout:
    """The httpx timeout of a provider config (the defaults where a value is missing or bad)."""
    read, _ = parse_seconds(config.get("timeout", DEFAULT_TIMEOUT), "timeout")
    connect, _ = parse_seconds(config.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT), "connect_timeout")
    # httpx takes seconds as float; these are durations, never money.
    read_s = float(read or Decimal(DEFAULT_TIMEOUT))
    connect_s = float(connect or Decimal(DEFAULT_CONNECT_TIMEOUT))
    return httpx.Timeout(connect=connect_s, read=read_s, write=read_s, pool=connect_s)


def network_failure(step: str, exc: httpx.HTTPError) -> tuple[Outcome, str]:
    """The outcome and code of a request that failed in the network.

    ``unreachable`` when it certainly did not reach the provider; else for ``pay`` ``unknown`` (the
    provider may have done it: only status can tell) and for any other step ``temporary``.
    """
    if isinstance(exc, UNREACHABLE_ERRORS):
        return "unreachable", "unreachable"
    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "network_error"
    return ("unknown" if step == "pay" else "temporary"), code


class UnknownProtocol(LookupError):
    pass


@cache
def protocol_classes() -> dict[str, type[Protocol]]:
    """Installed protocols by name, from the ``paymux.protocols`` entry point group."""
    found: dict[str, type[Protocol]] = {}
    for ep in entry_points(group="paymux.protocols"):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Protocol)):
            raise TypeError(f"entry point {ep.name} ({ep.value}) is not a paymux Protocol")
        found[ep.name] = cls
    return found


def config_secret_keys(protocol: str) -> frozenset[str]:
    """The config keys the protocol declares secret (none for a protocol that is not installed)."""
    cls = protocol_classes().get(protocol)
    return cls.secret_config_keys if cls is not None else frozenset()


def protocol_class(name: str) -> type[Protocol]:
    try:
        return protocol_classes()[name]
    except KeyError:
        known = ", ".join(sorted(protocol_classes())) or "none installed"
        raise UnknownProtocol(f"unknown provider protocol {name!r} (installed: {known})") from None
