"""The Cyberplat-style protocol client against its emulator and hostile peers, over real HTTP."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI, Request
from fastapi.responses import Response

from harness import BASE_CATALOG, hub_env
from paymux.providers import cyberplat_codes as codes
from paymux.providers.base import CheckRequest, PayRequest, StatusRequest, protocol_class
from paymux.providers.cyberplat import CyberplatProtocol, session_for
from paymux.providers.cyberplat_envelope import (
    ENCODING,
    EnvelopeError,
    KeyPair,
    decode_message,
    encode_message,
    generate_key_pair,
    load_private_key,
    load_public_key,
    open_envelope,
    seal,
    write_key_pair,
)
from paymux.providers.emulators.behaviour import BehaviourEngine, EmulatorConfig
from paymux.providers.emulators.cyberplat import create_app, provider_urls
from paymux.providers.emulators.server import run_emulator
from paymux.providers.transport import provider_client

TXN_DATE = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
HUB_SERIAL, PROVIDER_SERIAL = "17031", "64182"


@pytest.fixture(scope="module")
def keys() -> dict[str, KeyPair]:
    return {"hub": generate_key_pair(), "provider": generate_key_pair(), "other": generate_key_pair()}


def client_config(urls: dict[str, str], keys: dict[str, KeyPair], **extra: Any) -> dict[str, Any]:
    return {
        **urls,
        "sd": "17031",
        "ap": "17032",
        "op": "17034",
        "private_key": keys["hub"].private_pem,
        "provider_public_key": keys["provider"].public_pem,
        "key_serial": HUB_SERIAL,
        "provider_key_serial": PROVIDER_SERIAL,
        "timeout": "2",
        **extra,
    }


@dataclass
class Harness:
    url: str
    http: httpx.AsyncClient
    engine: BehaviourEngine
    app: FastAPI
    keys: dict[str, KeyPair]

    def protocol(self, **extra: Any) -> CyberplatProtocol:
        return CyberplatProtocol(client_config(provider_urls(self.url), self.keys, **extra), self.http)


@asynccontextmanager
async def emulator(
    keys: dict[str, KeyPair], config: dict[str, Any] | None = None, **kw: Any
) -> AsyncIterator[Harness]:
    app = create_app(
        EmulatorConfig.model_validate(config or {}),
        private_key=keys["provider"].private_pem,
        peer_public_key=keys["hub"].public_pem,
        key_serial=PROVIDER_SERIAL,
        peer_key_serial=HUB_SERIAL,
        **kw,
    )
    async with run_emulator(app) as url, provider_client() as http:
        yield Harness(url, http, app.state.engine, app, keys)


def check_req(
    account: str = "9001234567", amount: int = 15000, txn_id: str = "chk-1", **kw: Any
) -> CheckRequest:
    return CheckRequest(
        txn_id=txn_id, service_code="mts", account=account, amount=amount, currency="RUB", **kw
    )


def pay_req(txn_id: str, account: str = "9001234567", amount: int = 15000, **kw: Any) -> PayRequest:
    return PayRequest(
        txn_id=txn_id,
        txn_date=TXN_DATE,
        service_code="mts",
        account=account,
        amount=amount,
        currency="RUB",
        **kw,
    )


def status_req(txn_id: str, provider_txn_id: str | None = None) -> StatusRequest:
    return StatusRequest(txn_id=txn_id, service_code="mts", provider_txn_id=provider_txn_id)


def sent_fields(exchange_request: str) -> dict[str, str]:
    """The message fields of a recorded request (the envelope as sent)."""
    return decode_message(open_envelope(exchange_request.encode(ENCODING)).body)


# -- a scriptable fake provider: answers whatever the test says, signed or not -------------------------


Answer = Callable[[str, dict[str, str]], Response]


@asynccontextmanager
async def fake_provider(keys: dict[str, KeyPair], respond: Answer) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A provider answering ``respond(step, request fields)``; yields (base URL, raw messages)."""
    app = FastAPI()
    received: list[bytes] = []

    async def handle(step: str, request: Request) -> Response:
        raw = await request.body()
        form = dict(pair.split(b"=", 1) for pair in raw.split(b"&"))
        message = urllib.parse.unquote_to_bytes(form[b"inputmessage"].replace(b"+", b" "))
        received.append(message)
        envelope = open_envelope(message)
        assert envelope.verify(load_public_key(keys["hub"].public_pem))
        return respond(step, decode_message(envelope.body))

    for step in ("check", "pay", "status"):

        async def route(request: Request, step: str = step) -> Response:
            return await handle(step, request)

        app.add_api_route(f"/{step}", route, methods=["POST"])
    async with run_emulator(app) as url:
        yield url, received


