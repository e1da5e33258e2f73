"""Emulator of a provider speaking OSMP (the QIWI provider protocol, :mod:`paymux.providers.osmp`).

``create_app(config)`` returns an ASGI app answering OSMP requests at ``/`` (``GET`` with a query
string, or ``POST`` of a form) with an XML ``<response>``, driven by a
:class:`~paymux.providers.emulators.behaviour.BehaviourEngine`, plus the same control endpoints as
the JSON/HTTP emulator (never protected by credentials):

``GET  /_emulator/config``        the current :class:`EmulatorConfig`
``PUT  /_emulator/config``        replace it (the ledger is kept)
``POST /_emulator/down``, ``/up``  switch the provider off / on (while down: result 1, temporary)
``GET  /_emulator/transactions``  every transaction taken, with ``pay_calls``; ``checked`` (the
                                  txn_ids registered by a check), ``commands`` (per txn_id, the
                                  commands that arrived, in order) and ``get_info_calls``
``POST /_emulator/reset``         forget every transaction, registration and command

Commands, as the protocol's payment process goes:

``getInfo``  (``account``, optional ``sum``, ``ccy``, extra fields; no ``txn_id``) the account's state
             and ``<fields>``; registers nothing.
``check``    (``txn_id``, ``account``, ``sum``, ...) the account's state and ``<fields>``; a ``0``
             registers the payment under its ``txn_id`` (a repeat with the same account and sum
             answers the same; with another one, ``300``).
``pay``      (``txn_id``, ``txn_date``, ``account``, ``sum``, ...) confirms the registered payment.
             With ``require_check`` (the default) a ``txn_id`` that no check registered is refused
             with ``300``, and so is one registered for another account or sum.

Per-account directives script OSMP result codes: the ``<code>`` of a directive is the result code
answered (``check: "reject:5:account not found"``, ``pay: "fatal:241"``, ``pay: "temporary:1"``,
``check: "temporary:90"``; ``getInfo`` answers as ``check``); a directive without a numeric code
answers ``1`` when temporary and ``300`` otherwise; a pending payment answers ``90``. A repeated
pay with the same ``txn_id`` answers the original outcome and ``prv_txn`` and never pays twice; a
repeat with another sum or account is refused with ``300``. Requests the emulator cannot
understand (unknown command, a missing ``txn_id`` or one that is not a whole number of up to 20
digits, a sum that is not ``"10.45"``-style, a bad ``txn_date``) are answered with ``300`` (or ``4``
for a missing account) and a comment saying what is wrong; nothing is recorded for them.

When the config has a ``token`` of the form ``user:password``, requests must carry it as HTTP basic
auth (``401`` otherwise).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl
from xml.etree.ElementTree import Element, SubElement, tostring

from fastapi import FastAPI, Request
from fastapi.responses import Response

from paymux.money import MoneyError, format_amount, parse_amount
from paymux.providers.emulators.behaviour import BehaviourEngine, Decision, EmulatorConfig
from paymux.providers.emulators.control import disconnect_waiter, emulator_app, mount_control
from paymux.providers.osmp_codes import (
    ACCOUNT_NOT_FOUND,
    NOT_COMPLETED,
    OK,
    OTHER_ERROR,
    TEMPORARY,
    WRONG_ACCOUNT_FORMAT,
    result_code,
)

XML_MEDIA_TYPE = "text/xml; charset=utf-8"
TXN_ID_RE = re.compile(r"^[0-9]{1,20}\Z")
TXN_DATE_RE = re.compile(r"^[0-9]{14}\Z")
DEFAULT_CURRENCY = "RUB"
COMMANDS = ("getInfo", "check", "pay")
BROKEN_ANSWER = b'<?xml version="1.0" encoding="UTF-8"?>\n<response><osmp_txn_id>'


class Refusal(ValueError):
    """A request the emulator answers with an error result without deciding anything."""

    def __init__(self, result: int, comment: str) -> None:
        super().__init__(comment)
        self.result = result
        self.comment = comment


def osmp_xml(
    *,
    result: int,
    txn_id: str | None = None,
    prv_txn: str | None = None,
    sum_: str | None = None,
    comment: str | None = None,
    fields: dict[str, Any] | None = None,
) -> bytes:
    """An OSMP ``<response>`` document (UTF-8, with the XML declaration)."""
    root = Element("response")
    if txn_id is not None:
        SubElement(root, "osmp_txn_id").text = txn_id
    if prv_txn is not None:
        SubElement(root, "prv_txn").text = prv_txn
    if sum_ is not None:
        SubElement(root, "sum").text = sum_
    SubElement(root, "result").text = str(result)
    if comment is not None:
        SubElement(root, "comment").text = comment
    if fields:
        container = SubElement(root, "fields")
        for i, (name, value) in enumerate(fields.items(), start=1):
            SubElement(container, f"field{i}", name=str(name)).text = str(value)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="unicode").encode()


def _xml(body: bytes) -> Response:
    return Response(body, media_type=XML_MEDIA_TYPE)


async def _params(request: Request) -> dict[str, str]:
    """The request's parameters: the query string, and for POST the form body too."""
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        raw = await request.body()
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if raw and media not in ("", "application/x-www-form-urlencoded"):
            raise Refusal(
                OTHER_ERROR, f"a POST body must be application/x-www-form-urlencoded, not {media!r}"
            )
        try:
            pairs += parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw))
        except (UnicodeDecodeError, ValueError):
            raise Refusal(OTHER_ERROR, "the POST body is not a valid form") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise Refusal(OTHER_ERROR, f"parameter {name!r} is given more than once")
        params[name] = value
    return params


