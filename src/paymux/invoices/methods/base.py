"""The payment method plug-in interface and its registry.

A method plug-in is a :class:`PayMethod` registered in the entry-point group ``paymux.paymethods``
under the name billers list in their ``methods`` (``card``, ``open_banking``, ``redirect``,
``bank_transfer``). Built-in methods are also found through :data:`BUILTIN` when the package's entry
points are not installed (a source checkout).

A plug-in gets its settings (``PAYMUX_PAYMETHODS``: ``{"card": {"url": ..., "secret": ...}}``) and
the hub's HTTP client, and does three things:

- :meth:`PayMethod.start`: begin an attempt - a URL to send the payer to (a 303 redirect), or data
  for our own page (a bank transfer's instructions);
- :meth:`PayMethod.verify_callback`: check a processor's callback (its signature) and read the event;
- :meth:`PayMethod.status`: ask the processor for an attempt's status when its callback is late.

Callbacks and requests are signed with HMAC-SHA256 over ``"{timestamp}.{body}"`` with the method's
``secret``, sent as ``Paymux-Signature: t=<unix seconds>,v1=<hex>`` (:func:`sign`, :func:`verify`).
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
import orjson

from paymux.invoices.models import Biller, Invoice, InvoiceAttempt

ENTRY_POINT_GROUP = "paymux.paymethods"
SIGNATURE_HEADER = "Paymux-Signature"
MAX_SKEW_SECONDS = 300

#: the built-in methods, found here when the entry points are not installed
BUILTIN: dict[str, str] = {
    "card": "paymux.invoices.methods.card:CardMethod",
    "open_banking": "paymux.invoices.methods.openbanking:OpenBankingMethod",
    "redirect": "paymux.invoices.methods.redirect:RedirectMethod",
    "bank_transfer": "paymux.invoices.methods.transfer:TransferMethod",
    "payonline": "paymux.invoices.methods.payonline:PayOnlineMethod",
}
#: the order the payment page lists the built-in methods in (plug-in methods follow)
PAGE_ORDER = ("card", "open_banking", "redirect", "bank_transfer")
#: other names of the built-in methods (as in URLs and older configurations)
ALIASES: dict[str, str] = {"openbanking": "open_banking", "transfer": "bank_transfer"}
FINAL = ("approved", "declined")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


class MethodError(Exception):
    """The processor could not start or answer (not reached, refused, misconfigured)."""


class CallbackRejected(Exception):
    """A callback that is not the processor's (bad or missing signature) or not readable."""


class UnknownMethod(LookupError):
    pass


@dataclass
class Started:
    """What :meth:`PayMethod.start` gives: where to send the payer, or what to show on our page."""

    redirect_url: str | None = None
    page: dict[str, Any] | None = None
    processor_ref: str | None = None
    status: str = "pending"


@dataclass
class CallbackEvent:
    """A verified processor event about an attempt (``reference``: ours)."""

    reference: str
    status: str  # approved, declined, pending
    amount: int | None = None
    currency: str | None = None
    processor_ref: str | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def sign(secret: str, body: bytes, at: int | None = None) -> str:
    """The ``Paymux-Signature`` value of ``body``."""
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> None:
    """Check the ``Paymux-Signature`` of ``body``; :class:`CallbackRejected` when it does not hold."""
    if not secret:
        raise CallbackRejected("the method has no secret configured")
    value = headers.get(SIGNATURE_HEADER) or headers.get(SIGNATURE_HEADER.lower()) or ""
    if len(value) > 400:
        raise CallbackRejected("signature header too long")
    parts = dict(p.split("=", 1) for p in value.split(",") if "=" in p)
    t, mac = parts.get("t", ""), parts.get("v1", "")
    if not t.isdigit() or len(t) > 12 or not mac:
        raise CallbackRejected("missing or malformed signature")
    if abs((time.time() if now is None else now) - int(t)) > MAX_SKEW_SECONDS:
        raise CallbackRejected("signature timestamp too far from now")
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, mac):
        raise CallbackRejected("bad signature")


