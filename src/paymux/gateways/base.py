"""The inbound protocol plug-in interface: payment systems that pay through the hub in their protocol.

An inbound protocol is a subclass of :class:`InboundProtocol`, registered under the entry point
group ``paymux.inbound`` (as provider protocols are under ``paymux.protocols``)::

    [project.entry-points."paymux.inbound"]
    osmp = "paymux.gateways.osmp.protocol:OsmpInbound"
    cyberplat = "paymux.gateways.cyberplat.protocol:CyberplatInbound"

The entry point's name is the protocol's name: what a gateway's ``protocol`` says and the first
segment of its URLs (``/{name}/{gateway}`` and the protocol's :attr:`~InboundProtocol.routes`
below it). The hub creates one instance per gateway with the gateway's ``config`` mapping.

What the protocol does (its own format, nothing else):

- :meth:`~InboundProtocol.read`: the request's raw parameters (query, form, a signed message...);
- :meth:`~InboundProtocol.authenticate`: by default the gateway's login/password (HTTP Basic, or
  the parameters the protocol names) and client certificate (a header believed only from the
  gateway's trusted proxies); a protocol adds its own (a signature) by overriding it;
- :meth:`~InboundProtocol.parse`: the parameters into an :class:`InboundRequest` (check, pay,
  status or cancel), or an :class:`InboundRefusal` in the protocol's own codes;
- :meth:`~InboundProtocol.render` and :meth:`~InboundProtocol.gate`: answers in its format;
- :meth:`~InboundProtocol.code_for`: the protocol's code for each of the hub's outcomes
  (:data:`Reason`).

What the gateway machinery does for every protocol (``gateways/endpoints.py``, ``machinery.py``):
the gates (unknown gateway, address, throttling of failed logins, authentication), the hub's
check (local or at the routed provider), idempotent pay by the payment system's transaction id
(accepted or final answers), status and cancel, limits, and the exchanges kept with payments.
"""

from __future__ import annotations

import abc
import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from fastapi import Request, Response

from paymux.gateways.registry import (
    GatewayView,
    basic_credentials,
    from_trusted_proxy,
    normalize_cert_value,
)

if TYPE_CHECKING:
    from paymux.runtime import Hub

ENTRY_POINT_GROUP = "paymux.inbound"

Command = Literal["check", "pay", "status", "cancel"]

# The hub's outcomes of an inbound request, which each protocol maps to its own codes (code_for).
Reason = Literal[
    "ok",  # done (check: payable; pay: accepted, or paid with pay_result final; cancel: cancelled)
    "not_completed",  # pay with pay_result final, status: accepted, the provider has not paid yet
    "bad_request",  # malformed request, wrong currency, amount not a number
    "bad_account",  # the account does not match the service's format
    "bad_field",  # an extra field does not match the service's rules
    "forbidden",  # the service is not open to the gateway
    "unavailable",  # the gateway, its channel or the service is disabled
    "too_small",  # amount below the gateway's or the service's minimum
    "too_large",  # amount above the gateway's or the service's maximum
    "cannot_check",  # no provider could answer a check
    "temporary",  # try again later (no provider now, an internal failure)
    "conflict",  # the transaction id was used for another payment (detail: what differs)
    "duplicate",  # a check that opens a transaction: this transaction id already has its payment
    "refused",  # the provider refused (provider_code: its code) or the payment failed
    "not_found",  # status, cancel: no payment with this transaction id
    "cannot_cancel",  # cancel: the payment was sent to a provider already or is final
]


class UnknownInboundProtocol(LookupError):
    pass


@dataclass(slots=True)
class InboundRequest:
    """One request of a payment system, read by its protocol."""

    command: Command
    txn_id: str | None  # the payment system's transaction id (the payment's external_id)
    account: str = ""
    amount: str | None = None  # a decimal with a dot, in the service's currency (None: not given)
    service: str = ""
    currency: str | None = None  # when the request names one (must be the service's)
    fields: dict[str, str] = field(default_factory=dict)  # the service's extra fields
    txn_date: dt.datetime | None = None
    # the check of an account lookup (OSMP getInfo): the amount is optional, no txn_id is forwarded
    lookup: bool = False
    # the txn_id a check forwards to the provider with the gateway's check_txn_id: upstream
    upstream_check_id: str | None = None
    # a check that opens the transaction (Cyberplat's check without REQ_TYPE=1): refused as a
    # duplicate (or a conflict) when the txn_id already has a payment
    opens: bool = False
    # status, cancel: the hub's payment id as the payment system knows it (an answer's TRANSID); a
    # payment of txn_id with another id is not found
    hub_txn: str | None = None
    verb: str = ""  # the protocol's own name of the command (recorded), e.g. OSMP's getInfo
    extra: dict[str, Any] = field(default_factory=dict)  # what else the protocol wants in render


