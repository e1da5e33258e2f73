"""The JSON/HTTP funding source: a bank's core system speaking paymux's small funding protocol.

Config:

``url``              base URL of the bank's funding API, required (``http://`` or ``https://``).
``token``            optional; sent as ``Authorization: Bearer <token>``.
``hmac_secret``      optional; every request is signed with HMAC-SHA256 (:func:`signature`).
``timeout``          read/write timeout in seconds, decimal string or int (default ``"10"``).
``connect_timeout``  connect timeout in seconds (default ``"3"``).

Endpoints (amounts are decimal strings in major units, never JSON numbers)::

    POST {url}/debits    {"key", "account", "amount": "150.00", "currency", "description"}
    POST {url}/refunds   {"key", "debit_key", "amount", "currency", "reason"}
    GET  {url}/operations/{key}

Each answers one operation::

    {"result": "done", "key", "kind": "debit"|"refund", "reference", "account", "amount", "currency", ...}
    {"result": "refused", "key", "kind", "code": "insufficient_funds", "message"}
    {"result": "not_found", "key"}                       (GET only, HTTP 404)
    {"result": "unavailable", "code", "message"}         (the bank did nothing: send again, same key)

Classification (see :mod:`paymux.funding.base`): ``done`` and ``refused`` as answered; ``unavailable``
and a connection never established -> ``unreachable``; a lost answer (read timeout, reset after
connecting), an answer that is not one of the above, or one about another key or kind -> ``unknown``.
``status`` reports ``refused`` only when the answer names the operation (its ``kind``): a refused
request (a bad signature) says nothing about the operation, so it is ``unknown``.

The full description, with examples, is docs/funding.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from typing import Any, Literal

import httpx
import orjson

from paymux.funding.base import Debit, FundingAnswer, FundingSource, Outcome, Refund
from paymux.money import MoneyError, format_amount
from paymux.providers.base import UNREACHABLE_ERRORS, base_url_problems, http_timeout, timeout_problems
from paymux.providers.transport import post_bytes

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Paymux-Signature"
TIMESTAMP_HEADER = "X-Paymux-Timestamp"
# an idempotency key travels in a URL path: letters, digits and . _ : - only
KEY_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")

Kind = Literal["debit", "refund"]


def signature(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    """The ``X-Paymux-Signature`` of a request: ``sha256=`` and the hex HMAC-SHA256, keyed with the
    shared secret, of ``"<timestamp>\\n<METHOD> <path>\\n"`` followed by the body's bytes.

    ``path`` is the operation's path below the base URL (``/debits``, ``/operations/K1``) and
    ``timestamp`` the ``X-Paymux-Timestamp`` header (Unix seconds).
    """
    message = f"{timestamp}\n{method} {path}\n".encode() + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def key_problem(key: Any) -> str | None:
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        return f"key {key!r} must be 1 to 128 letters, digits, '.', '_', ':' or '-'"
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class _Reply:
    __slots__ = ("data", "status_code")

    def __init__(self, status_code: int, raw: bytes) -> None:
        self.status_code = status_code
        try:
            parsed = json.loads(raw.decode("utf-8"), parse_float=str)
        except (UnicodeDecodeError, ValueError):
            parsed = None
        self.data: dict[str, Any] | None = parsed if isinstance(parsed, dict) else None

    def bad(self, why: str) -> FundingAnswer:
        code = f"http_{self.status_code}" if self.status_code >= 300 else "bad_response"
        return FundingAnswer("unknown", code=code, message=f"HTTP {self.status_code}: {why}")


class JsonHttpFunding(FundingSource):
    """Client of the JSON/HTTP funding protocol (docs/funding.md)."""

    name = "jsonhttp"

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        super().__init__(config, http)
        self._problems = self.validate_config(config)
        self._base_url = str(config.get("url") or "").rstrip("/")
        self._token = _text(config.get("token"))
        self._secret = _text(config.get("hmac_secret"))
        self._timeout = http_timeout(config)

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[str]:
        problems = base_url_problems(config.get("url"), "https://bank.example/funding")
        for key in ("token", "hmac_secret"):
            if config.get(key) is not None and not isinstance(config.get(key), str):
                problems.append(f"{key} must be a string")
        return problems + timeout_problems(config)

    # -- the three operations ----------------------------------------------------------------------

    async def debit(self, debit: Debit) -> FundingAnswer:
        body = {"key": debit.key, "account": debit.account, "description": debit.description}
        return await self._operate("debit", "/debits", debit.key, debit.amount, debit.currency, body)

    async def refund(self, refund: Refund) -> FundingAnswer:
        body = {"key": refund.key, "debit_key": refund.debit_key, "reason": refund.reason}
        return await self._operate("refund", "/refunds", refund.key, refund.amount, refund.currency, body)

    async def status(self, key: str) -> FundingAnswer:
        if key_problem(key):
            # no request was ever sent under such a key: the source cannot have seen it
            return FundingAnswer("not_found", code="invalid_key", message=key_problem(key))
        reply = await self._send("GET", f"/operations/{key}", b"", key)
        if isinstance(reply, FundingAnswer):
            return reply
        data = reply.data
        if data is None:
            return reply.bad("not a funding protocol answer")
        result = data.get("result")
        if result == "not_found" and data.get("key", key) == key:
            return FundingAnswer("not_found")
        if result == "unavailable":
            return _unavailable(data)
        if result not in ("done", "refused") or data.get("kind") not in ("debit", "refund"):
            # a refusal of the request itself (credentials) says nothing about the operation
            return FundingAnswer(
                "unknown",
                code=_text(data.get("code")) or "bad_response",
                message=_text(data.get("message")) or f"HTTP {reply.status_code}: no operation in the answer",
            )
        return _operation(reply, key, data["kind"])

    async def _operate(
        self, kind: Kind, path: str, key: str, amount: int, currency: str, body: dict[str, Any]
    ) -> FundingAnswer:
        problem = key_problem(key)
        if problem is None and amount <= 0:
            problem = f"amount must be positive (got {amount})"
        try:
            body["amount"] = format_amount(amount, currency)
        except MoneyError as exc:
            problem = problem or str(exc)
        if problem is not None:  # nothing was sent: certainly not done
            return FundingAnswer("refused", code="invalid_request", message=problem, kind=kind)
        body["currency"] = currency
        reply = await self._send("POST", path, orjson.dumps(body), key)
        if isinstance(reply, FundingAnswer):
            return reply
        data = reply.data
        if data is not None and data.get("result") == "unavailable":
            return _unavailable(data)
        return _operation(reply, key, kind)

    # -- transport ---------------------------------------------------------------------------------

    def _headers(self, method: str, path: str, content: bytes) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if method == "POST":
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if self._secret:
            timestamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = signature(self._secret, timestamp, method, path, content)
        return headers

    async def _send(self, method: str, path: str, content: bytes, key: str) -> _Reply | FundingAnswer:
        """One request; the :class:`_Reply`, or the classified answer when none came."""
        if self._problems:
            # nothing can be sent: a debit or refund is certainly not done, a status cannot be known
            outcome: Outcome = "unknown" if method == "GET" else "refused"
            return FundingAnswer(outcome, code="bad_config", message="; ".join(self._problems))
        url = self._base_url + path
        headers = self._headers(method, path, content)
        try:
            if method == "POST":
                status, raw = await post_bytes(self.http, url, content, headers, self._timeout)
            else:
                response = await self.http.get(url, headers=headers, timeout=self._timeout)
                status, raw = response.status_code, response.content
        except httpx.HTTPError as exc:
            answer = self._network_failure(exc)
            log.info("funding %s %s %s: %s (%s)", self.name, method, path, answer.outcome, answer.message)
            return answer
        log.debug("funding %s %s %s: HTTP %s", self.name, method, path, status)
        return _Reply(status, raw)

    def _network_failure(self, exc: httpx.HTTPError) -> FundingAnswer:
        message = self._scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
        if isinstance(exc, UNREACHABLE_ERRORS):
            return FundingAnswer("unreachable", code="unreachable", message=message)
        code = "timeout" if isinstance(exc, httpx.TimeoutException) else "network_error"
        return FundingAnswer("unknown", code=code, message=message)

    def _scrub(self, text: str) -> str:
        """Belt and braces: no secret of the config ever appears in a message."""
        for secret in (self._token, self._secret):
            if secret:
                text = text.replace(secret, "***")
        return text


def _unavailable(data: dict[str, Any]) -> FundingAnswer:
    return FundingAnswer(
        "unreachable",
        code=_text(data.get("code")) or "unavailable",
        message=_text(data.get("message")) or "the funding source is unavailable",
    )


def _operation(reply: _Reply, key: str, kind: Kind) -> FundingAnswer:
    """The answer about the operation under ``key``, which must be a ``kind``."""
    data = reply.data
    if data is None:
        return reply.bad("not a funding protocol answer")
    if data.get("result") == "conflict":  # the key was used for another operation: only status can tell
        return FundingAnswer("unknown", code="key_conflict", message=_text(data.get("message")))
    if data.get("result") not in ("done", "refused"):
        return reply.bad("not a funding protocol answer")
    if data.get("key", key) != key or data.get("kind", kind) != kind:
        return FundingAnswer(
            "unknown",
            code="key_conflict",
            message=f"the answer is about {data.get('kind')} {data.get('key')!r}, not {kind} {key!r}",
        )
    reference = _text(data.get("reference"))
    if data["result"] == "done":
        if reference is None:
            return reply.bad("a done answer without its reference")
        return FundingAnswer("done", reference=reference, kind=kind, message=_text(data.get("message")))
    return FundingAnswer(
        "refused",
        reference=reference,
        code=_text(data.get("code")) or "refused",
        message=_text(data.get("message")),
        kind=kind,
    )
