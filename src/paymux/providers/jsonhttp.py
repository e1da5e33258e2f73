"""Generic JSON/HTTP provider protocol (client side).

paymux's own simple protocol for providers that integrate with a hub directly. Every call is an
HTTP ``POST`` of a JSON object to ``{url}/<step>``; the answer is a JSON object.

Provider config:

``url``              base URL, required (``http://`` or ``https://``).
``token``            optional; sent as ``Authorization: Bearer <token>``, never recorded.
``timeout``          read/write timeout in seconds, decimal string or int (default ``"10"``).
``connect_timeout``  connect timeout in seconds (default ``"3"``).

Endpoints (amounts are decimal strings in major units)::

    POST {url}/check   {"txn_id", "service", "account", "amount": "150.00", "currency", "fields": {}}
        -> {"result": "ok", "info": {...}}
         | {"result": "rejected", "code": "5", "message": "account not found"}
         | {"result": "error", "code": "...", "message": "...", "temporary": true|false}
    POST {url}/pay     {"txn_id", "txn_date": "2026-11-22T10:00:00Z", "service", "account",
                        "amount", "currency", "fields"}
        -> {"result": "ok", "status": "succeeded"|"pending", "provider_txn_id": "..."}
         | {"result": "error", "code", "message", "temporary": bool}
       A repeated pay with the same txn_id returns the original outcome (idempotent).
    POST {url}/status  {"txn_id"}
        -> {"status": "succeeded"|"pending"|"failed"|"not_found", "provider_txn_id", "code", "message"}

Classification (see :mod:`paymux.providers.base`):

* connection not established (connect error/timeout, pool timeout) -> ``unreachable``;
* ``rejected`` -> ``fatal``; ``error`` -> ``temporary`` when ``"temporary": true``, else ``fatal``;
* check: ``ok`` -> ``ok``; a lost or malformed answer -> ``temporary`` (nothing was changed);
* pay: ``ok`` + ``succeeded`` -> ``ok``, ``ok`` + ``pending`` -> ``pending``; a lost answer (read or
  write failure after connecting, read timeout), a malformed answer or a non-protocol HTTP 5xx/2xx
  answer -> ``unknown`` (the payment may have been done); a non-protocol 408/429 -> ``temporary``,
  another non-protocol 4xx -> ``fatal``;
* status: ``succeeded`` -> ``ok``, ``pending`` -> ``pending``, ``failed`` -> ``fatal``,
  ``not_found`` -> ``not_found``; anything else (errors, lost or malformed answers) -> ``temporary``:
  a status call never reports ``fatal`` unless the provider says the payment failed.

Numbers with a fraction in answers are kept as their literal text (never parsed as floats).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any, Literal

import httpx
import orjson

from paymux.masking import mask_secrets
from paymux.money import MoneyError, format_amount
from paymux.providers.base import (
    CheckRequest,
    Exchange,
    Outcome,
    PayRequest,
    Protocol,
    ProtocolResult,
    StatusRequest,
    base_url_problems,
    display_url,
    http_timeout,
    network_failure,
    timeout_problems,
)
from paymux.providers.transport import post_bytes

Step = Literal["check", "pay", "status"]

MAX_RECORDED_TEXT = 4000  # characters of a non-JSON answer kept in an Exchange


def _format_date(when: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, whole seconds (naive datetimes are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    u = when if when.tzinfo is dt.UTC else when.astimezone(dt.UTC)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (u.year, u.month, u.day, u.hour, u.minute, u.second)  # noqa: UP031


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text, parse_float=str)
    except ValueError:
        return None


def _opt_str(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


class _Answer:
    """An HTTP answer: status code, raw text and the decoded JSON object (``None`` if it is not one)."""

    __slots__ = ("data", "status_code", "text")

    def __init__(self, status_code: int, text: str) -> None:
        self.status_code = status_code
        self.text = text
        parsed = _parse_json(text)
        self.data: dict[str, Any] | None = parsed if isinstance(parsed, dict) else None


class JsonHttpProtocol(Protocol):
    """Client of the generic JSON/HTTP provider protocol."""

    name = "jsonhttp"
    secret_config_keys = frozenset({"token"})

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        super().__init__(config, http)
        self._problems = self.validate_config(config)
        self._base_url = str(config.get("url") or "").rstrip("/")
        token = config.get("token")
        self._token: str | None = token if isinstance(token, str) and token else None
        self._timeout = http_timeout(config)

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[str]:
        problems = base_url_problems(config.get("url"), "https://provider.example/api")
        token = config.get("token")
        if token is not None and not isinstance(token, str):
            problems.append("token must be a string")
        problems += timeout_problems(config)
        return problems

    # -- the three steps -------------------------------------------------------------------------

    async def check(self, req: CheckRequest) -> ProtocolResult:
        try:
            amount = format_amount(req.amount, req.currency)
        except MoneyError as exc:
            return ProtocolResult("fatal", code="invalid_request", message=str(exc))
        body = {
            "txn_id": req.txn_id,
            "service": req.service_code,
            "account": req.account,
            "amount": amount,
            "currency": req.currency,
            "fields": dict(req.fields),
        }
        exchanges: list[Exchange] = []
        answer = await self._post("check", body, exchanges)
        if isinstance(answer, ProtocolResult):
            return answer
        result = self._classify_check(answer)
        result.exchanges = exchanges
        return result

    async def pay(self, req: PayRequest) -> ProtocolResult:
        try:
            amount = format_amount(req.amount, req.currency)
        except MoneyError as exc:
            return ProtocolResult("fatal", code="invalid_request", message=str(exc))
        body = {
            "txn_id": req.txn_id,
            "txn_date": _format_date(req.txn_date),
            "service": req.service_code,
            "account": req.account,
            "amount": amount,
            "currency": req.currency,
            "fields": dict(req.fields),
        }
        exchanges: list[Exchange] = []
        answer = await self._post("pay", body, exchanges)
        if isinstance(answer, ProtocolResult):
            return answer
        result = self._classify_pay(answer)
        result.exchanges = exchanges
        return result

    async def status(self, req: StatusRequest) -> ProtocolResult:
        exchanges: list[Exchange] = []
        answer = await self._post("status", {"txn_id": req.txn_id}, exchanges)
        if isinstance(answer, ProtocolResult):
            return answer
        result = self._classify_status(answer)
        result.exchanges = exchanges
        return result

    # -- transport -------------------------------------------------------------------------------

    async def _post(
        self, step: Step, body: dict[str, Any], exchanges: list[Exchange]
    ) -> _Answer | ProtocolResult:
        """Send one request; an :class:`_Answer`, or the classified result when no answer came."""
        if self._problems:
            return ProtocolResult("fatal", code="bad_config", message="; ".join(self._problems))
        url = f"{self._base_url}/{step}"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        content = orjson.dumps(body)
        recorded_request = self._scrub(orjson.dumps(mask_secrets(body)).decode())
        recorded_url = display_url(url)
        started = time.monotonic_ns()
        try:
            status, raw = await post_bytes(self.http, url, content, headers, self._timeout)
        except httpx.HTTPError as exc:
            elapsed = (time.monotonic_ns() - started) // 1_000_000
            exchanges.append(Exchange(step, recorded_url, recorded_request, None, None, elapsed))
            return self._network_failure(step, exc, exchanges)
        elapsed = (time.monotonic_ns() - started) // 1_000_000
        answer = _Answer(status, raw.decode("utf-8", errors="replace"))
        exchanges.append(
            Exchange(
                step, recorded_url, recorded_request, self._record_answer(answer), answer.status_code, elapsed
            )
        )
        return answer

    def _network_failure(self, step: Step, exc: httpx.HTTPError, exchanges: list[Exchange]) -> ProtocolResult:
        message = self._scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
        outcome, code = network_failure(step, exc)
        return ProtocolResult(outcome, code=code, message=message, exchanges=exchanges)

    def _record_answer(self, answer: _Answer) -> str:
        if answer.data is not None:
            return self._scrub(orjson.dumps(mask_secrets(answer.data)).decode())
        text = answer.text
        if len(text) > MAX_RECORDED_TEXT:
            text = text[:MAX_RECORDED_TEXT] + "…"
        return self._scrub(text)

    def _scrub(self, text: str) -> str:
        """Belt and braces: the token never appears in anything recorded."""
        return text.replace(self._token, "***") if self._token else text

    # -- classification --------------------------------------------------------------------------

    @staticmethod
    def _error_result(data: dict[str, Any]) -> ProtocolResult:
        outcome: Outcome = "temporary" if data.get("temporary") is True else "fatal"
        return ProtocolResult(
            outcome, code=_opt_str(data.get("code")), message=_opt_str(data.get("message")), info=_info(data)
        )

    @staticmethod
    def _not_protocol(answer: _Answer, outcome: Outcome) -> ProtocolResult:
        return ProtocolResult(
            outcome,
            code=f"http_{answer.status_code}" if answer.status_code >= 300 else "bad_response",
            message=f"HTTP {answer.status_code}: not a JSON/HTTP protocol answer",
        )

    def _classify_check(self, answer: _Answer) -> ProtocolResult:
        data = answer.data
        result = data.get("result") if data else None
        if data is None or result not in ("ok", "rejected", "error"):
            # Nothing is changed by a check: whatever went wrong, it may be asked again.
            if 400 <= answer.status_code < 500 and answer.status_code not in (408, 429):
                return self._not_protocol(answer, "fatal")
            return self._not_protocol(answer, "temporary")
        if result == "ok":
            info = _info(data)
            return ProtocolResult(
                "ok",
                code=_opt_str(data.get("code")),
                message=_opt_str(data.get("message")),
                info=info,
                fields=_text_fields(info),
            )
        if result == "rejected":
            return ProtocolResult(
                "fatal",
                code=_opt_str(data.get("code")),
                message=_opt_str(data.get("message")),
                info=_info(data),
            )
        return self._error_result(data)

    def _classify_pay(self, answer: _Answer) -> ProtocolResult:
        data = answer.data
        result = data.get("result") if data else None
        if data is None or result not in ("ok", "rejected", "error"):
            if answer.status_code in (408, 429):
                return self._not_protocol(answer, "temporary")
            if 400 <= answer.status_code < 500:
                return self._not_protocol(answer, "fatal")
            # A 2xx/3xx/5xx that is not a protocol answer: the payment may have been done.
            return self._not_protocol(answer, "unknown")
        provider_txn_id = _opt_str(data.get("provider_txn_id"))
        code, message = _opt_str(data.get("code")), _opt_str(data.get("message"))
        if result == "ok":
            status = data.get("status")
            outcome: Outcome
            if status == "succeeded":
                outcome = "ok"
            elif status == "pending":
                outcome = "pending"
            elif status == "failed":
                outcome = "fatal"
            else:
                return ProtocolResult(
                    "unknown",
                    code="bad_response",
                    provider_txn_id=provider_txn_id,
                    message=f"pay answered ok with an unknown status {status!r}",
                    info=_info(data),
                )
            return ProtocolResult(
                outcome, code=code, message=message, provider_txn_id=provider_txn_id, info=_info(data)
            )
        if result == "rejected":
            return ProtocolResult(
                "fatal", code=code, message=message, provider_txn_id=provider_txn_id, info=_info(data)
            )
        error = self._error_result(data)
        error.provider_txn_id = provider_txn_id
        return error

    def _classify_status(self, answer: _Answer) -> ProtocolResult:
        data = answer.data
        status = data.get("status") if data else None
        mapping: dict[Any, Outcome] = {
            "succeeded": "ok",
            "pending": "pending",
            "failed": "fatal",
            "not_found": "not_found",
        }
        if data is None or status not in mapping:
            if data is not None and data.get("result") == "error":
                # Even a "final" error about the status request says nothing about the payment.
                return ProtocolResult(
                    "temporary",
                    code=_opt_str(data.get("code")),
                    message=_opt_str(data.get("message")),
                    info=_info(data),
                )
            return self._not_protocol(answer, "temporary")
        return ProtocolResult(
            mapping[status],
            code=_opt_str(data.get("code")),
            message=_opt_str(data.get("message")),
            provider_txn_id=_opt_str(data.get("provider_txn_id")),
            info=_info(data),
        )


def _info(data: dict[str, Any]) -> dict[str, Any]:
    info = data.get("info")
    return dict(info) if isinstance(info, dict) else {}


def _text_fields(info: dict[str, Any]) -> dict[str, str]:
    """The check info's text and whole-number values: the account details a payer may be shown."""
    return {
        str(name): str(value)
        for name, value in info.items()
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    }