@dataclass(slots=True)
class Outcome:
    """What the hub made of a request; the protocol renders it."""

    reason: Reason
    comment: str | None = None  # None: the protocol's own wording of its code
    sum: str | None = None  # the amount as a decimal (when known)
    payment_id: int | None = None
    fields: dict[str, str] | None = None  # account details from the provider (check)
    provider_code: str | None = None  # the provider's refusal code (reason refused)
    payment_status: str | None = None  # status, cancel: the payment's status
    detail: str | None = None  # conflict: "account", "amount", "service" or "fields"


class GatewayRefusal(Exception):
    """The machinery refuses a request with one of the hub's reasons (the protocol picks the code)."""

    def __init__(self, reason: Reason, comment: str | None = None, *, detail: str | None = None) -> None:
        super().__init__(comment or reason)
        self.reason: Reason = reason
        self.comment = comment
        self.detail = detail

    def outcome(self) -> Outcome:
        return Outcome(self.reason, self.comment, detail=self.detail)


class InboundRefusal(Exception):
    """A protocol refuses a request in its own codes (its parser, its body reader)."""

    def __init__(self, code: int | str, comment: str) -> None:
        super().__init__(comment)
        self.code = code
        self.comment = comment


@dataclass(slots=True)
class Incoming:
    """A request as read: its parameters in order, and what the protocol could not read in it (the
    refusal is answered once the request is authenticated)."""

    items: list[tuple[str, str]]
    error: InboundRefusal | None = None
    echo: str | None = None  # the transaction id to echo in answers (the protocol's own notion)
    extra: dict[str, Any] = field(default_factory=dict)  # what the protocol keeps for itself


@dataclass(frozen=True, slots=True)
class InboundRoute:
    """A URL of a protocol: ``/{name}/{gateway}{path}``, one operation per method."""

    path: str  # "" or "/check" ...
    action: str  # passed to read() and parse()
    methods: tuple[str, ...] = ("POST",)
    operation_id: str = ""  # the operations are named "{operation_id}_{method}" (default: name+action)
    summary: str = ""


Gate = Literal["unknown", "address", "throttled", "unauthenticated"]


