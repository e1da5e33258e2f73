"""OSMP (QIWI provider protocol) client: the hub calls a provider that speaks OSMP.

Every call is one HTTP request (``GET`` with a query string, or ``POST`` of a form, as configured)
to the provider's URL; the answer is an XML document::

    ?command=getInfo&account=9001234567&sum=10.45&ccy=RUB[&<extra fields>]
    ?command=check&txn_id=1234&account=9001234567&sum=10.45&ccy=RUB[&<extra fields>]
    ?command=pay&txn_id=1234&txn_date=20261122100000&account=9001234567&sum=10.45&ccy=RUB[&...]

    <?xml version="1.0" encoding="UTF-8"?>
    <response><osmp_txn_id>1234</osmp_txn_id><prv_txn>P-77</prv_txn><sum>10.45</sum>
      <result>0</result><comment>OK</comment>[<fields><field1 name="balance">5.00</field1></fields>]
    </response>

The protocol's payment is two steps with one ``txn_id``: ``check`` registers it at the provider
(the account is checked), ``pay`` confirms it. ``getInfo`` looks an account up and registers
nothing (it has no ``txn_id``). ``txn_id`` is a whole number of at most 20 digits; anything else is
refused before sending (``fatal`` / ``invalid_request``). The result codes and whether each is fatal
are in :mod:`paymux.providers.osmp_codes`.

Provider config:

``url``               the provider's OSMP handler, required (``http://`` or ``https://``, no query).
``method``            ``GET`` (default) or ``POST`` (form-encoded body).
``username``, ``password``  optional HTTP basic auth (the password is never recorded).
``cert_file``, ``key_file``, ``key_password``  optional client certificate (PEM files).
``ca_file``           optional CA bundle to verify the provider's certificate; ``verify: false``
                      switches verification off (tests only).
``params``            optional fixed parameters sent with every request (e.g. ``{prv_id: "17"}``).
``service_param``     optional: the parameter that carries the provider's service code.
``send_ccy``          send ``ccy`` (default ``true``).
``txn_date_timezone`` IANA time zone of ``txn_date`` (default ``UTC``).
``check_before_pay``  send ``check`` with the payment's ``txn_id`` before its ``pay`` (default
                      ``true``, as the protocol's payment process goes); ``false`` for providers
                      that take a ``pay`` alone.
``account_check``     what the hub's account checks send: ``check`` (default; every OSMP provider
                      has it) or ``getInfo`` (for providers that have it: registers nothing).
``timeout``, ``connect_timeout``  seconds, decimal strings (defaults ``"10"`` and ``"3"``).

Classification (see :mod:`paymux.providers.base`):

* result ``0`` -> ``ok``; ``1`` -> ``temporary``; ``90`` -> ``pending`` for ``pay`` (the provider
  has the payment and has not finished it) and ``temporary`` for ``check`` and ``getInfo``; any
  other code -> ``fatal``;
* the connection was not established -> ``unreachable``;
* ``check``, ``getInfo``: a lost or malformed answer -> ``temporary`` (they move no money);
* ``pay``: a lost answer (read timeout, connection closed), malformed XML, an answer that is not
  XML (e.g. an HTML page) or a non-OSMP HTTP 5xx/2xx -> ``unknown``; a non-OSMP 408/429 ->
  ``temporary``, another non-OSMP 4xx (e.g. 401, wrong credentials) -> ``fatal``. A ``0`` whose
  ``sum`` differs from the one sent is ``unknown`` too (someone must look at it);
* ``pay`` with ``check_before_pay``: a check that is not ``ok`` ends the step there, and since the
  pay was not sent its outcome is the check's (``fatal`` refusal, ``temporary``, ``unreachable``),
  never ``unknown``.

Status: OSMP has no status command. A payment whose answer was lost is settled by sending the same
``pay`` again with the same ``txn_id``: the provider does not pay twice and answers the original
outcome. :meth:`OsmpProtocol.status` does exactly that, with the pay request the hub passes in the
:class:`StatusRequest` (or, failing that, the one this process remembers having sent). With
``check_before_pay`` the repeated pay is preceded by the same check (a payment whose first attempt
never reached the provider is then registered before it is paid); the check's answer decides
nothing unless there is none (then ``temporary``): the pay's answer does. The result is classified
as for ``pay``, except that nothing short of an OSMP result code is ever ``fatal`` (lost or
malformed answers are ``temporary``).
"""

from __future__ import annotations