def read_event(body: bytes) -> CallbackEvent:
    """The common callback body: ``{"reference", "status", "amount" (minor units), "currency", "id"}``."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise CallbackRejected("the body is not JSON") from None
    if not isinstance(data, dict):
        raise CallbackRejected("the body is not a JSON object")
    ref, status = data.get("reference"), data.get("status")
    amount, currency, pid = data.get("amount"), data.get("currency"), data.get("id")
    if not isinstance(ref, str) or not 1 <= len(ref) <= 64:
        raise CallbackRejected("reference missing")
    if status not in ("approved", "declined", "pending"):
        raise CallbackRejected("status must be approved, declined or pending")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0):
        raise CallbackRejected("amount must be a positive integer of minor units")
    if amount is not None and amount > 2**62:
        raise CallbackRejected("amount too large")
    if currency is not None and (
        not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha()
    ):
        raise CallbackRejected("currency must be an ISO 4217 code")
    if pid is not None and (not isinstance(pid, str) or len(pid) > 200):
        raise CallbackRejected("id must be a string of up to 200 characters")
    detail = data.get("detail")
    return CallbackEvent(
        reference=ref,
        status=status,
        amount=amount,
        currency=currency.upper() if isinstance(currency, str) else None,
        processor_ref=pid,
        detail=detail[:500] if isinstance(detail, str) else "",
    )


class PayMethod(abc.ABC):
    """A payment method: see the module's description."""

    name: ClassVar[str]
    #: False: the method only shows instructions (no processor, no callback)
    has_processor: ClassVar[bool] = True
    #: the payment page's title and note of a plug-in method, per language (``en`` is the fallback);
    #: the built-in methods' texts live in :mod:`paymux.invoices.pagetext`
    labels: ClassVar[dict[str, tuple[str, str]]] = {}
    #: True: :meth:`refund` gives money of an approved attempt back through the processor
    supports_refund: ClassVar[bool] = False

    def __init__(
        self, config: Mapping[str, str], http: httpx.AsyncClient, biller: Biller | None = None
    ) -> None:
        self.config = dict(config)
        self.http = http
        self.biller = biller  # whose invoice: its collection account, brand

    @property
    def secret(self) -> str:
        return str(self.config.get("secret") or "")

    def signed_headers(self, body: bytes) -> dict[str, str]:
        return {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self.secret, body)}

    @abc.abstractmethod
    async def start(
        self, attempt: InvoiceAttempt, invoice: Invoice, return_url: str, callback_url: str
    ) -> Started:
        """Begin ``attempt``: a redirect URL for the payer or data for our page."""

    def callback_reference(self, body: bytes) -> str | None:
        """Our attempt's reference named in a callback, read before its signature is checked (to find
        whose secret checks it: a biller may have its own); None when the body names none."""
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        ref = data.get("reference") if isinstance(data, dict) else None
        return ref if isinstance(ref, str) and 1 <= len(ref) <= 64 else None

    def verify_callback(self, headers: Mapping[str, str], body: bytes) -> CallbackEvent:
        """Check the callback's signature with the method's secret and read it."""
        verify(self.secret, headers, body)
        return read_event(body)

    async def status(self, attempt: InvoiceAttempt) -> CallbackEvent | None:
        """The processor's status of the attempt (None: cannot tell)."""
        return None

    async def refund(self, attempt: InvoiceAttempt, amount: int, currency: str, number: str) -> str:
        """Give ``amount`` of an approved attempt back to the payer; ``number`` (ours) makes a repeat
        the same refund. Returns the processor's id of the refund; :class:`MethodError` otherwise."""
        raise MethodError(f"{self.name}: the method does not refund")

    def base_url(self) -> str:
        url = str(self.config.get("url") or "").rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise MethodError(f"{self.name}: no url configured")
        return url

    async def call(self, method: str, url: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """A signed JSON request to the processor; its JSON answer. :class:`MethodError` otherwise."""
        body = orjson.dumps(payload) if payload is not None else b""
        try:
            r = await self.http.request(method, url, content=body, headers=self.signed_headers(body))
        except httpx.HTTPError as e:
            raise MethodError(f"{self.name}: processor not reached: {type(e).__name__}") from None
        if not r.is_success:
            raise MethodError(f"{self.name}: processor answered {r.status_code}")
        try:
            data = r.json()
        except ValueError:
            raise MethodError(f"{self.name}: the processor's answer is not JSON") from None
        if not isinstance(data, dict):
            raise MethodError(f"{self.name}: the processor's answer is not an object")
        return data


def method_name(name: str) -> str:
    """The canonical name of a method (aliases resolved)."""
    return ALIASES.get(name, name)


_found: dict[str, type[PayMethod]] = {}


def method_class(name: str) -> type[PayMethod]:
    """The plug-in registered as ``name`` (an entry point, else a built-in); only those found are
    remembered (a caller's unknown names are not)."""
    name = method_name(name)
    known = _found.get(name)
    if known is not None:
        return known
    if not _NAME.fullmatch(name):
        raise UnknownMethod("a method name is 1 to 32 lower-case letters, digits or _")
    target: Any = None
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            target = ep.load()
            break
    if target is None and name in BUILTIN:
        module, _, attr = BUILTIN[name].partition(":")
        target = getattr(import_module(module), attr)
    if target is None:
        raise UnknownMethod(f"no payment method plug-in named {name!r}")
    if not (isinstance(target, type) and issubclass(target, PayMethod)):
        raise UnknownMethod(f"{name}: not a PayMethod")
    _found[name] = target
    return target


def method_order(methods: list[str]) -> list[str]:
    """The built-in methods in the page's order, then plug-in methods in the order given, once each."""
    known = [m for m in PAGE_ORDER if m in methods]
    return known + [m for m in dict.fromkeys(methods) if m not in PAGE_ORDER]


def method_names() -> list[str]:
    return sorted({*BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


class ProcessorMethod(PayMethod):
    """A method whose processor takes a signed ``POST {url}{create_path}`` (JSON), answers
    ``{"id", "<redirect_key>"}`` and tells ``GET {url}{create_path}/{id}`` (the status poll)."""

    create_path: ClassVar[str] = "/api/sessions"
    redirect_key: ClassVar[str] = "checkout_url"

    def payload(
        self, attempt: InvoiceAttempt, invoice: Invoice, return_url: str, callback_url: str
    ) -> dict[str, Any]:
        return {
            "reference": attempt.reference,
            "amount": attempt.amount,
            "currency": attempt.currency,
            "description": f"{invoice.number}"[:140],
            "merchant": str(self.config.get("merchant") or ""),
            "return_url": return_url,
            "callback_url": callback_url,
        }

    async def start(
        self, attempt: InvoiceAttempt, invoice: Invoice, return_url: str, callback_url: str
    ) -> Started:
        url = self.base_url() + self.create_path
        data = await self.call("POST", url, self.payload(attempt, invoice, return_url, callback_url))
        pid, target = data.get("id"), data.get(self.redirect_key)
        if not isinstance(pid, str) or not 1 <= len(pid) <= 200:
            raise MethodError(f"{self.name}: the processor's answer has no id")
        if (
            not isinstance(target, str)
            or not target.startswith(("https://", "http://"))
            or len(target) > 2000
        ):
            raise MethodError(f"{self.name}: the processor's answer has no {self.redirect_key}")
        return Started(redirect_url=target, processor_ref=pid, status="pending")

    async def refund(self, attempt: InvoiceAttempt, amount: int, currency: str, number: str) -> str:
        """``POST {url}{create_path}/{id}/refunds`` ``{"reference", "amount", "currency"}``, answered
        ``{"id", "status": "refunded"}``."""
        if not self.supports_refund:
            return await super().refund(attempt, amount, currency, number)
        if not attempt.processor_ref:
            raise MethodError(f"{self.name}: the attempt has no processor id to refund")
        url = f"{self.base_url()}{self.create_path}/{quote(attempt.processor_ref, safe='')}/refunds"
        data = await self.call("POST", url, {"reference": number, "amount": amount, "currency": currency})
        rid = data.get("id")
        if data.get("status") != "refunded" or not isinstance(rid, str) or not 1 <= len(rid) <= 200:
            raise MethodError(f"{self.name}: the processor did not refund ({str(data.get('status'))[:40]})")
        return rid

    async def status(self, attempt: InvoiceAttempt) -> CallbackEvent | None:
        if not attempt.processor_ref:
            return None
        url = f"{self.base_url()}{self.create_path}/{quote(attempt.processor_ref, safe='')}"
        data = await self.call("GET", url)
        event = read_event(orjson.dumps(data))
        if event.reference != attempt.reference:
            raise MethodError(f"{self.name}: the processor answered about another attempt")
        return event
