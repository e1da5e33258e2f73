"""Cyberplat-style signed protocol (client side): check / pay / status with RSA-signed key=value messages.

Every request is a message of ``KEY=value`` lines (CRLF, cp1251) sealed in a signed envelope
(:mod:`paymux.providers.cyberplat_envelope`) and posted as the form field ``inputmessage``
(``application/x-www-form-urlencoded``) to the step's own URL. The answer is a signed envelope
too (``text/plain``); it is used only when its signature verifies with the provider's public key.

Steps (see docs/protocols.md for the full description and the configuration):

``check``   POST ``check_url``: SD, AP, OP, SESSION, NUMBER (or ACCOUNT), AMOUNT, AMOUNT_ALL,
            [COMMENT], REQ_TYPE=1 (verify the account only), ACCEPT_KEYS.
``pay``     first the same message without REQ_TYPE to ``check_url`` (opens the session, as the
            real service requires; ``pay_precheck: false`` skips it), then to ``pay_url``.
``status``  POST ``status_url``: SESSION, [TRANSID], ACCEPT_KEYS.

SESSION is derived from the hub's ``txn_id`` alone (:func:`session_for`): every retry of one
payment uses the same session and two payments never share one, so the provider's duplicate
detection makes ``pay`` idempotent.

Answers carry DATE, SESSION, ERROR, RESULT, TRANSID (and AUTHCODE, TRNXSTATUS for status). ERROR
codes are classified with :mod:`paymux.providers.cyberplat_codes`; an answer that is not a valid
signed message for this session (bad or missing signature, wrong content type, garbage, another
session) is never taken as success: for ``pay`` it is ``unknown`` and the hub settles it by status.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import time
import urllib.parse
from pathlib import Path
from typing import Any, Literal

import httpx

from paymux.masking import MASK, looks_secret
from paymux.money import MoneyError, check_currency, exponent, format_amount
from paymux.providers import cyberplat_codes as codes
from paymux.providers.base import (
    CheckRequest,
    Exchange,
    Outcome,
    PayRequest,
    Protocol,
    ProtocolResult,
    StatusRequest,
    display_url,
    http_timeout,
    network_failure,
    timeout_problems,
)
from paymux.providers.cyberplat_envelope import (
    ALGORITHM,
    ENCODING,
    EnvelopeError,
    KeyProblem,
    SigningKey,
    VerifyingKey,
    algorithm_problem,
    clean_value,
    decode_message,
    encode_message,
    is_key_text,
    key_pair_problems,
    load_private_key,
    load_public_key,
    open_envelope,
    seal,
    valid_serial,
)

Step = Literal["check", "precheck", "pay", "status"]

DEFAULT_SESSION_PREFIX = "PMX"
SESSION_MAX = 20
COMMENT_MAX = 64
MAX_RECORDED_TEXT = 4000

STANDARD_FIELDS = frozenset(
    {
        "SD",
        "AP",
        "OP",
        "SESSION",
        "NUMBER",
        "ACCOUNT",
        "AMOUNT",
        "AMOUNT_ALL",
        "COMMENT",
        "REQ_TYPE",
        "ACCEPT_KEYS",
        "TRANSID",
        "DATE",
    }
)
_DIGITS = re.compile(r"^\d{1,20}$")
_PREFIX = re.compile(r"^[A-Za-z0-9]{0,10}$")
_EXTRA_FIELD = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")


def session_for(txn_id: str, prefix: str = DEFAULT_SESSION_PREFIX) -> str:
    """The SESSION of a transaction: ``prefix + txn_id`` for a numeric id that fits, else a hash.

    Both forms are at most 20 Latin letters and digits. They never meet: after the prefix the first
    form has only digits, the second starts with ``H`` (then 85+ bits of SHA-256 in base32).
    """
    if txn_id.isascii() and txn_id.isdigit() and len(prefix) + len(txn_id) <= SESSION_MAX:
        return prefix + txn_id
    digest = base64.b32encode(hashlib.sha256(txn_id.encode("utf-8")).digest()).decode("ascii")
    return (prefix + "H" + digest)[:SESSION_MAX]


def _url_problem(name: str, url: Any) -> str | None:
    if not url:
        return f"{name} is required (an absolute http:// or https:// URL)"
    if not isinstance(url, str):
        return f"{name} must be a string (got {url!r})"
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        return f"{name} {url!r} is not a valid URL: {exc}"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"{name} {url!r} must be an absolute http:// or https:// URL"
    return None


def _pem_source(config: dict[str, Any], inline: str, file: str) -> tuple[str | None, str | None]:
    """The PEM text given inline or in a file: ``(pem, None)`` or ``(None, problem)``."""
    text, path = config.get(inline), config.get(file)
    if text and path:
        return None, f"give either {inline} or {file}, not both"
    if text:
        if not isinstance(text, str) or not is_key_text(text):
            return None, f"{inline} must be PEM text (-----BEGIN ...) or an iPriv key file's text"
        return text, None
    if path:
        if not isinstance(path, str):
            return None, f"{file} must be a path"
        try:
            return Path(path).read_bytes().decode("ascii", errors="replace"), None
        except OSError as exc:
            return None, f"{file}: cannot read {path!r}: {exc.strerror or type(exc).__name__}"
    return None, f"{inline} (PEM text) or {file} (a path to a PEM file) is required"


class _Keys:
    __slots__ = ("private", "public")

    def __init__(self, private: SigningKey, public: VerifyingKey) -> None:
        self.private = private
        self.public = public


def _load_keys(config: dict[str, Any]) -> tuple[_Keys | None, list[str]]:
    problems: list[str] = []
    private_pem, problem = _pem_source(config, "private_key", "private_key_file")
    if problem:
        problems.append(problem)
    public_pem, problem = _pem_source(config, "provider_public_key", "provider_public_key_file")
    if problem:
        problems.append(problem)
    passphrase = config.get("private_key_passphrase")
    if passphrase is not None and not isinstance(passphrase, str):
        problems.append("private_key_passphrase must be a string")
        passphrase = None
    private = public = None
    if private_pem is not None:
        try:
            private = load_private_key(private_pem, passphrase or None)
        except KeyProblem as exc:
            problems.append(f"private key: {exc}")
    if public_pem is not None:
        try:
            public = load_public_key(public_pem, str(config.get("provider_key_serial", "")))
        except KeyProblem as exc:
            problems.append(f"provider public key: {exc}")
    if problem := algorithm_problem(config.get("signature_algorithm")):
        problems.append(problem)
    if private is None or public is None:
        return None, problems
    problems += key_pair_problems(private, str(config.get("key_serial", "")), public)
    return _Keys(private, public), problems


def _format_date(when: dt.datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%d.%m.%Y %H:%M:%S")


class _Answer:
    """An HTTP answer; ``fields`` when it is a verified protocol message, else ``problem``."""

    __slots__ = ("fields", "problem", "status_code")

    def __init__(self, status_code: int, fields: dict[str, str] | None, problem: str | None) -> None:
        self.status_code = status_code
        self.fields = fields
        self.problem = problem

    @property
    def error(self) -> str:
        """The ERROR code without leading zeros ("" when there is no verified answer)."""
        if self.fields is None:
            return ""
        return self.fields.get("ERROR", "").strip().lstrip("0") or "0"


class CyberplatProtocol(Protocol):
    """Client of the Cyberplat-style signed key=value protocol."""

    name = "cyberplat"
    secret_config_keys = frozenset({"private_key", "private_key_passphrase"})

    def __init__(self, config: dict[str, Any], http: httpx.AsyncClient) -> None:
        super().__init__(config, http)
        self._problems = self._config_problems(config)
        self._keys, key_problems = _load_keys(config)
        self._problems += [p for p in key_problems if p not in self._problems]
        self._urls = {
            "check": str(config.get("check_url") or ""),
            "precheck": str(config.get("check_url") or ""),
            "pay": str(config.get("pay_url") or ""),
            "status": str(config.get("status_url") or ""),
        }
        self._sd, self._ap, self._op = (str(config.get(k, "")) for k in ("sd", "ap", "op"))
        self._key_serial = str(config.get("key_serial", ""))
        self._provider_serial = str(config.get("provider_key_serial", ""))
        self._account_field = str(config.get("account_field", "NUMBER"))
        self._prefix = str(config.get("session_prefix", DEFAULT_SESSION_PREFIX))
        self._precheck = config.get("pay_precheck", True) is not False
        self._strict_type = config.get("strict_content_type", True) is not False
        self._algorithm = str(config.get("signature_algorithm") or ALGORITHM)
        comment = config.get("comment")
        self._comment = comment if isinstance(comment, str) and comment else None
        self._currency = str(config.get("currency", "RUB"))
        self._timeout = http_timeout(config)

    # -- configuration ---------------------------------------------------------------------------

    @staticmethod
    def _config_problems(config: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        for name in ("check_url", "pay_url", "status_url"):
            if problem := _url_problem(name, config.get(name)):
                problems.append(problem)
        for name, what in (("sd", "dealer"), ("ap", "point of sale"), ("op", "operator")):
            value = config.get(name)
            if value is None or value == "":
                problems.append(f"{name} (the {what} code) is required")
            elif isinstance(value, bool) or not _DIGITS.match(str(value)):
                problems.append(f"{name} (the {what} code) must be digits (got {value!r})")
        for name in ("key_serial", "provider_key_serial"):
            value = config.get(name)
            if value is None or value == "":
                problems.append(f"{name} is required (the key's serial number)")
            elif isinstance(value, bool) or not valid_serial(str(value)):
                problems.append(f"{name} must be 1-20 Latin letters, digits or '-' (got {value!r})")
        if config.get("account_field", "NUMBER") not in ("NUMBER", "ACCOUNT"):
            problems.append(f"account_field must be NUMBER or ACCOUNT (got {config.get('account_field')!r})")
        prefix = config.get("session_prefix", DEFAULT_SESSION_PREFIX)
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            problems.append(f"session_prefix must be 0-10 Latin letters or digits (got {prefix!r})")
        for name in ("pay_precheck", "strict_content_type"):
            if name in config and not isinstance(config[name], bool):
                problems.append(f"{name} must be true or false (got {config[name]!r})")
        comment = config.get("comment")
        if comment is not None and not isinstance(comment, str):
            problems.append("comment must be a string")
        currency = config.get("currency", "RUB")
        try:
            check_currency(str(currency))
        except MoneyError as exc:
            problems.append(f"currency: {exc}")
        problems += timeout_problems(config)
        return problems

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> list[str]:
        problems = cls._config_problems(config)
        _, key_problems = _load_keys(config)
        return problems + key_problems

    # -- the three steps -------------------------------------------------------------------------

    def session(self, txn_id: str) -> str:
        return session_for(txn_id, self._prefix)

    def _payment_fields(
        self, txn_id: str, account: str, amount: int, currency: str, fields: dict[str, str]
    ) -> list[tuple[str, str]] | ProtocolResult:
        if currency != self._currency:
            return ProtocolResult(
                "fatal", code="currency", message=f"this provider takes {self._currency} only, not {currency}"
            )
        try:
            text = format_amount(amount, currency)
        except MoneyError as exc:
            return ProtocolResult("fatal", code="invalid_request", message=str(exc))
        if exponent(currency) != 2:
            return ProtocolResult("fatal", code="currency", message=f"{currency} has no kopecks/cents")
        message = [
            ("SD", self._sd),
            ("AP", self._ap),
            ("OP", self._op),
            ("SESSION", self.session(txn_id)),
            (self._account_field, account),
            ("AMOUNT", text),
            ("AMOUNT_ALL", text),
        ]
        comment = fields.get("comment") or fields.get("COMMENT") or self._comment
        if comment:
            message.append(("COMMENT", clean_value(comment)[:COMMENT_MAX]))
        for key, value in fields.items():
            if _EXTRA_FIELD.match(key) and key not in STANDARD_FIELDS:
                message.append((key, value))
        return message

    async def check(self, req: CheckRequest) -> ProtocolResult:
        if self._problems:
            return self._bad_config()
        message = self._payment_fields(req.txn_id, req.account, req.amount, req.currency, req.fields)
        if isinstance(message, ProtocolResult):
            return message
        message += [("REQ_TYPE", "1"), ("ACCEPT_KEYS", self._provider_serial)]
        exchanges: list[Exchange] = []
        answer = await self._post("check", message, exchanges)
        result = (
            self._classify_check(answer)
            if isinstance(answer, _Answer)
            else self._network_failure("check", answer)
        )
        result.exchanges = exchanges
        return result

    async def pay(self, req: PayRequest) -> ProtocolResult:
        if self._problems:
            return self._bad_config()
        message = self._payment_fields(req.txn_id, req.account, req.amount, req.currency, req.fields)
        if isinstance(message, ProtocolResult):
            return message
        message.append(("ACCEPT_KEYS", self._provider_serial))
        exchanges: list[Exchange] = []
        if self._precheck:
            answer = await self._post("precheck", message, exchanges)
            if not isinstance(answer, _Answer):
                result = self._network_failure("precheck", answer)
                result.exchanges = exchanges
                return result
            entry = codes.lookup(answer.error) if answer.fields is not None else None
            if entry is None or entry.kind not in ("ok", "doubt", "pending"):
                # refused before the pay request was sent: this attempt cannot have paid anything
                # ("doubt"/"pending": the session already exists, so pay goes on and tells the outcome)
                result = self._classify_check(answer)
                result.message = f"check before pay: {result.message}"
                result.exchanges = exchanges
                return result
        answer = await self._post("pay", message, exchanges)
        result = (
            self._classify_pay(answer)
            if isinstance(answer, _Answer)
            else self._network_failure("pay", answer)
        )
        result.exchanges = exchanges
        return result

    async def status(self, req: StatusRequest) -> ProtocolResult:
        if self._problems:
            return self._bad_config()
        message = [("SESSION", self.session(req.txn_id))]
        if req.provider_txn_id:
            message.append(("TRANSID", req.provider_txn_id))
        message.append(("ACCEPT_KEYS", self._provider_serial))
        exchanges: list[Exchange] = []
        answer = await self._post("status", message, exchanges)
        result = (
            self._classify_status(answer)
            if isinstance(answer, _Answer)
            else self._network_failure("status", answer)
        )
        result.exchanges = exchanges
        return result

    # -- transport -------------------------------------------------------------------------------

    def _bad_config(self) -> ProtocolResult:
        return ProtocolResult("fatal", code="bad_config", message="; ".join(self._problems))

    async def _post(
        self, step: Step, message: list[tuple[str, str]], exchanges: list[Exchange]
    ) -> _Answer | httpx.HTTPError:
        assert self._keys is not None  # no config problems
        body = encode_message(message)
        envelope = seal(body, self._keys.private, self._key_serial, self._provider_serial, self._algorithm)
        content = b"inputmessage=" + urllib.parse.quote_plus(envelope).encode("ascii")
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/plain"}
        url = self._urls[step]
        recorded = self._record_request(envelope, body, message)
        started = time.monotonic_ns()
        try:
            response = await self.http.post(url, content=content, headers=headers, timeout=self._timeout)
            raw = response.content
        except httpx.HTTPError as exc:
            elapsed = (time.monotonic_ns() - started) // 1_000_000
            exchanges.append(Exchange(step, display_url(url), recorded, None, None, elapsed))
            return exc
        elapsed = (time.monotonic_ns() - started) // 1_000_000
        text = raw.decode(ENCODING, errors="replace")
        if len(text) > MAX_RECORDED_TEXT:
            text = text[:MAX_RECORDED_TEXT] + "…"
        exchanges.append(Exchange(step, display_url(url), recorded, text, response.status_code, elapsed))
        return self._read_answer(response, raw, self.session_of(message))

    @staticmethod
    def session_of(message: list[tuple[str, str]]) -> str:
        return next(value for key, value in message if key == "SESSION")

    def _read_answer(self, response: httpx.Response, raw: bytes, session: str) -> _Answer:
        assert self._keys is not None
        status = response.status_code
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if self._strict_type and content_type != "text/plain":
            shown = content_type or "none"
            return _Answer(status, None, f"HTTP {status}, content type {shown!r}: not text/plain")
        try:
            envelope = open_envelope(raw)
        except EnvelopeError as exc:
            return _Answer(status, None, f"HTTP {status}: not a signed message ({exc})")
        if envelope.signer_key != self._provider_serial:
            return _Answer(
                status,
                None,
                f"signed with key {envelope.signer_key!r}, "
                f"expected the provider's key {self._provider_serial!r}",
            )
        if not envelope.verify(self._keys.public, self._algorithm):
            return _Answer(status, None, "the signature does not verify with the provider's public key")
        try:
            fields = decode_message(envelope.body)
        except EnvelopeError as exc:
            return _Answer(status, None, f"signed but malformed answer: {exc}")
        if fields.get("SESSION", "").strip() != session:
            got = fields.get("SESSION")
            return _Answer(status, None, f"answer for session {got!r}, expected {session!r}")
        if not fields.get("ERROR", "").strip().isdigit():
            return _Answer(status, None, "signed answer without a numeric ERROR field")
        return _Answer(status, fields, None)

    def _record_request(self, envelope: bytes, body: bytes, message: list[tuple[str, str]]) -> str:
        """The envelope as sent, with values of secret-looking extra fields masked."""
        text = envelope.decode(ENCODING)
        secret = [k for k, _ in message if k not in STANDARD_FIELDS and looks_secret(k)]
        if secret:
            masked = encode_message([(k, MASK if k in secret else v) for k, v in message])
            text = text.replace(body.decode(ENCODING), masked.decode(ENCODING))
        return text

    @staticmethod
    def _network_failure(step: Step, exc: httpx.HTTPError) -> ProtocolResult:
        message = f"{type(exc).__name__}: {exc}".rstrip(": ")
        outcome, code = network_failure(step, exc)
        return ProtocolResult(outcome, code=code, message=message)

    # -- classification --------------------------------------------------------------------------

    @staticmethod
    def _not_protocol(answer: _Answer, outcome: Outcome) -> ProtocolResult:
        info = {"http_status": answer.status_code}
        return ProtocolResult(outcome, code="bad_response", message=answer.problem, info=info)

    @staticmethod
    def _described(fields: dict[str, str], outcome: Outcome, prefix: str = "") -> ProtocolResult:
        error = fields.get("ERROR", "").strip()
        entry = codes.lookup(error)
        meaning = entry.meaning if entry else "unknown error code"
        info: dict[str, Any] = {key.lower(): value for key, value in fields.items()}
        info["meaning"] = meaning
        if entry is not None:
            info["kind"] = entry.kind
        message = f"{prefix}ERROR {error}: {meaning}"
        errmsg = (fields.get("ERRMSG") or "").strip()
        if errmsg and errmsg != meaning:
            message += f" ({errmsg})"
        return ProtocolResult(
            outcome,
            code=error,
            message=message,
            provider_txn_id=(fields.get("TRANSID") or "").strip() or None,
            info=info,
        )

    def _classify_check(self, answer: _Answer) -> ProtocolResult:
        if answer.fields is None:
            # nothing is changed by a check: whatever went wrong, it may be asked again
            if 400 <= answer.status_code < 500 and answer.status_code not in (408, 429):
                return self._not_protocol(answer, "fatal")
            return self._not_protocol(answer, "temporary")
        entry = codes.lookup(answer.error)
        mapping: dict[str, Outcome] = {"ok": "ok", "fatal": "fatal", "not_found": "fatal"}
        outcome = mapping.get(entry.kind, "temporary") if entry else "temporary"
        result = self._described(answer.fields, outcome)
        result.provider_txn_id = None  # a check takes nothing
        return result

    def _classify_pay(self, answer: _Answer) -> ProtocolResult:
        if answer.fields is None:
            if answer.status_code in (408, 429):
                return self._not_protocol(answer, "temporary")
            if 400 <= answer.status_code < 500:
                return self._not_protocol(answer, "fatal")
            # never success, but the payment may have been done: only status can settle it
            return self._not_protocol(answer, "unknown")
        entry = codes.lookup(answer.error)
        mapping: dict[str, Outcome] = {
            "ok": "ok",
            "pending": "pending",
            "temporary": "temporary",
            "fatal": "fatal",
            "not_found": "temporary",  # no such session: nothing was paid; check and pay again
        }
        # "doubt" and unknown codes: the payment may have been done
        outcome = mapping.get(entry.kind, "unknown") if entry else "unknown"
        return self._described(answer.fields, outcome)

    def _classify_status(self, answer: _Answer) -> ProtocolResult:
        if answer.fields is None:
            return self._not_protocol(answer, "temporary")
        fields = answer.fields
        # the payment's state: TRNXSTATUS, else RESULT when it is a state (in error answers it is 1)
        result = (fields.get("RESULT") or "").strip()
        fallback = (
            result if result in codes.TRNX_STATES and (answer.error == codes.OK or result != "1") else ""
        )
        state = (fields.get("TRNXSTATUS") or "").strip() or fallback
        entry = codes.lookup(answer.error)
        prefix = f"TRNXSTATUS {state}: {codes.TRNX_STATES.get(state, 'unknown state')}; " if state else ""
        if entry is not None and entry.kind == "not_found":
            return self._described(fields, "not_found", prefix)
        if state == codes.TRNX_FINAL:
            return self._described(fields, "ok" if answer.error == codes.OK else "fatal", prefix)
        if answer.error != codes.OK:
            # an error about the status request says nothing final about the payment
            return self._described(fields, "temporary", prefix)
        if state == codes.TRNX_IN_PROGRESS:
            return self._described(fields, "pending", prefix)
        if state == codes.TRNX_CHECKED:
            # only the check arrived: the pay request never did; it may be sent again (same session)
            return self._described(fields, "not_found", prefix)
        return self._described(fields, "temporary", prefix or f"unknown TRNXSTATUS {state!r}; ")