import datetime as dt
import re
import ssl
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode
from xml.etree.ElementTree import Element, ParseError
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import defusedxml.ElementTree as SafeET
import httpx
from defusedxml import DefusedXmlException

from paymux.masking import mask_secrets
from paymux.money import MoneyError, format_amount, parse_amount
from paymux.providers.base import (
    CheckRequest,
    Exchange,
    Outcome,
    PayRequest,
    Protocol,
    ProtocolResult,
    StatusRequest,
    http_timeout,
    network_failure,
    timeout_problems,
)
from paymux.providers.osmp_codes import NOT_COMPLETED, OK, TEMPORARY, result_code

Step = Literal["getInfo", "check", "pay", "status"]
AccountCheck = Literal["check", "getInfo"]

MAX_RECORDED_TEXT = 4000  # characters of an answer kept in an Exchange
REMEMBERED_PAYS = 100_000  # pay requests kept for settling lost answers (oldest forgotten first)
RESERVED_PARAMS = frozenset({"command", "txn_id", "txn_date", "account", "sum", "ccy"})
XML_CONTENT_TYPES = ("application/xml", "text/xml", "text/plain")
STANDARD_ELEMENTS = frozenset({"osmp_txn_id", "prv_txn", "sum", "result", "comment"})
TXN_ID = re.compile(r"^[0-9]{1,20}\Z")  # the protocol's txn_id: a whole number of up to 20 digits
ACCOUNT_CHECKS = ("check", "getInfo")


# Pay requests sent by this process and not yet final, by (provider url, txn_id): what status()
# repeats. Module-level so that a protocol instance rebuilt after a config change still has them.
_remembered: OrderedDict[tuple[str, str], PayRequest] = OrderedDict()


class OsmpAnswer:
    """A parsed OSMP ``<response>``."""

    __slots__ = ("comment", "fields", "osmp_txn_id", "prv_txn", "result", "sum")

    def __init__(
        self,
        result: int,
        osmp_txn_id: str | None,
        prv_txn: str | None,
        sum_: str | None,
        comment: str | None,
        fields: dict[str, str],
    ) -> None:
        self.result = result
        self.osmp_txn_id = osmp_txn_id
        self.prv_txn = prv_txn
        self.sum = sum_
        self.comment = comment
        self.fields = fields


_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def answer_text(response: httpx.Response) -> str:
    """The answer's text: by the HTTP charset if there is one, else the XML declaration, else UTF-8.

    Many OSMP providers answer in windows-1251 and say so only in the XML declaration.
    """
    if response.charset_encoding:
        return response.text
    declared = _DECLARED_ENCODING.match(response.content[:200])
    if declared:
        try:
            return response.content.decode(declared.group(1).decode("ascii"), errors="replace")
        except LookupError:
            pass
    return response.content.decode("utf-8", errors="replace")


def _text(root: Element, tag: str) -> str | None:
    value = root.findtext(tag)
    if value is None:
        return None
    value = value.strip()
    return value or None