def fake_urls(url: str) -> dict[str, str]:
    return {"check_url": f"{url}/check", "pay_url": f"{url}/pay", "status_url": f"{url}/status"}


def signed(
    keys: dict[str, KeyPair],
    fields: list[tuple[str, str]],
    *,
    signer: str = "provider",
    serial: str = PROVIDER_SERIAL,
) -> bytes:
    return seal(encode_message(fields), load_private_key(keys[signer].private_pem), serial)


def plain(
    body: bytes, status_code: int = 200, media_type: str = "text/plain; charset=windows-1251"
) -> Response:
    return Response(body, status_code=status_code, media_type=media_type)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- registration, configuration, sessions, envelope ------------------------------------------------


def test_registered_as_entry_point() -> None:
    assert protocol_class("cyberplat") is CyberplatProtocol


def test_validate_config_ok_with_files_and_passphrase(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    hub_key, _ = write_key_pair(tmp_path, "hub", generate_key_pair(passphrase="s3cret"))
    _, provider_pub = write_key_pair(tmp_path, "provider", keys["provider"])
    config = client_config(fake_urls("https://cyberplat.example"), keys)
    del config["private_key"], config["provider_public_key"]
    config.update(
        private_key_file=str(hub_key),
        private_key_passphrase="s3cret",
        provider_public_key_file=str(provider_pub),
    )
    assert CyberplatProtocol.validate_config(config) == []
    assert (hub_key.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"check_url": None}, "check_url is required"),
        ({"pay_url": "ftp://x.example/pay"}, "pay_url"),
        ({"sd": "17a31"}, "sd (the dealer code) must be digits"),
        ({"op": None}, "op (the operator code) is required"),
        ({"key_serial": "bad serial!"}, "key_serial must be"),
        ({"account_field": "PHONE"}, "account_field"),
        ({"session_prefix": "TOO-LONG-PREFIX"}, "session_prefix"),
        ({"pay_precheck": "yes"}, "pay_precheck must be true or false"),
        ({"currency": "XYZ"}, "currency"),
        ({"timeout": "soon"}, "timeout"),
        ({"private_key": None}, "private_key (PEM text) or private_key_file"),
        ({"private_key": "not a key"}, "private_key must be PEM text"),
        ({"private_key_file": "/nonexistent/hub.key"}, "both"),
        (
            {"private_key": None, "private_key_file": "/nonexistent/hub.key"},
            "cannot read '/nonexistent/hub.key'",
        ),
        ({"private_key_passphrase": "unneeded"}, "not encrypted"),
        (
            {"provider_public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
            "provider public key",
        ),
    ],
)
def test_validate_config_reports_problems_readably(
    keys: dict[str, KeyPair], change: dict[str, Any], problem: str
) -> None:
    config = client_config(fake_urls("https://cyberplat.example"), keys)
    for key, value in change.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    problems = CyberplatProtocol.validate_config(config)
    assert any(problem in p for p in problems), problems