class InboundProtocol(abc.ABC):
    """Base class of an inbound protocol. One instance per gateway (its ``config``)."""

    name: ClassVar[str] = ""
    routes: ClassVar[tuple[InboundRoute, ...]] = ()
    # OpenAPI description of the answers (by HTTP status)
    responses: ClassVar[dict[int | str, dict[str, Any]]] = {}
    # config keys holding secrets: masked wherever a gateway is shown (keys that look secret are too)
    secret_config_keys: ClassVar[frozenset[str]] = frozenset()
    # request parameters masked in the recorded exchanges
    secret_params: ClassVar[frozenset[str]] = frozenset()
    # request parameters a gateway's service_param and ignore_params may not name
    reserved_params: ClassVar[frozenset[str]] = frozenset()
    # the parameters carrying login and password, when the protocol has them besides HTTP Basic
    login_params: ClassVar[tuple[str, str] | None] = None

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    @classmethod
    def validate_gateway(cls, gateway: Any) -> list[str]:
        """Problems with a gateway (a :class:`~paymux.gateways.schemas.GatewayIn`) for this protocol,
        its ``config`` included (empty when usable)."""
        return []

    # -- reading and authenticating ------------------------------------------------------------------

    def echo(self, request: Request) -> str | None:
        """The transaction id echoed in a gate's answer, before the request is read."""
        return None

    @abc.abstractmethod
    async def read(self, request: Request, action: str) -> Incoming:
        """The request's parameters; never raises (what cannot be read goes in ``Incoming.error``)."""

    def login(self, request: Request, incoming: Incoming) -> str:
        """The login the request gives (failed attempts are counted against it); "" when none."""
        creds = basic_credentials(request.headers.get("authorization"))
        if creds is not None:
            return creds[0]
        if self.login_params is not None:
            return next((v for k, v in incoming.items if k == self.login_params[0]), "")
        return ""

    async def authenticate(self, request: Request, hub: Hub, gw: GatewayView, incoming: Incoming) -> bool:
        """Password (HTTP Basic, else the protocol's login/password parameters) and/or the client
        certificate, as the gateway requires."""
        from paymux.gateways.registry import registry_of

        if gw.login is not None:
            creds = basic_credentials(request.headers.get("authorization"))
            if creds is None and self.login_params is not None:
                login_name, password_name = self.login_params
                given = {k: v for k, v in incoming.items if k in self.login_params}
                if login_name in given and password_name in given:
                    creds = (given[login_name], given[password_name])
            if creds is None or not await registry_of(hub).password_ok(gw, *creds):
                return False
        if gw.cert_header is not None:
            peer = request.client.host if request.client else None
            if not from_trusted_proxy(gw, peer):
                return False  # the certificate header is believed only from the TLS-terminating proxy
            value = request.headers.get(gw.cert_header)
            if value is None or normalize_cert_value(value) not in gw.cert_allowed:
                return False
        return True

    def challenge(self, gw: GatewayView) -> dict[str, str]:
        """Headers of a 401 (a Basic challenge when the gateway has a login)."""
        return {"WWW-Authenticate": f'Basic realm="paymux {self.name} {gw.code}"'} if gw.login else {}

    # -- parsing and answering -------------------------------------------------------------------------

    def params(self, incoming: Incoming) -> dict[str, str]:
        """The parameters by name (as recorded with the exchange, the protocol's secret ones masked);
        :class:`InboundRefusal` for a request that is malformed as a whole (a parameter twice)."""
        out: dict[str, str] = {}
        for k, v in incoming.items:
            out.setdefault(k, v)
        return out

    def command_of(self, raw: dict[str, str], action: str) -> str:
        """The protocol's name of the command (also of a request that cannot be parsed; "?": none)."""
        return action or "?"

    def echo_of(self, raw: dict[str, str], echo: str | None) -> str | None:
        """The transaction id echoed in the answer, once the parameters are known."""
        return echo

    @abc.abstractmethod
    def parse(self, gw: GatewayView, raw: dict[str, str], action: str) -> InboundRequest:
        """The request, or :class:`InboundRefusal` (in the protocol's codes) for a bad one."""

    @abc.abstractmethod
    def code_for(self, outcome: Outcome, command: str, req: InboundRequest | None) -> int | str:
        """The protocol's result code for one of the hub's outcomes (``req`` None: not parsed)."""

    def comment_for(self, code: int | str) -> str:
        """The protocol's wording of its code (used when the outcome has no comment)."""
        return str(code)

    @abc.abstractmethod
    def render(
        self,
        gw: GatewayView,
        command: str,
        req: InboundRequest | None,
        code: int | str,
        comment: str,
        outcome: Outcome | None,
        echo: str | None,
    ) -> Response:
        """The answer (HTTP 200) to an authenticated request: ``req`` is None when it could not be
        parsed; ``outcome`` is None for a refusal of the protocol's parser."""

    @abc.abstractmethod
    def gate(
        self,
        gw: GatewayView | None,
        gate: Gate,
        status: int,
        comment: str,
        echo: str | None,
        headers: dict[str, str],
    ) -> Response:
        """The answer of a gate: unknown gateway (404, ``gw`` None), address not allowed (403), too
        many failed attempts (429), authentication failed (401)."""

    def recorded(self, command: str) -> bool:
        """Whether the exchange of this command is kept (those that change something: pay, cancel)."""
        return command in ("pay", "cancel")

    @abc.abstractmethod
    def answer_text(self, response: Response) -> str:
        """The answer as recorded with the exchange."""


@cache
def inbound_protocols() -> dict[str, type[InboundProtocol]]:
    """Installed inbound protocols by name, from the ``paymux.inbound`` entry point group."""
    found: dict[str, type[InboundProtocol]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, InboundProtocol)):
            raise TypeError(f"entry point {ep.name} ({ep.value}) is not a paymux InboundProtocol")
        if cls.name != ep.name:
            raise TypeError(f"entry point {ep.name} ({ep.value}) names a protocol called {cls.name!r}")
        found[ep.name] = cls
    return found


@cache
def inbound_names() -> tuple[str, ...]:
    """The names of the installed inbound protocols, sorted (without loading them)."""
    return tuple(sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}))


@cache
def inbound_prefixes() -> tuple[str, ...]:
    """The URL prefixes of the inbound protocols (``/osmp/`` ...): their routes answer in their own
    format, also the edge's refusals of control characters."""
    return tuple(f"/{name}/" for name in inbound_names())


def inbound_protocol(name: str) -> type[InboundProtocol]:
    try:
        return inbound_protocols()[name]
    except KeyError:
        known = ", ".join(inbound_names()) or "none installed"
        raise UnknownInboundProtocol(f"unknown inbound protocol {name!r} (installed: {known})") from None