def _txn_id(params: dict[str, str]) -> str:
    txn_id = params.get("txn_id", "")
    if not TXN_ID_RE.match(txn_id):
        raise Refusal(OTHER_ERROR, "txn_id is required and must be a whole number of up to 20 digits")
    return txn_id


def _account(params: dict[str, str]) -> str:
    account = params.get("account", "")
    if not account or len(account) > 200 or not account.isprintable():
        raise Refusal(WRONG_ACCOUNT_FORMAT, "account is required")
    return account


def _amount(params: dict[str, str]) -> tuple[int, str]:
    currency = params.get("ccy") or DEFAULT_CURRENCY
    if "sum" not in params:
        raise Refusal(OTHER_ERROR, "sum is required")
    try:
        amount = parse_amount(params["sum"], currency, allow_zero=True)
    except MoneyError as exc:
        raise Refusal(
            OTHER_ERROR, f'bad sum (expected a decimal with a dot such as "10.45"): {exc}'
        ) from None
    if amount == 0:
        raise Refusal(241, "amount too small")
    return amount, currency


def _txn_date(params: dict[str, str]) -> str:
    text = params.get("txn_date", "")
    if not TXN_DATE_RE.match(text):
        raise Refusal(OTHER_ERROR, "txn_date is required as YYYYMMDDHHMMSS")
    try:
        dt.datetime.strptime(text, "%Y%m%d%H%M%S")
    except ValueError:
        raise Refusal(OTHER_ERROR, f"txn_date {text!r} is not a valid date and time") from None
    return text


def decision_result(decision: Decision) -> int:
    """The OSMP result code that answers ``decision``."""
    if decision.kind == "ok":
        return OK
    if decision.kind == "pending":
        return NOT_COMPLETED
    code = decision.code or ""
    if code.isascii() and code.isdigit():
        return int(code)
    if decision.kind == "temporary":
        return TEMPORARY
    if decision.kind == "rejected":
        return ACCOUNT_NOT_FOUND
    return OTHER_ERROR


def _basic_auth_ok(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return secrets.compare_digest(given, token.encode())


@dataclass(slots=True)
class Registration:
    """A payment registered by a check: what it was checked for."""

    account: str
    amount: int
    currency: str


@dataclass(slots=True)
class OsmpState:
    """What the OSMP emulator keeps besides the engine's ledger (``app.state.osmp``)."""

    registered: dict[str, Registration] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)  # per txn_id, in arrival order
    get_info_calls: int = 0

    def heard(self, txn_id: str, command: str) -> None:
        self.commands.setdefault(txn_id, []).append(command)

    def clear(self) -> None:
        self.registered.clear()
        self.commands.clear()
        self.get_info_calls = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "checked": sorted(self.registered),
            "commands": {txn_id: list(seen) for txn_id, seen in self.commands.items()},
            "get_info_calls": self.get_info_calls,
        }


