"""``POST /cyberplat/{gateway}/{check|pay|status|cancel}``: the hub as the recipient of the
Cyberplat-style signed protocol (the one ``paymux.providers.cyberplat`` speaks as a client).

A payment system posts ``application/x-www-form-urlencoded`` with one field ``inputmessage``: a
signed envelope (:mod:`paymux.providers.cyberplat_envelope`) around ``KEY=value`` lines in cp1251,
signed with its private key (``Signer-Key``: the gateway's ``peer_key_serial``). The signature is
the authentication (with the gateway's login/password by HTTP Basic and/or client certificate when
it has them); the answer is an envelope signed with the hub's key for this gateway (``key_serial``),
``text/plain; charset=windows-1251``, fields DATE, SESSION, ERROR, RESULT, then TRANSID (the hub's
payment id), AUTHCODE, TRNXSTATUS, ERRMSG and the check's account details when there are any.

Steps (SESSION is the payment system's transaction id: the payment's ``external_id``):

``check``   SD, AP, OP, SESSION, NUMBER or ACCOUNT, AMOUNT, [AMOUNT_ALL], [REQ_TYPE=1: verify
            only]; without REQ_TYPE=1 it opens the session: a session that already has its payment
            is answered ERROR=1 (17/18/19 when the number or amount differ).
``pay``     the same fields: the payment, idempotent by SESSION (a repeat answers the same TRANSID).
``status``  SESSION, [TRANSID]: TRNXSTATUS 3 (being processed) or 7 (final; ERROR=0 paid, else
            the refusal), ERROR=11 for an unknown session.
``cancel``  SESSION, [TRANSID]: cancels a payment not yet sent to a provider (paymux's extension;
            ERROR=36 once it was sent or is final).

Extra fields of the service are the message's other keys, lower-cased (``PERIOD`` is ``period``);
the service is the gateway's ``default_service`` or the key named by ``service_param`` upper-cased.
Gates: unknown gateway 404 (an unsigned message: there is no key to sign with), address not
allowed 403 (ERROR=12), too many failed attempts 429 (ERROR=31), authentication or signature
failed 401 (ERROR=6); every other answer is HTTP 200.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from typing import Any

from fastapi import Request, Response

from paymux.api.params import CONTROL
from paymux.gateways.base import (
    Command,
    Gate,
    InboundProtocol,
    InboundRefusal,
    InboundRequest,
    InboundRoute,
    Incoming,
    Outcome,
)
from paymux.gateways.registry import GatewayView
from paymux.masking import MASK
from paymux.providers import cyberplat_codes as codes
from paymux.providers.cyberplat import STANDARD_FIELDS, _pem_source
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
    key_pair_problems,
    load_private_key,
    load_public_key,
    open_envelope,
    seal,
    valid_serial,
)
from paymux.runtime import Hub

FORM_TYPE = "application/x-www-form-urlencoded"
ANSWER_TYPE = "text/plain; charset=windows-1251"

_SESSION = re.compile(r"^[A-Za-z0-9]{1,20}\Z")
_AMOUNT = re.compile(r"^\d{1,13}(?:\.\d{1,2})?\Z")
_DIGITS = re.compile(r"^\d{1,20}\Z")
_INFO_NAME = re.compile(r"[^A-Z0-9_]")
_ANSWER_FIELDS = frozenset(
    {"DATE", "SESSION", "ERROR", "RESULT", "TRANSID", "AUTHCODE", "TRNXSTATUS", "ERRMSG"}
)
MAX_ACCOUNT = 64
MAX_FIELD = 256
ERRMSG_MAX = 250

# the hub's outcomes in Cyberplat ERROR codes (cyberplat_codes): see code_for for the rest
BY_REASON = {
    "ok": codes.OK,
    "bad_request": "10",
    "bad_account": "23",
    "bad_field": "10",
    "forbidden": "15",
    "unavailable": "25",
    "too_small": "7",
    "too_large": "7",
    "cannot_check": "30",
    "temporary": "30",
    "duplicate": "1",
    "not_found": "11",
    "cannot_cancel": "36",
}


def _now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%d.%m.%Y %H:%M:%S")


class _Keys:
    __slots__ = ("algorithm", "own", "own_serial", "peer", "peer_serial")

    def __init__(
        self,
        own: SigningKey | None,
        own_serial: str,
        peer: VerifyingKey | None,
        peer_serial: str,
        algorithm: str = ALGORITHM,
    ) -> None:
        self.own = own
        self.own_serial = own_serial
        self.peer = peer
        self.peer_serial = peer_serial
        self.algorithm = algorithm


def _load(config: dict[str, Any], problems: list[str], *, masked_ok: bool) -> _Keys:
    """The gateway's keys; what is wrong is appended to ``problems``. ``masked_ok``: a masked secret
    (a read sent back) stands for the stored one and is not checked."""
    own: SigningKey | None = None
    peer: VerifyingKey | None = None
    if masked_ok and MASK in (config.get("private_key"), config.get("private_key_passphrase")):
        pass
    else:
        pem, problem = _pem_source(config, "private_key", "private_key_file")
        passphrase = config.get("private_key_passphrase")
        if passphrase is not None and not isinstance(passphrase, str):
            problems.append("private_key_passphrase must be a string")
            passphrase = None
        if problem:
            problems.append(problem)
        elif pem is not None:
            try:
                own = load_private_key(pem, passphrase or None)
            except KeyProblem as exc:
                problems.append(f"private key: {exc}")
    pem, problem = _pem_source(config, "peer_public_key", "peer_public_key_file")
    if problem:
        problems.append(problem.replace("(PEM text)", "(PEM text: the payment system's public key)"))
    elif pem is not None:
        try:
            peer = load_public_key(pem, str(config.get("peer_key_serial", "")))
        except KeyProblem as exc:
            problems.append(f"peer public key: {exc}")
    serials = []
    for name in ("key_serial", "peer_key_serial"):
        value = config.get(name)
        if value is None or value == "" or isinstance(value, bool) or not valid_serial(str(value)):
            problems.append(f"{name} is required: 1-20 Latin letters, digits or '-' (got {value!r})")
            serials.append("")
        else:
            serials.append(str(value))
    if problem := algorithm_problem(config.get("signature_algorithm")):
        problems.append(problem)
    if own is not None and peer is not None:
        problems += key_pair_problems(own, serials[0], peer)
    return _Keys(own, serials[0], peer, serials[1], str(config.get("signature_algorithm") or ALGORITHM))


class CyberplatInbound(InboundProtocol):
    """The recipient side of the Cyberplat-style signed key=value protocol."""

    name = "cyberplat"
    routes = tuple(
        InboundRoute(f"/{step}", step, ("POST",), f"cyberplat_{step}", f"Cyberplat-style {step} (signed)")
        for step in ("check", "pay", "status", "cancel")
    )
    responses = {
        200: {"content": {"text/plain": {}}, "description": "a signed answer; ERROR says what happened"},
        401: {"description": "signature, login/password or client certificate refused (ERROR=6)"},
        403: {"description": "client address not allowed (ERROR=12)"},
        404: {"description": "unknown gateway (an unsigned answer, ERROR=44)"},
        429: {"description": "too many failed attempts from the address (ERROR=31)"},
    }
    secret_config_keys = frozenset({"private_key", "private_key_passphrase"})
    reserved_params = STANDARD_FIELDS | frozenset(k.lower() for k in STANDARD_FIELDS)

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.problems: list[str] = []
        self.keys = _load(config, self.problems, masked_ok=False)
        self.points = {k: str(config[k]) for k in ("sd", "ap", "op") if config.get(k) not in (None, "")}

    @classmethod
    def validate_gateway(cls, gateway: Any) -> list[str]:
        config: dict[str, Any] = dict(gateway.config)
        problems: list[str] = []
        _load(config, problems, masked_ok=True)
        for name in ("sd", "ap", "op"):
            value = config.get(name)
            if value not in (None, "") and (isinstance(value, bool) or not _DIGITS.match(str(value))):
                problems.append(f"{name} must be digits (got {value!r})")
        known = {
            "private_key",
            "private_key_file",
            "private_key_passphrase",
            "key_serial",
            "peer_public_key",
            "peer_public_key_file",
            "peer_key_serial",
            "sd",
            "ap",
            "op",
        }
        unknown = sorted(set(config) - known)
        if unknown:
            problems.append(f"unknown config key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        if gateway.check_txn_id != "own":
            problems.append("check_txn_id: upstream is not available (a SESSION is not a check id)")
        return problems

    # -- reading and authenticating ------------------------------------------------------------------

    async def read(self, request: Request, action: str) -> Incoming:
        """The message of the ``inputmessage`` form field, its envelope kept for authenticate()."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != FORM_TYPE:
            return Incoming([], InboundRefusal("10", f"the request must be {FORM_TYPE}"))
        raw = await request.body()
        message: bytes | None = None
        for pair in raw.split(b"&"):
            name, _, value = pair.partition(b"=")
            if name == b"inputmessage":
                message = urllib.parse.unquote_to_bytes(value.replace(b"+", b" "))
        if not message:
            return Incoming([], InboundRefusal("10", "no inputmessage field"))
        try:
            envelope = open_envelope(message)
        except EnvelopeError as exc:
            return Incoming([], InboundRefusal("10", str(exc)))
        try:
            fields = decode_message(envelope.body)
        except (EnvelopeError, UnicodeDecodeError) as exc:
            return Incoming([], InboundRefusal("10", str(exc)), extra={"envelope": envelope})
        session = fields.get("SESSION")
        echo = session if session is not None and _SESSION.match(session) else None
        return Incoming(list(fields.items()), echo=echo, extra={"envelope": envelope})

    async def authenticate(self, request: Request, hub: Hub, gw: GatewayView, incoming: Incoming) -> bool:
        """The envelope's signature by the payment system's key, and what the gateway's auth asks."""
        envelope = incoming.extra.get("envelope")
        if envelope is None or self.keys.peer is None:
            return False
        if envelope.signer_key != self.keys.peer_serial or not envelope.verify(
            self.keys.peer, self.keys.algorithm
        ):
            return False
        return await super().authenticate(request, hub, gw, incoming)

    def command_of(self, raw: dict[str, str], action: str) -> str:
        return action

    def echo_of(self, raw: dict[str, str], echo: str | None) -> str | None:
        session = raw.get("SESSION")
        return session if session is not None and _SESSION.match(session) else echo

    def parse(self, gw: GatewayView, raw: dict[str, str], action: str) -> InboundRequest:
        for name, value in raw.items():
            if CONTROL.search(value):
                raise InboundRefusal("10", f"field {name} has a control character")
        session = raw.get("SESSION", "")
        if not _SESSION.match(session):
            raise InboundRefusal("5", "SESSION must be 1-20 Latin letters and digits")
        if action in ("status", "cancel"):
            transid = raw.get("TRANSID", "").strip() or None
            if transid is not None and not _DIGITS.match(transid):
                raise InboundRefusal("34", "TRANSID must be digits (a TRANSID of the hub's answers)")
            command: Command = "status" if action == "status" else "cancel"
            return InboundRequest(command, session, hub_txn=transid, verb=action)
        for name, code in (("SD", "2"), ("AP", "3"), ("OP", "4")):
            value = raw.get(name, "")
            if not _DIGITS.match(value):
                raise InboundRefusal(code, f"{name} must be digits")
            if name.lower() in self.points and value != self.points[name.lower()]:
                raise InboundRefusal(code, f"{name} {value} is not this gateway's")
        number_field = "NUMBER" if raw.get("NUMBER") else "ACCOUNT"
        account = raw.get(number_field, "")
        if not account:
            raise InboundRefusal("8", "NUMBER or ACCOUNT is required")
        if len(account) > MAX_ACCOUNT:
            raise InboundRefusal("8" if number_field == "NUMBER" else "9", f"{number_field} is too long")
        amount = raw.get("AMOUNT", "")
        if not _AMOUNT.match(amount):
            raise InboundRefusal("7", f"AMOUNT {amount[:32]!r} is not a decimal with a dot such as 100.00")
        total = raw.get("AMOUNT_ALL")
        if total is not None and (not _AMOUNT.match(total) or _cents(total) < _cents(amount)):
            raise InboundRefusal("85", f"AMOUNT_ALL {total[:32]!r} is not an amount at least AMOUNT")
        key = gw.service_param.upper()
        service = raw.get(key) or gw.default_service
        if not service:
            raise InboundRefusal("15", f"no service: send the field {key}")
        if service not in gw.services:
            raise InboundRefusal("15", f"service {service[:64]!r} is not open to this gateway")
        skip = STANDARD_FIELDS | {key} | {p.upper() for p in gw.ignore_params}
        fields = {name.lower(): value for name, value in raw.items() if name not in skip}
        for name, value in fields.items():
            if len(value) > MAX_FIELD:
                raise InboundRefusal("10", f"field {name.upper()} is longer than {MAX_FIELD} characters")
        verify_only = raw.get("REQ_TYPE", "").strip() == "1"
        return InboundRequest(
            command="pay" if action == "pay" else "check",
            txn_id=session,
            account=account,
            amount=amount,
            service=service,
            fields=fields,
            opens=action == "check" and not verify_only,
            verb=action,
            extra={"number_field": number_field},
        )

    # -- answering -----------------------------------------------------------------------------------

    def code_for(self, outcome: Outcome, command: str, req: InboundRequest | None) -> str:
        reason = outcome.reason
        if reason == "refused":
            return "23" if command == "check" else "22"
        if reason == "not_completed":
            return "20" if command == "pay" else codes.OK
        if reason == "conflict":
            if outcome.detail == "account":
                field = req.extra.get("number_field") if req is not None else None
                return "19" if field == "ACCOUNT" else "17"
            return "18" if outcome.detail == "amount" else "10"
        if reason == "not_found" and req is not None and req.hub_txn is not None:
            return "34"
        return BY_REASON.get(reason, "30")

    def comment_for(self, code: int | str) -> str:
        return codes.describe(str(code))

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
        error = str(code)
        result = codes.OK if error == codes.OK else "1"
        extra: list[tuple[str, str]] = []
        if outcome is not None and outcome.payment_id is not None:
            extra.append(("TRANSID", str(outcome.payment_id)))
        if command == "status" and outcome is not None and outcome.payment_id is not None:
            final = outcome.payment_status in ("succeeded", "failed", "cancelled")
            state = codes.TRNX_FINAL if final else codes.TRNX_IN_PROGRESS
            if outcome.payment_status == "succeeded":
                extra.append(("AUTHCODE", str(outcome.payment_id)))
            extra.append(("TRNXSTATUS", state))
            result = state
        if outcome is not None and outcome.fields:
            for name, value in outcome.fields.items():
                key = _INFO_NAME.sub("_", name.upper())[:32]
                if key and key[0].isalpha() and key not in _ANSWER_FIELDS:
                    extra.append((key, value))
        if error != codes.OK or command == "cancel":
            extra.append(("ERRMSG", comment[:ERRMSG_MAX]))
        return self._answer(200, echo, error, result, extra)

    def gate(
        self,
        gw: GatewayView | None,
        gate: Gate,
        status: int,
        comment: str,
        echo: str | None,
        headers: dict[str, str],
    ) -> Response:
        error = {"unknown": "44", "address": "12", "throttled": "31", "unauthenticated": "6"}[gate]
        answer = self._answer(
            status, echo, error, "1", [("ERRMSG", comment[:ERRMSG_MAX])], signed=gw is not None
        )
        answer.headers.update(headers)
        return answer

    def _answer(
        self,
        status: int,
        session: str | None,
        error: str,
        result: str,
        extra: list[tuple[str, str]],
        *,
        signed: bool = True,
    ) -> Response:
        fields = [("DATE", _now_text()), ("SESSION", session or ""), ("ERROR", error), ("RESULT", result)]
        body = encode_message([(k, clean_value(v)) for k, v in [*fields, *extra]])
        if signed and self.keys.own is not None:
            body = seal(
                body, self.keys.own, self.keys.own_serial, self.keys.peer_serial or None, self.keys.algorithm
            )
        return Response(body, status_code=status, media_type=ANSWER_TYPE)

    def answer_text(self, response: Response) -> str:
        return bytes(response.body).decode(ENCODING, errors="replace")


def _cents(amount: str) -> int:
    whole, _, frac = amount.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])