def parse_response(text: str) -> OsmpAnswer:
    """Parse an OSMP answer; ``ValueError`` saying what is wrong if it is not one.

    DTDs and entities are refused (defusedxml). Extra elements become ``fields``: a simple element
    by its tag, the children of a container such as ``<fields>`` by their ``name`` attribute (or tag).
    """
    try:
        root = SafeET.fromstring(text, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        raise ValueError(f"malformed XML: {exc}") from None
    if root.tag != "response":
        raise ValueError(f"the root element is <{root.tag}>, not <response>")
    raw_result = _text(root, "result")
    if raw_result is None:
        raise ValueError("the answer has no <result>")
    if not raw_result.isascii() or not raw_result.isdigit():
        raise ValueError(f"<result> {raw_result!r} is not a whole number")
    fields: dict[str, str] = {}
    for child in root:
        if child.tag in STANDARD_ELEMENTS:
            continue
        if len(child):
            for item in child:
                fields[item.get("name") or item.tag] = (item.text or "").strip()
        else:
            fields[child.tag] = (child.text or "").strip()
    return OsmpAnswer(
        int(raw_result),
        _text(root, "osmp_txn_id"),
        _text(root, "prv_txn"),
        _text(root, "sum"),
        _text(root, "comment"),
        fields,
    )


class _Reply:
    """An HTTP answer: status code, content type, raw text and the parsed answer (or why not)."""

    __slots__ = ("answer", "content_type", "problem", "status_code", "text")

    def __init__(self, status_code: int, content_type: str, text: str, txn_id: str | None) -> None:
        self.status_code = status_code
        self.content_type = content_type
        self.text = text
        self.answer: OsmpAnswer | None = None
        self.problem: str | None = None
        media = content_type.split(";", 1)[0].strip().lower()
        if status_code != 200:
            self.problem = f"HTTP {status_code}: not an OSMP answer"
        elif media and media not in XML_CONTENT_TYPES and not media.endswith("+xml"):
            self.problem = f"HTTP 200 with content type {media!r}: not an OSMP (XML) answer"
        else:
            try:
                answer = parse_response(text)
            except ValueError as exc:
                self.problem = f"not an OSMP answer: {exc}"
            else:
                if txn_id is not None and answer.osmp_txn_id is not None and answer.osmp_txn_id != txn_id:
                    self.problem = f"the answer is about osmp_txn_id {answer.osmp_txn_id!r}, not {txn_id!r}"
                else:
                    self.answer = answer


class OsmpProtocol(Protocol):
    """Client of the OSMP (QIWI) provider protocol."""

    name = "osmp"
    secret_config_keys = frozenset({"password", "key_password"})

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        super().__init__(config, http)
        self._problems = self.validate_config(config)
        self._url = str(config.get("url") or "")
        self._method = str(config.get("method") or "GET").upper()
        username, password = config.get("username"), config.get("password")
        self._password = password if isinstance(password, str) and password else None
        self._auth: httpx.BasicAuth | None = (
            httpx.BasicAuth(str(username), str(password or ""))
            if isinstance(username, str) and username
            else None
        )
        params = config.get("params")
        self._params: dict[str, str] = (
            {str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else {}
        )
        service_param = config.get("service_param")
        self._service_param = service_param if isinstance(service_param, str) and service_param else None
        self._send_ccy = config.get("send_ccy", True) is not False
        self._check_before_pay = config.get("check_before_pay", True) is not False
        self._account_check: AccountCheck = "getInfo" if config.get("account_check") == "getInfo" else "check"
        try:
            self._tz: dt.tzinfo = ZoneInfo(str(config.get("txn_date_timezone") or "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            self._tz = dt.UTC
        self._timeout = http_timeout(config)
        self._tls = any(config.get(k) for k in ("cert_file", "ca_file")) or config.get("verify") is False
        self._own_http: httpx.AsyncClient | None = None

    # -- configuration ---------------------------------------------------------------------------

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        url = config.get("url")
        if not url:
            problems.append(
                "url is required (the provider's OSMP handler, e.g. https://provider.example/osmp)"
            )
        elif not isinstance(url, str):
            problems.append(f"url must be a string (got {url!r})")
        else:
            try:
                parsed = httpx.URL(url)
            except (httpx.InvalidURL, TypeError, ValueError) as exc:
                problems.append(f"url {url!r} is not a valid URL: {exc}")
            else:
                if parsed.scheme not in ("http", "https") or not parsed.host:
                    problems.append(f"url {url!r} must be an absolute http:// or https:// URL")
                elif parsed.query or parsed.fragment:
                    problems.append(f"url {url!r} must not have a query or fragment (use params)")
                elif parsed.userinfo:
                    problems.append("url must not carry credentials (use username and password)")
        method = config.get("method", "GET")
        if not isinstance(method, str) or method.upper() not in ("GET", "POST"):
            problems.append(f"method must be GET or POST (got {method!r})")
        for key in ("username", "password", "key_password"):
            value = config.get(key)
            if value is not None and not isinstance(value, str):
                problems.append(f"{key} must be a string")
        if config.get("password") and not config.get("username"):
            problems.append("password is set but username is not (basic auth needs both)")
        for key in ("cert_file", "key_file", "ca_file"):
            value = config.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or not value:
                problems.append(f"{key} must be a file path")
            elif not Path(value).is_file():
                problems.append(f"{key} {value!r} is not a readable file")
        if config.get("key_file") and not config.get("cert_file"):
            problems.append("key_file is set but cert_file is not")
        verify = config.get("verify", True)
        if not isinstance(verify, bool):
            problems.append(f"verify must be true or false (got {verify!r})")
        params = config.get("params")
        if params is not None:
            if not isinstance(params, dict) or not all(
                isinstance(k, str) and isinstance(v, str | int) and not isinstance(v, bool)
                for k, v in params.items()
            ):
                problems.append("params must be a mapping of parameter names to string values")
            else:
                clash = sorted(RESERVED_PARAMS & set(params))
                if clash:
                    problems.append(f"params must not set the protocol's own parameters: {', '.join(clash)}")
        service_param = config.get("service_param")
        if service_param is not None and (not isinstance(service_param, str) or not service_param):
            problems.append("service_param must be a parameter name")
        elif isinstance(service_param, str) and service_param in RESERVED_PARAMS:
            problems.append(f"service_param {service_param!r} is one of the protocol's own parameters")
        for key in ("send_ccy", "check_before_pay"):
            if not isinstance(config.get(key, True), bool):
                problems.append(f"{key} must be true or false")
        account_check = config.get("account_check", "check")
        if account_check not in ACCOUNT_CHECKS:
            problems.append(f"account_check must be check or getInfo (got {account_check!r})")
        tz = config.get("txn_date_timezone")
        if tz is not None:
            try:
                ZoneInfo(str(tz))
            except (ZoneInfoNotFoundError, ValueError):
                problems.append(f"txn_date_timezone {tz!r} is not an IANA time zone such as Europe/Moscow")
        problems += timeout_problems(config)
        return problems

    def _client(self) -> httpx.AsyncClient:
        """The shared client, or this provider's own when it needs its own TLS settings."""
        if not self._tls:
            return self.http
        if self._own_http is None:
            cfg = self.config
            context = ssl.create_default_context(cafile=cfg.get("ca_file") or None)
            if cfg.get("verify") is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if cfg.get("cert_file"):
                context.load_cert_chain(
                    cfg["cert_file"], cfg.get("key_file") or None, cfg.get("key_password") or None
                )
            self._own_http = httpx.AsyncClient(verify=context)
        return self._own_http

    async def aclose(self) -> None:
        """Close this provider's own HTTP client, if it made one (client certificates)."""
        if self._own_http is not None:
            await self._own_http.aclose()
            self._own_http = None

    # -- the steps -------------------------------------------------------------------------------

    async def check(self, req: CheckRequest) -> ProtocolResult:
        """The hub's account check: ``check`` with ``req.txn_id``, or ``getInfo`` when configured."""
        if self._account_check == "getInfo":
            return await self.get_info(req)
        return await self._check(
            req.txn_id, req.service_code, req.account, req.amount, req.currency, req.fields
        )

    async def get_info(self, req: CheckRequest) -> ProtocolResult:
        """``getInfo``: the account's state and details; registers nothing (``req.txn_id`` is not sent)."""
        params = self._params_for(
            "getInfo", None, req.service_code, req.account, req.amount, req.currency, req.fields
        )
        if isinstance(params, ProtocolResult):
            return params
        exchanges: list[Exchange] = []
        reply = await self._send("getInfo", params, None, exchanges)
        return self._lookup_result(reply, exchanges)

    async def _check(
        self,
        txn_id: str,
        service_code: str,
        account: str,
        amount: int,
        currency: str,
        fields: dict[str, str],
        exchanges: list[Exchange] | None = None,
    ) -> ProtocolResult:
        params = self._params_for("check", txn_id, service_code, account, amount, currency, fields)
        if isinstance(params, ProtocolResult):
            return params
        exchanges = [] if exchanges is None else exchanges
        reply = await self._send("check", params, txn_id, exchanges)
        return self._lookup_result(reply, exchanges)

    def _lookup_result(self, reply: _Reply | ProtocolResult, exchanges: list[Exchange]) -> ProtocolResult:
        """How a ``check`` or ``getInfo`` answer is classified (they move no money)."""
        if isinstance(reply, ProtocolResult):
            return reply
        if reply.answer is None:
            outcome: Outcome = (
                "fatal"
                if 400 <= reply.status_code < 500 and reply.status_code not in (408, 429)
                else "temporary"
            )
            return self._not_protocol(reply, outcome, exchanges)
        code = reply.answer.result
        outcome = "ok" if code == OK else ("temporary" if code in (TEMPORARY, NOT_COMPLETED) else "fatal")
        return self._result(outcome, reply.answer, exchanges)

    async def pay(self, req: PayRequest) -> ProtocolResult:
        key = (self._url, req.txn_id)
        _remembered[key] = req
        _remembered.move_to_end(key)
        while len(_remembered) > REMEMBERED_PAYS:
            _remembered.popitem(last=False)
        exchanges: list[Exchange] = []
        if self._check_before_pay:
            checked = await self._check_before(req, exchanges)
            if checked.outcome != "ok":
                # the pay was not sent: the check's refusal is the provider's answer to this payment
                if checked.outcome == "fatal":
                    _remembered.pop(key, None)
                return checked
        result = await self._pay(req, "pay", exchanges)
        if result.outcome in ("ok", "fatal"):
            _remembered.pop(key, None)
        return result

    async def status(self, req: StatusRequest) -> ProtocolResult:
        key = (self._url, req.txn_id)
        # the original pay request comes with the status request (the hub's processing passes it,
        # so any process settles the payment); failing that, this process's memory of it
        original = req.pay if isinstance(req.pay, PayRequest) else _remembered.get(key)
        if original is None:
            return ProtocolResult(
                "temporary",
                code="cannot_settle",
                message=(
                    f"OSMP has no status command and the pay request of txn_id {req.txn_id} was not given "
                    "and is not known to this process: it cannot be repeated to settle the payment"
                ),
            )
        exchanges: list[Exchange] = []
        if self._check_before_pay:
            checked = await self._check_before(original, exchanges)
            if "result" not in checked.info and checked.exchanges:
                # sent, and no OSMP answer came back: nothing is known yet, ask again later
                if checked.outcome != "unreachable":
                    checked.outcome = "temporary"
                return checked
        result = await self._pay(original, "status", exchanges)
        if result.outcome in ("ok", "fatal"):
            _remembered.pop(key, None)
        return result

    async def _check_before(self, req: PayRequest, exchanges: list[Exchange]) -> ProtocolResult:
        """The check that registers a payment before its pay, with the same ``txn_id``."""
        result = await self._check(
            req.txn_id, req.service_code, req.account, req.amount, req.currency, req.fields, exchanges
        )
        if result.outcome != "ok":
            result.message = "check before pay: " + (result.message or result.outcome)
        return result

    async def _pay(self, req: PayRequest, step: Step, exchanges: list[Exchange]) -> ProtocolResult:
        params = self._params_for(
            "pay",
            req.txn_id,
            req.service_code,
            req.account,
            req.amount,
            req.currency,
            req.fields,
            txn_date=self._txn_date(req.txn_date),
        )
        if isinstance(params, ProtocolResult):
            return params
        reply = await self._send(step, params, req.txn_id, exchanges)
        if isinstance(reply, ProtocolResult):
            return reply
        outcome: Outcome
        if reply.answer is None:
            if step == "status":
                outcome = "temporary"  # a status never says fatal unless the provider does
            elif reply.status_code in (408, 429):
                outcome = "temporary"
            elif 400 <= reply.status_code < 500:
                outcome = "fatal"
            else:
                outcome = "unknown"  # the payment may have been done
            return self._not_protocol(reply, outcome, exchanges)
        answer = reply.answer
        if answer.result == OK:
            if answer.sum is not None and not self._same_sum(answer.sum, req.amount, req.currency):
                result = self._result("unknown", answer, exchanges)
                result.code = "sum_mismatch"
                result.message = (
                    f"the provider answered OK for sum {answer.sum}, but "
                    f"{format_amount(req.amount, req.currency)} was sent; " + (result.message or "")
                )
                return result
            return self._result("ok", answer, exchanges)
        if answer.result == TEMPORARY:
            return self._result("temporary", answer, exchanges)
        if answer.result == NOT_COMPLETED:
            return self._result("pending", answer, exchanges)
        return self._result("fatal", answer, exchanges)

    # -- request building ------------------------------------------------------------------------

    def _txn_date(self, when: dt.datetime) -> str:
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.astimezone(self._tz).strftime("%Y%m%d%H%M%S")

    def _params_for(
        self,
        command: str,
        txn_id: str | None,
        service_code: str,
        account: str,
        amount: int,
        currency: str,
        fields: dict[str, str],
        *,
        txn_date: str | None = None,
    ) -> dict[str, str] | ProtocolResult:
        try:
            sum_ = format_amount(amount, currency)
        except MoneyError as exc:
            return ProtocolResult("fatal", code="invalid_request", message=str(exc))
        params = {"command": command}
        if txn_id is not None:  # getInfo has none
            if not TXN_ID.match(txn_id):
                return ProtocolResult(
                    "fatal",
                    code="invalid_request",
                    message=f"txn_id {txn_id[:40]!r} is not a whole number of up to 20 digits (OSMP)",
                )
            params["txn_id"] = txn_id
        if txn_date is not None:
            params["txn_date"] = txn_date
        params.update(account=account, sum=sum_)
        if self._send_ccy:
            params["ccy"] = currency
        if self._service_param:
            params[self._service_param] = service_code
        for name, value in fields.items():
            if name in params or name in RESERVED_PARAMS:
                return ProtocolResult(
                    "fatal",
                    code="invalid_request",
                    message=f"extra field {name!r} clashes with an OSMP parameter of the same name",
                )
            params[name] = str(value)
        for name, value in self._params.items():
            params.setdefault(name, value)
        return params

    # -- transport -------------------------------------------------------------------------------

    async def _send(
        self, step: Step, params: dict[str, str], txn_id: str | None, exchanges: list[Exchange]
    ) -> _Reply | ProtocolResult:
        """Send one request; a :class:`_Reply`, or the classified result when no answer came."""
        if self._problems:
            return ProtocolResult("fatal", code="bad_config", message="; ".join(self._problems))
        try:
            client = self._client()
        except (OSError, ValueError) as exc:  # unreadable certificate files: nothing was sent
            return ProtocolResult("fatal", code="bad_config", message=self._scrub(f"TLS setup failed: {exc}"))
        recorded = self._record_request(params)
        started = time.monotonic_ns()
        try:
            if self._method == "GET":
                response = await client.get(
                    self._url,
                    params=params,
                    auth=self._auth or httpx.USE_CLIENT_DEFAULT,
                    timeout=self._timeout,
                )
            else:
                response = await client.post(
                    self._url, data=params, auth=self._auth or httpx.USE_CLIENT_DEFAULT, timeout=self._timeout
                )
            text = answer_text(response)
        except httpx.HTTPError as exc:
            elapsed = (time.monotonic_ns() - started) // 1_000_000
            exchanges.append(Exchange(step, self._url, recorded, None, None, elapsed))
            return self._network_failure(step, exc, exchanges)
        elapsed = (time.monotonic_ns() - started) // 1_000_000
        reply = _Reply(response.status_code, response.headers.get("content-type", ""), text, txn_id)
        shown = text if len(text) <= MAX_RECORDED_TEXT else text[:MAX_RECORDED_TEXT] + "…"
        exchanges.append(
            Exchange(step, self._url, recorded, self._scrub(shown), response.status_code, elapsed)
        )
        return reply

    def _record_request(self, params: dict[str, str]) -> str:
        """The request as it is shown in the payment's details: secrets masked."""
        query = self._scrub(urlencode(mask_secrets(params)))
        lines = [f"{self._method} {self._url}" + (f"?{query}" if self._method == "GET" else "")]
        if self._method == "POST":
            lines.append("Content-Type: application/x-www-form-urlencoded")
        if self._auth is not None:
            lines.append("Authorization: Basic ***")
        if self._method == "POST":
            lines += ["", query]
        return "\n".join(lines)

    def _network_failure(self, step: Step, exc: httpx.HTTPError, exchanges: list[Exchange]) -> ProtocolResult:
        message = self._scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
        outcome, code = network_failure(step, exc)
        return ProtocolResult(outcome, code=code, message=message, exchanges=exchanges)

    def _scrub(self, text: str) -> str:
        """Belt and braces: the password never appears in anything recorded."""
        if self._password and len(self._password) >= 4:
            return text.replace(self._password, "***")
        return text

    # -- classification --------------------------------------------------------------------------

    @staticmethod
    def _same_sum(text: str, amount: int, currency: str) -> bool:
        try:
            return parse_amount(text, currency, allow_zero=True) == amount
        except MoneyError:
            return False

    def _result(self, outcome: Outcome, answer: OsmpAnswer, exchanges: list[Exchange]) -> ProtocolResult:
        rc = result_code(answer.result)
        message = f"OSMP result {rc.code}: {rc.meaning} ({rc.label})"
        if answer.comment:
            message += f"; provider says: {answer.comment}"
        info: dict[str, Any] = {
            "result": rc.code,
            "meaning": rc.meaning,
            "fatal": rc.fatal,
            "comment": answer.comment,
            "osmp_txn_id": answer.osmp_txn_id,
            "prv_txn": answer.prv_txn,
            "sum": answer.sum,
        }
        if answer.fields:
            info["fields"] = dict(answer.fields)
        return ProtocolResult(
            outcome,
            code=str(rc.code),
            message=self._scrub(message),
            provider_txn_id=answer.prv_txn,
            info=info,
            exchanges=exchanges,
            fields=dict(answer.fields),
        )

    @staticmethod
    def _not_protocol(reply: _Reply, outcome: Outcome, exchanges: list[Exchange]) -> ProtocolResult:
        code = f"http_{reply.status_code}" if reply.status_code != 200 else "bad_response"
        return ProtocolResult(outcome, code=code, message=reply.problem, exchanges=exchanges)