def create_app(
    config: EmulatorConfig | None = None,
    *,
    engine: BehaviourEngine | None = None,
    require_check: bool = True,
) -> FastAPI:
    """The OSMP emulator app; ``app.state.engine`` is its :class:`BehaviourEngine`, ``app.state.osmp``
    its :class:`OsmpState`. ``require_check=False`` takes a pay whose ``txn_id`` no check registered."""
    engine = engine or BehaviourEngine(config or EmulatorConfig())
    state = OsmpState()
    app = emulator_app("paymux OSMP provider emulator", engine)
    app.state.osmp = state

    async def answer(request: Request, decision: Decision, body: bytes) -> Response:
        if decision.lose_response:
            await engine.hold(engine.config.lost_hold_ms, disconnect_waiter(request))
        if decision.broken_response:
            return _xml(BROKEN_ANSWER)
        return _xml(body)

    def comment(decision: Decision, result: int) -> str:
        return decision.message or result_code(result).meaning

    def differs(txn_id: str, account: str, amount: int, currency: str) -> bool:
        """Whether ``txn_id`` is already registered or paid for another account or amount."""
        earlier = state.registered.get(txn_id)
        if earlier is not None and (earlier.account, earlier.amount, earlier.currency) != (
            account,
            amount,
            currency,
        ):
            return True
        txn = engine.lookup(txn_id)
        return txn is not None and (txn.account, txn.amount, txn.currency) != (account, amount, currency)

    async def get_info(request: Request, params: dict[str, str]) -> Response:
        account = _account(params)
        currency = params.get("ccy") or DEFAULT_CURRENCY
        amount = _amount(params)[0] if "sum" in params else 0
        state.get_info_calls += 1
        if not await engine.sleep(engine.delay_ms(account)):
            return _xml(osmp_xml(result=TEMPORARY, comment="the provider is shutting down"))
        decision = engine.decide_check(account, amount, currency)
        result = decision_result(decision)
        body = osmp_xml(
            result=result,
            comment=comment(decision, result),
            fields=decision.info if decision.kind == "ok" else None,
        )
        return await answer(request, decision, body)

    async def check(request: Request, params: dict[str, str], txn_id: str) -> Response:
        account = _account(params)
        amount, currency = _amount(params)
        if differs(txn_id, account, amount, currency):
            raise Refusal(OTHER_ERROR, f"txn_id {txn_id} is already registered for another account or sum")
        state.heard(txn_id, "check")
        if not await engine.sleep(engine.delay_ms(account)):
            return _xml(osmp_xml(result=TEMPORARY, txn_id=txn_id, comment="the provider is shutting down"))
        decision = engine.decide_check(account, amount, currency)
        result = decision_result(decision)
        if result == OK:
            state.registered[txn_id] = Registration(account, amount, currency)
        body = osmp_xml(
            result=result,
            txn_id=txn_id,
            comment=comment(decision, result),
            fields=decision.info if decision.kind == "ok" else None,
        )
        return await answer(request, decision, body)

    async def pay(request: Request, params: dict[str, str], txn_id: str) -> Response:
        txn_date = _txn_date(params)
        account = _account(params)
        amount, currency = _amount(params)
        if require_check and txn_id not in state.registered and engine.lookup(txn_id) is None:
            raise Refusal(OTHER_ERROR, f"txn_id {txn_id} was not registered by a check: check first")
        if txn_id in state.registered and differs(txn_id, account, amount, currency):
            raise Refusal(OTHER_ERROR, f"txn_id {txn_id} was registered for another account or sum")
        state.heard(txn_id, "pay")
        if not await engine.sleep(engine.delay_ms(account)):
            return _xml(osmp_xml(result=TEMPORARY, txn_id=txn_id, comment="the provider is shutting down"))
        decision = engine.decide_pay(txn_id, account, amount, currency, "", txn_date)
        result = decision_result(decision)
        txn = decision.txn
        body = osmp_xml(
            result=result,
            txn_id=txn_id,
            prv_txn=txn.provider_txn_id if txn is not None else None,
            sum_=format_amount(txn.amount if txn is not None else amount, currency),
            comment=comment(decision, result),
        )
        return await answer(request, decision, body)

    async def handle(request: Request) -> Response:
        token = engine.config.token
        if token and not _basic_auth_ok(request, token):
            return Response(
                b"401 Unauthorized: missing or wrong basic auth credentials",
                status_code=401,
                media_type="text/plain",
                headers={"WWW-Authenticate": 'Basic realm="osmp"'},
            )
        txn_id: str | None = None
        try:
            params = await _params(request)
            command = params.get("command", "")
            if command not in COMMANDS:
                raise Refusal(
                    OTHER_ERROR, f"unknown command {command[:32]!r} (expected {', '.join(COMMANDS)})"
                )
            if command != "getInfo":
                txn_id = _txn_id(params)
            if engine.is_down():
                return _xml(
                    osmp_xml(
                        result=TEMPORARY, txn_id=txn_id, comment="the provider is temporarily unavailable"
                    )
                )
            if txn_id is None:
                return await get_info(request, params)
            if command == "check":
                return await check(request, params, txn_id)
            return await pay(request, params, txn_id)
        except Refusal as refusal:
            return _xml(osmp_xml(result=refusal.result, txn_id=txn_id, comment=refusal.comment))

    app.add_api_route("/", handle, methods=["GET", "POST"], include_in_schema=False)

    mount_control(app, engine, extra_state=state.as_json, on_reset=state.clear)

    return app
