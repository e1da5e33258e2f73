"""Emulator of a provider speaking the Cyberplat-style signed protocol (:mod:`paymux.providers.cyberplat`).

``create_app(config, private_key=..., peer_public_key=...)`` returns an ASGI app with the three
protocol URLs (the real service's step names, one emulated gateway ``es``)::

    POST /cgi-bin/es/es_pay_check.cgi    check (REQ_TYPE=1: verify only; otherwise open the session)
    POST /cgi-bin/es/es_pay.cgi          pay (the session must have been checked, unless
                                         ``require_check=False``)
    POST /cgi-bin/es/es_pay_status.cgi   status

Requests are ``application/x-www-form-urlencoded`` with one field ``inputmessage``: a signed
envelope (:mod:`paymux.providers.cyberplat_envelope`) verified with the hub's public key; answers
are envelopes signed with the emulator's own key (``text/plain; charset=windows-1251``). A request
whose signature does not verify is refused with ERROR=6 and changes nothing.

Behaviour comes from :class:`~paymux.providers.emulators.behaviour.BehaviourEngine`, keyed by
SESSION: a repeated pay with the same session returns the original TRANSID and never pays twice;
a repeat with another number or amount is refused (ERROR=17/18). Directive codes that are
Cyberplat ERROR numbers (``fatal:7:...``, ``temporary:24:...``, ``reject:23:...``) are answered as
such; other codes become ERROR=30 (temporary), 22 (fatal pay) or 23 (rejected check).

The control endpoints are those of the JSON/HTTP emulator (``/_emulator/config``, ``down``, ``up``,
``transactions``, ``reset``), never signed nor protected.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from paymux.money import parse_amount
from paymux.providers import cyberplat_codes as codes
from paymux.providers.cyberplat_envelope import (
    ALGORITHM,
    EnvelopeError,
    decode_message,
    encode_message,
    generate_key_pair,
    load_private_key,
    load_public_key,
    open_envelope,
    seal,
    write_key_pair,
)
from paymux.providers.emulators.behaviour import BehaviourEngine, Decision, EmulatedTxn, EmulatorConfig
from paymux.providers.emulators.control import disconnect_waiter, emulator_app, mount_control

CHECK_PATH = "/cgi-bin/es/es_pay_check.cgi"
PAY_PATH = "/cgi-bin/es/es_pay.cgi"
STATUS_PATH = "/cgi-bin/es/es_pay_status.cgi"
FORM_TYPE = "application/x-www-form-urlencoded"
ANSWER_TYPE = "text/plain; charset=windows-1251"

_SESSION = re.compile(r"^[A-Za-z0-9]{1,20}$")
_AMOUNT = re.compile(r"^\d{1,9}\.\d{2}$")
_INFO_NAME = re.compile(r"[^A-Z0-9_]")
_STANDARD = frozenset({"DATE", "SESSION", "ERROR", "RESULT", "TRANSID", "AUTHCODE", "TRNXSTATUS", "ERRMSG"})


def provider_urls(base_url: str) -> dict[str, str]:
    """The ``check_url``, ``pay_url`` and ``status_url`` of a provider config for an emulator."""
    base = base_url.rstrip("/")
    return {"check_url": base + CHECK_PATH, "pay_url": base + PAY_PATH, "status_url": base + STATUS_PATH}


class Refusal(Exception):
    """A request answered with an ERROR code (signed) before it reaches the behaviour engine."""

    def __init__(self, error: str, message: str | None = None, session: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.message = message
        self.session = session  # the request's SESSION when known before the refusal


@dataclass(slots=True)
class CheckedSession:
    """A session opened by a check (REQ_TYPE other than 1): what it was checked for."""

    number: str
    amount: int
    checked_at: dt.datetime


def _now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%d.%m.%Y %H:%M:%S")


def _numeric(code: str | None, default: str) -> str:
    return code if code and code.isdigit() and codes.lookup(code) is not None else default


def create_app(
    config: EmulatorConfig | None = None,
    *,
    private_key: str | bytes,
    peer_public_key: str | bytes,
    key_serial: str = "2",
    peer_key_serial: str | None = None,
    passphrase: str | None = None,
    require_check: bool = True,
    currency: str = "RUB",
    engine: BehaviourEngine | None = None,
    algorithm: str = ALGORITHM,
) -> FastAPI:
    """The Cyberplat emulator app; ``app.state.engine`` is its engine, ``app.state.sessions`` the checks.

    ``private_key`` signs the answers (PEM, with ``passphrase`` if encrypted, or an iPriv secret key
    file with its passphrase); ``peer_public_key`` verifies the hub's requests (PEM, or an iPriv
    public key file read by ``peer_key_serial``); when ``peer_key_serial`` is set the requests must
    name it as their signer. ``algorithm`` is the PEM envelope's (RSA-SHA256 or RSA-SHA1).
    """
    engine = engine or BehaviourEngine(config or EmulatorConfig())
    own_key = load_private_key(private_key, passphrase)
    peer_key = load_public_key(peer_public_key, peer_key_serial)
    sessions: dict[str, CheckedSession] = {}

    app = emulator_app("paymux Cyberplat-style provider emulator", engine)
    app.state.sessions = sessions

    def signed(fields: list[tuple[str, str]], status_code: int = 200) -> Response:
        body = encode_message([(k, v) for k, v in fields if v is not None])
        return Response(
            seal(body, own_key, key_serial, algorithm=algorithm),
            status_code=status_code,
            media_type=ANSWER_TYPE,
        )

    def answer(session: str, error: str, extra: list[tuple[str, str]] | None = None, **kw: Any) -> Response:
        fields = [("DATE", _now_text()), ("SESSION", session), ("ERROR", error)]
        fields.append(("RESULT", kw.pop("result", "0" if error == codes.OK else "1")))
        fields += extra or []
        message = kw.pop("message", None)
        if message:
            fields.append(("ERRMSG", message))
        return signed(fields, kw.pop("status_code", 200))

    def refused(session: str, refusal: Refusal) -> Response:
        status_code = 503 if refusal.error == "50" else 200
        echoed = refusal.session if refusal.session is not None else session
        return answer(echoed, refusal.error, message=refusal.message, status_code=status_code)

    async def read(request: Request) -> tuple[str, dict[str, str]]:
        """The verified message of a request; :class:`Refusal` when it cannot be served."""
        session, fields = await verified(request)
        if engine.is_down():
            raise Refusal("50", "the provider is temporarily unavailable", session)
        return session, fields

    async def verified(request: Request) -> tuple[str, dict[str, str]]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != FORM_TYPE:
            raise Refusal("10", f"the request must be {FORM_TYPE}")
        raw = await request.body()
        message: bytes | None = None
        for pair in raw.split(b"&"):
            name, _, value = pair.partition(b"=")
            if name == b"inputmessage":
                message = urllib.parse.unquote_to_bytes(value.replace(b"+", b" "))
        if not message:
            raise Refusal("10", "no inputmessage field")
        try:
            envelope = open_envelope(message)
        except EnvelopeError as exc:
            raise Refusal("6" if "signature" in str(exc).lower() else "10", str(exc)) from None
        if peer_key_serial is not None and envelope.signer_key != peer_key_serial:
            raise Refusal("6", f"unknown key serial {envelope.signer_key}")
        if not envelope.verify(peer_key, algorithm):
            raise Refusal("6", "the signature does not verify")
        try:
            fields = decode_message(envelope.body)
        except (EnvelopeError, UnicodeDecodeError) as exc:
            raise Refusal("10", str(exc)) from None
        session = fields.get("SESSION", "")
        if not _SESSION.match(session):
            raise Refusal("5", "SESSION must be 1-20 Latin letters and digits")
        return session, fields

    def payment(fields: dict[str, str]) -> tuple[str, int]:
        for name, code in (("SD", "2"), ("AP", "3"), ("OP", "4")):
            if not fields.get(name, "").isdigit():
                raise Refusal(code, f"{name} must be digits")
        number = fields.get("NUMBER") or fields.get("ACCOUNT") or ""
        if not number:
            raise Refusal("8", "NUMBER or ACCOUNT is required")
        amount_text = fields.get("AMOUNT", "")
        if not _AMOUNT.match(amount_text):
            raise Refusal("7", f"AMOUNT {amount_text!r} is not NNNN.NN")
        amount = parse_amount(amount_text, currency, allow_zero=True)
        if amount <= 0:
            raise Refusal("7", "AMOUNT must be positive")
        total_text = fields.get("AMOUNT_ALL", amount_text)
        if not _AMOUNT.match(total_text) or parse_amount(total_text, currency, allow_zero=True) < amount:
            raise Refusal("85", f"AMOUNT_ALL {total_text!r} is not NNNN.NN at least AMOUNT")
        return number, amount

    def same_details(session: str, number: str, amount: int) -> None:
        """Refuse a session re-used with another number or amount (ERROR=17/18)."""
        known: tuple[str, int] | None = None
        txn = engine.lookup(session)
        if txn is not None:
            known = (txn.account, txn.amount)
        elif session in sessions:
            known = (sessions[session].number, sessions[session].amount)
        if known is not None and known[0] != number:
            raise Refusal("17", "the number differs from the one given before in this session")
        if known is not None and known[1] != amount:
            raise Refusal("18", "the amount differs from the one given before in this session")

    async def serve(session: str, account: str | None) -> Response | None:
        """Downtime and latency: an answer when the request is not served now."""
        if not await engine.sleep(engine.delay_ms(account)):
            return answer(session, "50", message="the provider is temporarily unavailable", status_code=503)
        return None

    async def deliver(request: Request, decision: Decision, response: Response) -> Response:
        if decision.lose_response:
            await engine.hold(engine.config.lost_hold_ms, disconnect_waiter(request))
        if decision.broken_response:
            return Response(b"Internal Server Error", status_code=500, media_type="text/plain")
        return response

    def info_fields(info: dict[str, Any]) -> list[tuple[str, str]]:
        extra: list[tuple[str, str]] = []
        for key, value in info.items():
            name = _INFO_NAME.sub("_", str(key).upper())[:32]
            if name and name[0].isalpha() and name not in _STANDARD and isinstance(value, str | int):
                extra.append((name, str(value)))
        return extra

    @app.post(CHECK_PATH)
    async def check(request: Request) -> Response:
        session = ""
        try:
            session, fields = await read(request)
            number, amount = payment(fields)
            verify_only = fields.get("REQ_TYPE", "0").strip() == "1"
            if not verify_only:
                if engine.lookup(session) is not None:
                    same_details(session, number, amount)
                    raise Refusal("1", "a session with this number already exists")
                same_details(session, number, amount)
        except Refusal as refusal:
            return refused(session, refusal)
        if (held := await serve(session, number)) is not None:
            return held
        decision = engine.decide_check(number, amount, currency)
        if decision.kind == "ok":
            if not verify_only:
                sessions[session] = CheckedSession(number, amount, dt.datetime.now(dt.UTC))
            return answer(session, codes.OK, info_fields(decision.info))
        default = {"rejected": "23", "temporary": "30"}.get(decision.kind, "23")
        return answer(session, _numeric(decision.code, default), message=decision.message)

    @app.post(PAY_PATH)
    async def pay(request: Request) -> Response:
        session = ""
        try:
            session, fields = await read(request)
            number, amount = payment(fields)
            same_details(session, number, amount)
            if require_check and session not in sessions and engine.lookup(session) is None:
                raise Refusal("11", "no checked session with this number: check first")
        except Refusal as refusal:
            return refused(session, refusal)
        if (held := await serve(session, number)) is not None:
            return held
        decision = engine.decide_pay(session, number, amount, currency, txn_date=fields.get("DATE"))
        txn = decision.txn
        transid = [("TRANSID", txn.provider_txn_id)] if txn is not None else []
        if decision.kind == "ok":
            response = answer(session, codes.OK, transid)
        elif decision.kind == "pending":
            response = answer(session, "20", transid)
        elif decision.kind == "temporary":
            response = answer(session, _numeric(decision.code, "30"), message=decision.message)
        else:
            response = answer(session, _numeric(decision.code, "22"), transid, message=decision.message)
        return await deliver(request, decision, response)

    @app.post(STATUS_PATH)
    async def status(request: Request) -> Response:
        session = ""
        try:
            session, fields = await read(request)
        except Refusal as refusal:
            return refused(session, refusal)
        txn = engine.lookup(session)
        if (held := await serve(session, txn.account if txn else None)) is not None:
            return held
        txn = engine.lookup(session)  # a pending payment may have settled while we waited
        transid = fields.get("TRANSID")
        if transid and (txn is None or txn.provider_txn_id != transid):
            return answer(session, "34", message="no transaction with this TRANSID", result="1")
        if txn is None:
            if session in sessions:
                return answer(
                    session, codes.OK, [("TRNXSTATUS", codes.TRNX_CHECKED)], result=codes.TRNX_CHECKED
                )
            return answer(session, "11", message="no session with this number", result="1")
        return status_answer(session, txn)

    def status_answer(session: str, txn: EmulatedTxn) -> Response:
        extra = [("TRANSID", txn.provider_txn_id)]
        if txn.status == "pending":
            state, error = codes.TRNX_IN_PROGRESS, codes.OK
        else:
            state = codes.TRNX_FINAL
            error = codes.OK if txn.status == "succeeded" else _numeric(txn.code, "22")
        if txn.status == "succeeded":
            extra.append(("AUTHCODE", "".join(ch for ch in txn.provider_txn_id if ch.isdigit()) or "0"))
        extra.append(("TRNXSTATUS", state))
        message = txn.message if txn.status == "failed" else None
        return answer(session, error, extra, result=state, message=message)

    mount_control(
        app,
        engine,
        extra_state=lambda: {"checked_sessions": sorted(sessions)},
        on_reset=sessions.clear,
    )

    return app


# -- the demo: keys generated once per machine and user, shared by the emulator and the provider's config

DEMO_HUB_SERIAL = "1"
DEMO_PROVIDER_SERIAL = "2"


def demo_keys_dir() -> Path:
    """Where ``paymux demo`` keeps its generated key pairs (hub.key/.pub, provider.key/.pub)."""
    user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"paymux-demo-keys-{user}"


@functools.cache
def demo_keys() -> Path:
    """The demo key directory, generated on first use (atomically: concurrent processes agree)."""
    final = demo_keys_dir()
    if not (final / "provider.pub").exists():
        staging = Path(tempfile.mkdtemp(prefix=final.name + ".", dir=final.parent))
        write_key_pair(staging, "hub", generate_key_pair())
        write_key_pair(staging, "provider", generate_key_pair())
        try:
            staging.rename(final)
        except OSError:  # another process made them first
            shutil.rmtree(staging, ignore_errors=True)
    return final


def demo_app(config: EmulatorConfig | None = None, *, engine: BehaviourEngine | None = None) -> FastAPI:
    """The emulator as ``paymux demo`` runs it, with the demo keys."""
    keys = demo_keys()
    return create_app(
        config,
        engine=engine,
        private_key=(keys / "provider.key").read_bytes(),
        peer_public_key=(keys / "hub.pub").read_bytes(),
        key_serial=DEMO_PROVIDER_SERIAL,
        peer_key_serial=DEMO_HUB_SERIAL,
    )


def demo_provider_config(base_url: str | None = None) -> dict[str, str]:
    """What ``paymux demo`` adds to a cyberplat provider's config: key files (and URLs when known)."""
    keys = demo_keys()
    config = {
        "private_key_file": str(keys / "hub.key"),
        "provider_public_key_file": str(keys / "provider.pub"),
        "key_serial": DEMO_HUB_SERIAL,
        "provider_key_serial": DEMO_PROVIDER_SERIAL,
    }
    return {**config, **provider_urls(base_url)} if base_url else config