def test_validate_config_key_problems(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    encrypted = generate_key_pair(passphrase="right")
    config = client_config(fake_urls("https://cyberplat.example"), keys, private_key=encrypted.private_pem)
    assert any("passphrase is needed" in p for p in CyberplatProtocol.validate_config(config))
    config["private_key_passphrase"] = "wrong"
    assert any("wrong passphrase" in p for p in CyberplatProtocol.validate_config(config))
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    config = client_config(fake_urls("https://cyberplat.example"), keys, private_key=ec_pem)
    assert any("must be an RSA key" in p for p in CyberplatProtocol.validate_config(config))
    unreadable = tmp_path / "hub.key"
    unreadable.write_bytes(b"\xff\xfe garbage")
    config = client_config(fake_urls("https://cyberplat.example"), keys)
    del config["private_key"]
    config["private_key_file"] = str(unreadable)
    assert any("private key" in p for p in CyberplatProtocol.validate_config(config))


async def test_bad_config_is_classified_not_raised(keys: dict[str, KeyPair]) -> None:
    async with provider_client() as http:
        proto = CyberplatProtocol(client_config(fake_urls("http://127.0.0.1:9"), keys, sd=""), http)
        for result in (
            await proto.pay(pay_req("1")),
            await proto.check(check_req()),
            await proto.status(status_req("1")),
        ):
            assert (result.outcome, result.code, result.exchanges) == ("fatal", "bad_config", [])
            assert "sd" in (result.message or "")


def test_session_is_deterministic_unique_and_short() -> None:
    assert session_for("123") == session_for("123") == "PMX123"
    assert session_for("123", "") == "123"
    hashed = session_for("chk-20261122100000123456")
    assert (
        hashed == session_for("chk-20261122100000123456") and hashed.startswith("PMXH") and len(hashed) == 20
    )
    ids = [str(i) for i in range(5000)] + [f"chk-{i}" for i in range(5000)] + ["9" * 30, "9" * 31]
    sessions = [session_for(i) for i in ids]
    assert len(set(sessions)) == len(ids)
    assert all(len(s) <= 20 and s.isalnum() and s.isascii() for s in sessions)


def test_envelope_round_trip_and_tampering(keys: dict[str, KeyPair]) -> None:
    private = load_private_key(keys["provider"].private_pem)
    public = load_public_key(keys["provider"].public_pem)
    body = encode_message([("SESSION", "PMX1"), ("COMMENT", "Оплата услуг связи")])
    sealed = seal(body, private, "64182", "17031")
    opened = open_envelope(sealed)
    assert opened.verify(public) and opened.body == body
    assert (opened.signer_key, opened.recipient_key) == ("64182", "17031")
    assert decode_message(opened.body)["COMMENT"] == "Оплата услуг связи"
    assert "Оплата".encode(ENCODING) in sealed  # cp1251 on the wire, not UTF-8
    assert not open_envelope(sealed.replace(b"PMX1", b"PMX2")).verify(public)
    assert not open_envelope(sealed.replace(b"Signer-Key: 64182", b"Signer-Key: 64183")).verify(public)
    assert not opened.verify(load_public_key(keys["other"].public_pem))
    for broken in (
        b"",
        b"SESSION=1\r\nERROR=0\r\n",
        sealed.replace(b"Body-Length: ", b"Body-Length: 1"),
        sealed.split(b"BEGIN SIGNATURE")[0],
        sealed.replace(b"END SIGNATURE", b"END"),
        sealed.replace(b"Version: 1", b"Version: 9"),
    ):
        with pytest.raises(EnvelopeError):
            open_envelope(broken)


# -- check -------------------------------------------------------------------------------------------


async def test_check_ok_sends_the_spec_fields_and_returns_info(keys: dict[str, KeyPair]) -> None:
    config = {
        "accounts": {"9001234567": {"check": "ok", "balance": "1500.00", "info": {"name": "I. Ivanov"}}}
    }
    async with emulator(keys, config) as emu:
        result = await emu.protocol().check(check_req(fields={"EXTRA_ID": "77", "lower_case": "ignored"}))
        masked = await emu.protocol().check(check_req(fields={"PIN_SECRET": "8642"}))
        assert emu.app.state.sessions == {}  # REQ_TYPE=1 opens no session
    assert (result.outcome, result.code) == ("ok", "0")
    assert result.info["balance"] == "1500.00" and result.info["name"] == "I. Ivanov"
    assert result.info["meaning"] == "success" and result.provider_txn_id is None
    [exchange] = result.exchanges
    assert exchange.step == "check" and exchange.url == f"{emu.url}/cgi-bin/es/es_pay_check.cgi"
    fields = sent_fields(exchange.request)
    assert fields == {
        "SD": "17031",
        "AP": "17032",
        "OP": "17034",
        "SESSION": session_for("chk-1"),
        "NUMBER": "9001234567",
        "AMOUNT": "150.00",
        "AMOUNT_ALL": "150.00",
        "EXTRA_ID": "77",
        "REQ_TYPE": "1",
        "ACCEPT_KEYS": PROVIDER_SERIAL,
    }
    assert "BEGIN SIGNATURE" in exchange.request
    assert masked.outcome == "ok" and "PIN_SECRET=***\r\n" in masked.exchanges[0].request
    assert "8642" not in masked.exchanges[0].request
    assert "ERROR=0" in (exchange.response or "")


async def test_check_account_field_and_amount_format(keys: dict[str, KeyPair]) -> None:
    async with emulator(keys) as emu:
        result = await emu.protocol(account_field="ACCOUNT").check(check_req(account="LS-1001", amount=1045))
    fields = sent_fields(result.exchanges[0].request)
    assert fields["ACCOUNT"] == "LS-1001" and "NUMBER" not in fields
    assert fields["AMOUNT"] == "10.45" and result.outcome == "ok"


async def test_check_refuses_other_currencies_without_sending(keys: dict[str, KeyPair]) -> None:
    async with emulator(keys) as emu:
        result = await emu.protocol().check(CheckRequest("c", "mts", "9001234567", 100, "EUR"))
    assert (result.outcome, result.code, result.exchanges) == ("fatal", "currency", [])


CHECK_OUTCOME = {"ok": "ok", "fatal": "fatal", "not_found": "fatal"}
PAY_OUTCOME = {
    "fatal": "fatal",
    "temporary": "temporary",
    "pending": "pending",
    "doubt": "unknown",
    "not_found": "temporary",
}


@pytest.mark.parametrize("code", [c for c in codes.CODES if c != "0"])
async def test_every_mapped_code(keys: dict[str, KeyPair], code: str) -> None:
    """Every ERROR code of the table, on check and on pay, with its meaning in the result."""
    entry = codes.CODES[code]
    accounts = {
        "9000000001": {"check": f"reject:{code}:refused"},
        "9000000002": {"pay": f"fatal:{code}:Отказ {code}"},
    }
    async with emulator(keys, {"accounts": accounts}) as emu:
        proto = emu.protocol()
        checked = await proto.check(check_req("9000000001"))
        paid = await proto.pay(pay_req("500", "9000000002"))
    assert checked.outcome == CHECK_OUTCOME.get(entry.kind, "temporary")
    assert checked.code == code and entry.meaning in (checked.message or "")
    assert checked.info["meaning"] == entry.meaning and checked.info["kind"] == entry.kind
    assert paid.outcome == PAY_OUTCOME[entry.kind], (code, entry)
    assert paid.code == code and paid.message == f"ERROR {code}: {entry.meaning} (Отказ {code})"


# -- pay ---------------------------------------------------------------------------------------------


async def test_pay_checks_then_pays_with_one_session(keys: dict[str, KeyPair]) -> None:
    async with emulator(keys) as emu:
        result = await emu.protocol(comment="Оплата связи").pay(pay_req("101"))
        txns = emu.engine.transactions()
    assert (result.outcome, result.code) == ("ok", "0")
    assert [e.step for e in result.exchanges] == ["precheck", "pay"]
    assert result.exchanges[0].url.endswith("/es_pay_check.cgi") and result.exchanges[1].url.endswith(
        "/es_pay.cgi"
    )
    first, second = (sent_fields(e.request) for e in result.exchanges)
    assert first == second and first["SESSION"] == "PMX101" and "REQ_TYPE" not in first
    assert first["COMMENT"] == "Оплата связи"
    [txn] = txns
    assert (txn.txn_id, txn.account, txn.amount, txn.provider_txn_id) == (
        "PMX101",
        "9001234567",
        15000,
        result.provider_txn_id,
    )


async def test_cyrillic_comment_round_trips_in_cp1251(keys: dict[str, KeyPair]) -> None:
    def respond(step: str, fields: dict[str, str]) -> Response:
        answer = [
            ("SESSION", fields["SESSION"]),
            ("ERROR", "0"),
            ("RESULT", "0"),
            ("TRANSID", "1000000000001"),
        ]
        return plain(signed(keys, [*answer, ("ERRMSG", "Платёж принят: " + fields["COMMENT"])]))

    async with fake_provider(keys, respond) as (url, received), provider_client() as http:
        proto = CyberplatProtocol(client_config(fake_urls(url), keys, pay_precheck=False), http)
        result = await proto.pay(
            pay_req("7", fields={"comment": "Оплата за интернет, кв. 5\r\nвторая строка"})
        )
    [raw] = received
    body = open_envelope(raw).body
    assert "COMMENT=Оплата за интернет, кв. 5  вторая строка\r\n".encode(ENCODING) in body
    assert result.outcome == "ok" and result.provider_txn_id == "1000000000001"
    assert result.info["errmsg"] == "Платёж принят: Оплата за интернет, кв. 5  вторая строка"


async def test_retries_use_the_same_session_and_pay_once(keys: dict[str, KeyPair]) -> None:
    async with emulator(keys, {"accounts": {"9001234567": {"pay": "temporary_then_ok:2"}}}) as emu:
        proto = emu.protocol()
        results = [await proto.pay(pay_req("202")) for _ in range(3)]
        calls = emu.engine.ledger.all_pay_calls()
        txns = emu.engine.transactions()
    assert [r.outcome for r in results] == ["temporary", "temporary", "ok"]
    assert results[0].code == "30" and "general system error" in (results[0].message or "")
    sessions = {sent_fields(e.request)["SESSION"] for r in results for e in r.exchanges}
    assert sessions == {"PMX202"}
    assert calls == {"PMX202": 3} and len(txns) == 1


async def test_repeated_pay_returns_the_original_transid(keys: dict[str, KeyPair]) -> None:
    async with emulator(keys) as emu:
        proto = emu.protocol()
        first = await proto.pay(pay_req("303"))
        again = await proto.pay(pay_req("303"))
        other = await proto.pay(pay_req("304"))
        conflict = await proto.pay(pay_req("303", amount=16000))
        txns = emu.engine.transactions()
    assert first.outcome == again.outcome == "ok"
    assert again.provider_txn_id == first.provider_txn_id != other.provider_txn_id
    assert again.exchanges[0].response and "ERROR=1\r\n" in again.exchanges[0].response  # session exists
    assert [t.txn_id for t in txns] == ["PMX303", "PMX304"]
    assert (conflict.outcome, conflict.code) == ("fatal", "18")


async def test_precheck_refusal_never_sends_the_pay(keys: dict[str, KeyPair]) -> None:
    async with emulator(keys, {"accounts": {"9001234567": {"check": "reject:23:Абонент не найден"}}}) as emu:
        result = await emu.protocol().pay(pay_req("404"))
        assert emu.engine.ledger.all_pay_calls() == {}
    assert (result.outcome, result.code) == ("fatal", "23")
    assert result.message == "check before pay: ERROR 23: wrong phone or account number (Абонент не найден)"
    assert [e.step for e in result.exchanges] == ["precheck"]


async def test_pay_without_precheck(keys: dict[str, KeyPair]) -> None:
    async with emulator(keys) as strict:
        refused = await strict.protocol(pay_precheck=False).pay(pay_req("505"))
    assert (refused.outcome, refused.code) == ("temporary", "11")
    async with emulator(keys, require_check=False) as lenient:
        paid = await lenient.protocol(pay_precheck=False).pay(pay_req("505"))
    assert paid.outcome == "ok" and [e.step for e in paid.exchanges] == ["pay"]


async def test_pending_pay_then_status_settles(keys: dict[str, KeyPair]) -> None:
    async with emulator(keys, {"pending_ms": 300, "accounts": {"9001234567": {"pay": "pending"}}}) as emu:
        proto = emu.protocol()
        paid = await proto.pay(pay_req("606"))
        pending = await proto.status(status_req("606"))
        await asyncio.sleep(0.4)
        done = await proto.status(status_req("606", paid.provider_txn_id))
    assert (paid.outcome, paid.code) == ("pending", "20") and paid.provider_txn_id
    assert (pending.outcome, pending.info["trnxstatus"]) == ("pending", "3")
    assert (done.outcome, done.provider_txn_id, done.info["trnxstatus"]) == ("ok", paid.provider_txn_id, "7")
    assert done.info["authcode"]
    assert sent_fields(done.exchanges[0].request) == {
        "SESSION": "PMX606",
        "TRANSID": paid.provider_txn_id,
        "ACCEPT_KEYS": PROVIDER_SERIAL,
    }


async def test_status_outcomes(keys: dict[str, KeyPair]) -> None:
    accounts = {
        "9000000001": {"pay": "fatal:23:Абонент не найден"},
        "9000000003": {"pay": "temporary:30:busy"},
    }
    async with emulator(keys, {"accounts": accounts}) as emu:
        proto = emu.protocol()
        await proto.pay(pay_req("701", "9000000001"))
        failed = await proto.status(status_req("701"))
        never = await proto.status(status_req("702"))
        refused = await proto.pay(pay_req("703", "9000000003"))  # checked, then refused for now
        only_checked = await proto.status(status_req("703"))
        wrong_transid = await proto.status(status_req("701", "9999999999999"))
    assert (failed.outcome, failed.code) == ("fatal", "23")
    assert failed.message == (
        "TRNXSTATUS 7: the payment is final; ERROR 23: wrong phone or account number (Абонент не найден)"
    )
    assert (never.outcome, never.code, never.message) == (
        "not_found",
        "11",
        "ERROR 11: no session with this number",
    )
    assert refused.outcome == "temporary"
    assert (only_checked.outcome, only_checked.info["trnxstatus"]) == ("not_found", "1")
    assert (wrong_transid.outcome, wrong_transid.code) == ("not_found", "34")


async def test_provider_down_is_temporary(keys: dict[str, KeyPair]) -> None:
    async with emulator(keys) as emu:
        await emu.http.post(f"{emu.url}/_emulator/down")
        proto = emu.protocol(pay_precheck=False)
        paid = await proto.pay(pay_req("801"))
        status = await proto.status(status_req("801"))
        checked = await proto.check(check_req())
    assert (paid.outcome, paid.code, paid.exchanges[0].status_code) == ("temporary", "50", 503)
    assert (status.outcome, checked.outcome) == ("temporary", "temporary")


# -- answers that must never be taken for success ------------------------------------------------------


def _ok_fields(fields: dict[str, str]) -> list[tuple[str, str]]:
    return [("SESSION", fields["SESSION"]), ("ERROR", "0"), ("RESULT", "0"), ("TRANSID", "1000000000009")]


def _status_ok(fields: dict[str, str]) -> list[tuple[str, str]]:
    return [*_ok_fields(fields), ("TRNXSTATUS", "7")]


HOSTILE: dict[str, Callable[[dict[str, KeyPair], dict[str, str]], Response]] = {
    "unsigned": lambda k, f: plain(encode_message(_ok_fields(f))),
    "signed by another key": lambda k, f: plain(signed(k, _ok_fields(f), signer="other")),
    "signed with another serial": lambda k, f: plain(signed(k, _ok_fields(f), serial="99999")),
    "tampered": lambda k, f: plain(
        signed(k, [*_ok_fields(f)[:1], ("ERROR", "22")]).replace(b"ERROR=22", b"ERROR=0 ")
    ),
    "another session": lambda k, f: plain(signed(k, [("SESSION", "PMX1"), ("ERROR", "0"), ("TRANSID", "1")])),
    "no ERROR": lambda k, f: plain(signed(k, [("SESSION", f["SESSION"]), ("RESULT", "0")])),
    "not key=value": lambda k, f: plain(
        seal(b"<html>ok</html>\r\n", load_private_key(k["provider"].private_pem), PROVIDER_SERIAL)
    ),
    "garbage": lambda k, f: plain("ERROR=0 RESULT=0 всё хорошо".encode(ENCODING)),
    "empty": lambda k, f: plain(b""),
    "HTTP 500 html": lambda k, f: plain(b"<h1>Internal error</h1>", 500, "text/html"),
    "wrong content type": lambda k, f: plain(signed(k, _status_ok(f)), media_type="application/json"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
async def test_hostile_answers_are_never_success(keys: dict[str, KeyPair], kind: str) -> None:
    respond = HOSTILE[kind]
    async with (
        fake_provider(keys, lambda step, fields: respond(keys, fields)) as (url, _),
        provider_client() as http,
    ):
        proto = CyberplatProtocol(client_config(fake_urls(url), keys, pay_precheck=False), http)
        paid = await proto.pay(pay_req("901"))
        checked = await proto.check(check_req())
        status = await proto.status(status_req("901"))
    assert (paid.outcome, paid.code) == ("unknown", "bad_response"), paid
    assert (checked.outcome, status.outcome) == ("temporary", "temporary")
    assert paid.provider_txn_id is None and paid.message
    assert paid.exchanges[0].status_code in (200, 500)


async def test_content_type_check_can_be_relaxed(keys: dict[str, KeyPair]) -> None:
    respond = HOSTILE["wrong content type"]
    async with (
        fake_provider(keys, lambda step, fields: respond(keys, fields)) as (url, _),
        provider_client() as http,
    ):
        proto = CyberplatProtocol(client_config(fake_urls(url), keys, strict_content_type=False), http)
        assert (await proto.status(status_req("902"))).outcome == "ok"


async def test_unknown_code_on_pay_is_unknown_and_4xx_is_fatal(keys: dict[str, KeyPair]) -> None:
    def respond(step: str, fields: dict[str, str]) -> Response:
        if fields["SESSION"] == "PMX1":
            return plain(signed(keys, [("SESSION", "PMX1"), ("ERROR", "999"), ("RESULT", "1")]))
        return plain(b"Not Found", 404)

    async with fake_provider(keys, respond) as (url, _), provider_client() as http:
        proto = CyberplatProtocol(client_config(fake_urls(url), keys, pay_precheck=False), http)
        unknown = await proto.pay(pay_req("1"))
        missing = await proto.pay(pay_req("2"))
        checked = await proto.check(check_req(txn_id="1"))
    assert (unknown.outcome, unknown.code, unknown.message) == (
        "unknown",
        "999",
        "ERROR 999: unknown error code",
    )
    assert (missing.outcome, missing.code) == ("fatal", "bad_response")
    assert (checked.outcome, checked.code) == ("temporary", "999")


async def test_tampering_proxy_turns_a_refusal_into_unknown(keys: dict[str, KeyPair]) -> None:
    """A man in the middle rewrites the emulator's ERROR=22 into ERROR=00: the hub must not believe it."""
    async with emulator(keys, {"accounts": {"9001234567": {"pay": "fatal:22:refused"}}}) as emu:
        proxy = FastAPI()

        @proxy.post("/{path:path}")
        async def forward(path: str, request: Request) -> Response:
            upstream = await emu.http.post(
                f"{emu.url}/{path}",
                content=await request.body(),
                headers={"content-type": request.headers["content-type"]},
            )
            # same length, so the envelope still parses: only the signature can tell
            body = upstream.content.replace(b"ERROR=22\r\nRESULT=1", b"ERROR=00\r\nRESULT=0")
            return plain(body, upstream.status_code)

        async with run_emulator(proxy) as proxy_url:
            result = await CyberplatProtocol(client_config(provider_urls(proxy_url), keys), emu.http).pay(
                pay_req("11")
            )
    assert "ERROR=00\r\nRESULT=0" in (result.exchanges[-1].response or "")
    assert (result.outcome, result.code) == ("unknown", "bad_response")
    assert "signature does not verify" in (result.message or "")


# -- transport failures ------------------------------------------------------------------------------


async def test_slow_answer_times_out(keys: dict[str, KeyPair]) -> None:
    async with emulator(keys, {"accounts": {"9001234567": {"latency_ms": 1500}}}, require_check=False) as emu:
        proto = emu.protocol(timeout="0.3", pay_precheck=False)
        paid = await proto.pay(pay_req("21"))
        checked = await proto.check(check_req())
        emu.engine.release_holds()
    assert (paid.outcome, paid.code) == ("unknown", "timeout")
    assert paid.exchanges[0].response is None and paid.exchanges[0].status_code is None
    assert (checked.outcome, checked.code) == ("temporary", "timeout")


async def test_slow_precheck_is_temporary_not_unknown(keys: dict[str, KeyPair]) -> None:
    async with emulator(keys, {"latency_ms": 1500}) as emu:
        result = await emu.protocol(timeout="0.3").pay(pay_req("22"))
        emu.engine.release_holds()
        assert emu.engine.ledger.all_pay_calls() == {}
    assert (result.outcome, result.code, [e.step for e in result.exchanges]) == (
        "temporary",
        "timeout",
        ["precheck"],
    )


async def test_lost_answer_then_status(keys: dict[str, KeyPair]) -> None:
    config = {"lost_hold_ms": 3000, "accounts": {"9001234567": {"pay": "lost_then_ok"}}}
    async with emulator(keys, config) as emu:
        proto = emu.protocol(timeout="0.5")
        lost = await proto.pay(pay_req("31"))
        settled = await proto.status(status_req("31"))
        again = await proto.pay(pay_req("31"))
        calls = emu.engine.ledger.all_pay_calls()
    assert (lost.outcome, lost.code) == ("unknown", "timeout")
    assert settled.outcome == "ok" and settled.provider_txn_id
    assert again.provider_txn_id == settled.provider_txn_id and calls == {"PMX31": 2}


async def test_dropped_connection_and_unreachable(keys: dict[str, KeyPair]) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, provider_client() as http:
        proto = CyberplatProtocol(
            client_config(fake_urls(f"http://127.0.0.1:{port}"), keys, pay_precheck=False), http
        )
        dropped = await proto.pay(pay_req("41"))
        dropped_check = await proto.check(check_req())
        closed = CyberplatProtocol(client_config(fake_urls(f"http://127.0.0.1:{free_port()}"), keys), http)
        unreachable = await closed.pay(pay_req("41"))
    assert (dropped.outcome, dropped.code) == ("unknown", "network_error")
    assert dropped_check.outcome == "temporary"
    assert unreachable.outcome == "unreachable" and [e.step for e in unreachable.exchanges] == ["precheck"]


# -- end to end through the hub ----------------------------------------------------------------------


def _catalog(urls: dict[str, str], keys: dict[str, KeyPair]) -> dict[str, Any]:
    cat: dict[str, Any] = {**BASE_CATALOG}
    cyber = {
        "code": "p1",
        "name": "Cyberplat-style provider",
        "protocol": "cyberplat",
        "config": client_config(urls, keys),
        "settlement": "prepaid",
        "overdraft": {"RUB": "0.00"},
    }
    cat["providers"] = [cyber, *BASE_CATALOG["providers"][1:]]
    return cat


async def test_hub_pays_through_cyberplat_and_settles_a_lost_answer(
    db_url: str, keys: dict[str, KeyPair]
) -> None:
    encrypted = generate_key_pair(passphrase="hub-pass")
    hub_keys = {**keys, "hub": encrypted}
    config = {"lost_hold_ms": 3000, "accounts": {"9000000002": {"pay": "lost_then_ok"}}}
    async with emulator(hub_keys, config) as emu:
        catalog = _catalog(provider_urls(emu.url), hub_keys)
        catalog["providers"][0]["config"]["private_key_passphrase"] = "hub-pass"
        catalog["providers"][0]["config"]["comment"] = "Оплата связи"
        async with hub_env(db_url, catalog=catalog) as env:
            ok = (await env.pay()).json()["id"]
            lost = (await env.pay(account="9000000002")).json()["id"]
            final = await env.wait_final(ok)
            final_lost = await env.wait_final(lost)
            details = await env.details(ok)
            details_lost = await env.details(lost)
            calls = emu.engine.ledger.all_pay_calls()
    assert final["status"] == "succeeded" and final["provider"] == "p1"
    [txn] = [t for t in emu.engine.transactions() if t.txn_id == f"PMX{ok}"]
    assert final["provider_txn_id"] == txn.provider_txn_id
    [attempt] = details["attempts"]
    assert (attempt["step"], attempt["outcome"], attempt["code"]) == ("pay", "ok", "0")
    assert attempt["message"] == "ERROR 0: success"
    assert [e["step"] for e in attempt["exchanges"]] == ["precheck", "pay"]
    assert "COMMENT=Оплата связи" in attempt["exchanges"][1]["request"]
    # lost answer: unknown, then settled by status at the same provider, paid once
    assert final_lost["status"] == "succeeded"
    steps = [(a["step"], a["outcome"]) for a in details_lost["attempts"]]
    assert steps[0] == ("pay", "unknown") and steps[-1] == ("status", "ok")
    assert calls[f"PMX{lost}"] == 1 and env.pay_calls("p2") == {} and env.pay_calls("p3") == {}
    # secrets are never shown: no private key, no passphrase anywhere in the payment details
    for text in (str(details), str(details_lost)):
        assert "PRIVATE KEY" not in text and "hub-pass" not in text
        assert encrypted.private_pem.splitlines()[1] not in text
