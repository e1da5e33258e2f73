"""Cyberplat-style inbound: payment systems check, pay, ask status and cancel at the hub over real HTTP
(``/cyberplat/{gateway}/{step}``), in signed key=value envelopes.

Two emulated payment systems talk to the hub: the hub's own client of the protocol
(``paymux.providers.cyberplat.CyberplatProtocol``, configured with the gateway's URLs as if the hub
were its provider: the interface is real when both ends of one protocol meet), and
:class:`PaymentSystem` below, written from the protocol, which also sends what a well-behaved client
never does (wrong keys, tampered, garbled or malformed messages).
"""

from __future__ import annotations

import copy
import datetime as dt
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from harness import BASE_CATALOG, Env, hub_env
from paymux.gateways.base import InboundProtocol, inbound_names, inbound_prefixes, inbound_protocols
from paymux.gateways.models import InboundExchange
from paymux.ledger.models import JournalEntry
from paymux.ledger.service import verify_ledger
from paymux.payments.models import Payment
from paymux.providers.base import CheckRequest, PayRequest, StatusRequest
from paymux.providers.cyberplat import CyberplatProtocol
from paymux.providers.cyberplat_envelope import (
    decode_message,
    encode_message,
    generate_key_pair,
    load_private_key,
    load_public_key,
    open_envelope,
    seal,
)

PEER = generate_key_pair(1024)  # the payment system's keys
HUB = generate_key_pair(1024)  # the hub's keys for this gateway
INTRUDER = generate_key_pair(1024)
PEER_SERIAL, HUB_SERIAL = "PS7", "HUB1"
SD, AP, OP = "17031", "17032", "17034"
ACCOUNT = "9001234567"
WATER_ACCOUNT = "12345678"
PASSWORD = "cyber-secret-42"
LIMITS = {"auth_failures_per_key": 3, "auth_failures_per_address": 5, "auth_failure_window_seconds": 60}


@pytest.fixture(autouse=True)
def _tcp_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "")


def gateway(code: str, channel: str, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "code": code,
        "name": f"Cyberplat system {code}",
        "protocol": "cyberplat",
        "channel": channel,
        "services": ["topup", "water"],
        "default_service": "topup",
        "limits": {"RUB": {"min": "10.00", "max": "5000.00"}},
        "allow_ips": ["127.0.0.0/8"],
        "config": {
            "private_key": HUB.private_pem,
            "key_serial": HUB_SERIAL,
            "peer_public_key": PEER.public_pem,
            "peer_key_serial": PEER_SERIAL,
            "sd": SD,
            "ap": AP,
            "op": OP,
        },
    }
    doc.update(over)
    return doc


def catalog() -> dict[str, Any]:
    cat = copy.deepcopy(BASE_CATALOG)
    cat["channels"] += [
        {"code": "cp-ch", "name": "Cyberplat", "kind": "gateway", "group": "online"},
        {"code": "cpf-ch", "name": "Cyberplat final", "kind": "gateway"},
        {"code": "cpl-ch", "name": "Cyberplat with login", "kind": "gateway"},
        {"code": "far-ch", "name": "Far away", "kind": "gateway"},
    ]
    cat["services"].append(
        {
            "code": "water",
            "name": "Water",
            "currency": "RUB",
            "account_pattern": r"^\d{8}$",
            "min_amount": "1.00",
            "max_amount": "20000.00",
            "fields": [{"name": "period", "pattern": r"^\d{4}-\d{2}$", "required": False}],
            "route": {"candidates": [{"provider": "p2", "code": "W2"}]},
        }
    )
    cat["gateways"] = [
        gateway("cp", "cp-ch", service_param="svc"),
        gateway("cpf", "cpf-ch", pay_result="final", check="local", service_param="svc"),
        gateway("cpl", "cpl-ch", auth={"login": "cyber", "password": PASSWORD}),
        gateway("far", "far-ch", allow_ips=["10.0.0.0/8"]),
    ]
    return cat


@dataclass
class Answer:
    status: int
    fields: dict[str, str]
    signed: bool  # a valid envelope signed with the hub's key for the gateway
    text: str
    headers: httpx.Headers

    @property
    def error(self) -> str:
        return self.fields.get("ERROR", "")


def read_answer(r: httpx.Response) -> Answer:
    assert r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    try:
        envelope = open_envelope(r.content)
    except ValueError:
        return Answer(r.status_code, decode_message(r.content), False, r.text, r.headers)
    signed = envelope.signer_key == HUB_SERIAL and envelope.verify(load_public_key(HUB.public_pem))
    return Answer(r.status_code, decode_message(envelope.body), signed, r.text, r.headers)


class PaymentSystem:
    """A payment system speaking the protocol: signs ``KEY=value`` messages, posts them as the form field
    ``inputmessage`` to ``/cyberplat/{gateway}/{step}``, checks the hub's signature on the answer."""

    def __init__(self, env: Env, gateway: str = "cp", **http: Any) -> None:
        self.env = env
        self.gateway = gateway
        self.http = http
        self.key = load_private_key(PEER.private_pem)

    def envelope(self, fields: list[tuple[str, str]], key: Any = None, serial: str = PEER_SERIAL) -> bytes:
        return seal(encode_message(fields), key or self.key, serial, HUB_SERIAL)

    async def post(self, step: str, envelope: bytes, **http: Any) -> Answer:
        content = b"inputmessage=" + urllib.parse.quote_plus(envelope).encode("ascii")
        headers = {"Content-Type": "application/x-www-form-urlencoded", **http.pop("headers", {})}
        r = await self.env.http.post(
            f"/cyberplat/{self.gateway}/{step}", content=content, headers=headers, **{**self.http, **http}
        )
        return read_answer(r)

    async def send(self, step: str, fields: list[tuple[str, str]], **http: Any) -> Answer:
        return await self.post(step, self.envelope(fields), **http)

    @staticmethod
    def message(
        session: str, number: str = ACCOUNT, amount: str = "100.00", **extra: str
    ) -> list[tuple[str, str]]:
        fields = [("SD", SD), ("AP", AP), ("OP", OP), ("SESSION", session), ("NUMBER", number)]
        fields += [("AMOUNT", amount), ("AMOUNT_ALL", amount)]
        return fields + [(k, v) for k, v in extra.items()]

    async def check(self, session: str, verify_only: bool = True, **kw: Any) -> Answer:
        extra = {"REQ_TYPE": "1"} if verify_only else {}
        return await self.send("check", self.message(session, **{**kw, **extra}))

    async def pay(self, session: str, **kw: Any) -> Answer:
        return await self.send("pay", self.message(session, **kw))

    async def status(self, session: str, transid: str | None = None) -> Answer:
        fields = [("SESSION", session)] + ([("TRANSID", transid)] if transid else [])
        return await self.send("status", fields)

    async def cancel(self, session: str, transid: str | None = None) -> Answer:
        fields = [("SESSION", session)] + ([("TRANSID", transid)] if transid else [])
        return await self.send("cancel", fields)


def hub_client(env: Env, http: httpx.AsyncClient, gateway: str = "cp") -> CyberplatProtocol:
    """The hub's own Cyberplat client, pointed at the gateway as at a provider."""
    base = f"{env.base}/cyberplat/{gateway}"
    config = {
        "check_url": f"{base}/check",
        "pay_url": f"{base}/pay",
        "status_url": f"{base}/status",
        "sd": SD,
        "ap": AP,
        "op": OP,
        "key_serial": PEER_SERIAL,
        "provider_key_serial": HUB_SERIAL,
        "private_key": PEER.private_pem,
        "provider_public_key": HUB.public_pem,
        "timeout": "10",
    }
    assert CyberplatProtocol.validate_config(config) == []
    return CyberplatProtocol(config, http)


async def stored(env: Env) -> tuple[int, int, int]:
    """(payments, journal entries, inbound exchanges)."""
    async with env.hub.read_sessions() as s:
        out = []
        for model in (Payment, JournalEntry, InboundExchange):
            out.append(int(await s.scalar(select(func.count()).select_from(model)) or 0))
    return out[0], out[1], out[2]


async def payment(env: Env, payment_id: str | None) -> Payment:
    assert payment_id
    async with env.hub.read_sessions() as s:
        p = await s.get(Payment, int(payment_id))
    assert p is not None
    return p


async def wait_status(env: Env, payment_id: str | None, within: float = 15) -> dict[str, Any]:
    import asyncio
    import time

    deadline = time.monotonic() + within
    while True:
        d = await env.details(int(payment_id or 0))
        if d["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return d
        await asyncio.sleep(0.03)


# --- the interface ---------------------------------------------------------------------------------------


def test_inbound_protocols_are_plug_ins_found_by_entry_point() -> None:
    found = inbound_protocols()
    assert {"osmp", "cyberplat"} <= set(found)
    assert all(issubclass(cls, InboundProtocol) and cls.name == name for name, cls in found.items())
    assert set(inbound_names()) == set(found)
    assert {"/osmp/", "/cyberplat/"} <= set(inbound_prefixes())


# --- the hub's own client of the protocol as the payment system ------------------------------------------


async def test_the_protocols_own_client_checks_pays_and_asks_status(db_url: str) -> None:
    emus = {"p1": {"accounts": {"9000000005": {"check": "reject:5:account not found"}}}}
    async with hub_env(db_url, catalog=catalog(), emulators=emus) as env, httpx.AsyncClient() as http:
        client = hub_client(env, http)
        checked = await client.check(CheckRequest("111", "T", ACCOUNT, 10000, "RUB"))
        assert checked.outcome == "ok", checked
        refused = await client.check(CheckRequest("112", "T", "9000000005", 10000, "RUB"))
        assert (refused.outcome, refused.code) == ("fatal", "23"), refused
        assert "account not found" in (refused.message or "")
        assert (await stored(env))[0] == 0  # checks register nothing

        pay = PayRequest("5001", dt.datetime.now(dt.UTC), "T", ACCOUNT, 15050, "RUB")
        paid = await client.pay(pay)
        assert paid.outcome == "ok" and paid.provider_txn_id, paid
        p = await payment(env, paid.provider_txn_id)
        assert (p.external_id, p.account, p.amount, p.currency) == ("PMX5001", ACCOUNT, 15050, "RUB")
        # a repeat (its pre-check answers "the session exists", then the pay) is the same payment
        again = await client.pay(pay)
        assert (again.outcome, again.provider_txn_id) == ("ok", paid.provider_txn_id), again
        assert (await stored(env))[0] == 1

        d = await wait_status(env, paid.provider_txn_id)
        assert d["status"] == "succeeded" and d["channel"] == "cp-ch"
        status = await client.status(StatusRequest("5001", "T", provider_txn_id=paid.provider_txn_id))
        assert (status.outcome, status.provider_txn_id) == ("ok", paid.provider_txn_id), status
        assert status.info["trnxstatus"] == "7" and status.info["authcode"] == paid.provider_txn_id
        unknown = await client.status(StatusRequest("5999", "T"))
        assert unknown.outcome == "not_found", unknown

        # every pay the payment system sent is kept with the payment, answers signed, as sent
        inbound = d["inbound"]
        assert [e["command"] for e in inbound] == ["pay", "pay"] and {e["result"] for e in inbound} == {0}
        assert inbound[0]["gateway"] == "cp" and inbound[0]["txn_id"] == "PMX5001"
        assert inbound[0]["request"]["AMOUNT"] == "150.50" and "BEGIN SIGNATURE" in inbound[0]["response"]
        async with env.hub.read_sessions() as s:
            assert (await verify_ledger(s)).balanced


# --- check -------------------------------------------------------------------------------------------------


async def test_check_answers_and_refusals(db_url: str) -> None:
    emus = {
        "p1": {
            "accounts": {
                ACCOUNT: {"info": {"name": "I. Ivanov"}},
                "9000000005": {"check": "reject:5:account not found"},
                "9000000243": {"check": "temporary:1:busy"},
            }
        },
        "p2": {"accounts": {"9000000243": {"check": "temporary:1:busy"}}},
        "p3": {"accounts": {"9000000243": {"check": "temporary:1:busy"}}},
    }
    async with hub_env(db_url, catalog=catalog(), emulators=emus) as env:
        ps = PaymentSystem(env)
        ok = await ps.check("S1")
        assert (ok.status, ok.signed, ok.error, ok.fields["RESULT"], ok.fields["SESSION"]) == (
            200,
            True,
            "0",
            "0",
            "S1",
        )
        assert ok.fields["NAME"] == "I. Ivanov"  # the provider's account details are passed on
        assert dt.datetime.strptime(ok.fields["DATE"], "%d.%m.%Y %H:%M:%S")

        cases = [
            ({"number": "9000000005"}, "23"),  # the provider refused the account
            ({"number": "12"}, "23"),  # not the service's account format
            ({"amount": "5.00"}, "7"),  # below the gateway's minimum
            ({"amount": "6000.00"}, "7"),  # above it
            ({"amount": "100,00"}, "7"),  # not an amount
            ({"SVC": "nothing"}, "15"),  # a service not open to the gateway
            ({"number": "9000000243"}, "30"),  # no provider could answer: temporary
            ({"PERIOD": "2026-01"}, "10"),  # a field topup does not have
        ]
        for kw, error in cases:
            a = await ps.check("S2", **kw)
            assert (a.status, a.signed, a.error, a.fields["RESULT"]) == (200, True, error, "1"), (kw, a.text)
            assert a.fields["ERRMSG"]
        # the water service by the gateway's service_param (SVC), its extra field lower-cased
        water = await ps.check("S3", number=WATER_ACCOUNT, SVC="water", PERIOD="2026-01")
        assert water.error == "0", water.text
        assert (await ps.check("S3", number=WATER_ACCOUNT, SVC="water", PERIOD="2026")).error == "10"

        # the message's own rules
        bad = PaymentSystem.message
        for fields, error in [
            ([(k, v) for k, v in bad("S4") if k != "NUMBER"], "8"),
            ([(k, "9" if k == "SD" else v) for k, v in bad("S4")], "2"),
            ([(k, "x" if k == "AP" else v) for k, v in bad("S4")], "3"),
            ([(k, "1" if k == "OP" else v) for k, v in bad("S4")], "4"),
            ([(k, "99.00" if k == "AMOUNT_ALL" else v) for k, v in bad("S4")], "85"),
            ([(k, "S-4" if k == "SESSION" else v) for k, v in bad("S4")], "5"),
            ([(k, v) for k, v in bad("S4") if k != "SESSION"], "5"),
        ]:
            a = await ps.send("check", fields)
            assert (a.status, a.signed, a.error) == (200, True, error), (fields, a.text)
        assert await stored(env) == (0, 1, 0)  # only the harness's initial deposit


# --- pay ---------------------------------------------------------------------------------------------------


async def test_pay_is_idempotent_by_session_and_a_reused_session_is_refused(db_url: str) -> None:
    async with hub_env(db_url, catalog=catalog()) as env:
        ps = PaymentSystem(env)
        first = await ps.pay("P1", amount="150.50")
        assert (first.signed, first.error, first.fields["RESULT"]) == (True, "0", "0"), first.text
        transid = first.fields["TRANSID"]
        p = await payment(env, transid)
        assert (p.external_id, p.amount, p.channel_id is not None) == ("P1", 15050, True)
        # the same pay again, also with the amount written differently: the same TRANSID, nothing new
        assert (await ps.pay("P1", amount="150.50")).fields["TRANSID"] == transid
        assert (await ps.pay("P1", amount="150.5")).fields["TRANSID"] == transid
        # a check that opens the session again: it exists (ERROR=1); verify-only checks still pass
        assert (await ps.check("P1", verify_only=False, amount="150.50")).error == "1"
        assert (await ps.check("P1", verify_only=False, amount="150.51")).error == "18"
        assert (await ps.check("P2", verify_only=False)).error == "0"

        # the session re-used for another payment is refused: another number, amount, account
        await wait_status(env, transid)
        before = await stored(env)
        assert (await ps.pay("P1", amount="150.51")).error == "18"
        assert (await ps.pay("P1", number="9007654321", amount="150.50")).error == "17"
        by_account = [
            (k if k != "NUMBER" else "ACCOUNT", v) for k, v in ps.message("P1", "9007654321", "150.50")
        ]
        assert (await ps.send("pay", by_account)).error == "19"
        assert (await ps.pay("P1", amount="9999.00")).error == "18"  # also when it breaks a limit
        assert (await stored(env))[:2] == before[:2]

        # pay refusals
        assert (await ps.pay("P3", number="12")).error == "23"
        assert (await ps.pay("P4", amount="5.00")).error == "7"
        assert (await ps.pay("P5", SVC="nothing")).error == "15"
        async with env.hub.read_sessions() as s:
            n = await s.scalar(select(func.count()).select_from(Payment).where(Payment.external_id == "P1"))
            assert n == 1
            assert (await verify_ledger(s)).balanced
        d = await wait_status(env, transid)
        assert d["status"] == "succeeded"
        assert env.pay_calls("p1") == {transid: 1}


async def test_final_result_mode_answers_20_until_paid(db_url: str) -> None:
    emus = {"p2": {"accounts": {"87654321": {"pay": "fatal:5:no such subscriber"}}}}
    async with hub_env(db_url, catalog=catalog(), emulators=emus) as env:
        ps = PaymentSystem(env, "cpf")
        a = await ps.pay("F1", number=WATER_ACCOUNT, SVC="water", amount="42.00")
        assert (a.error, a.fields["RESULT"]) == ("20", "1"), a.text  # being completed
        assert (await wait_status(env, a.fields["TRANSID"]))["status"] == "succeeded"
        done = await ps.pay("F1", number=WATER_ACCOUNT, SVC="water", amount="42.00")
        assert (done.error, done.fields["TRANSID"]) == ("0", a.fields["TRANSID"])

        b = await ps.pay("F2", number="87654321", SVC="water", amount="42.00")
        assert b.error == "20"
        assert (await wait_status(env, b.fields["TRANSID"]))["status"] == "failed"
        failed = await ps.pay("F2", number="87654321", SVC="water", amount="42.00")
        assert (failed.error, failed.fields["TRANSID"]) == ("22", b.fields["TRANSID"])
        assert "no such subscriber" in failed.fields["ERRMSG"]
        status = await ps.status("F2", b.fields["TRANSID"])
        assert (status.error, status.fields["TRNXSTATUS"], status.fields["RESULT"]) == ("22", "7", "7")


# --- status and cancel -------------------------------------------------------------------------------------


async def test_status_and_cancel_before_the_payment_is_sent(db_url: str) -> None:
    async with hub_env(db_url, catalog=catalog(), run_workers=False) as env:
        ps = PaymentSystem(env)
        paid = await ps.pay("C1")
        transid = paid.fields["TRANSID"]
        s = await ps.status("C1")
        assert (s.signed, s.error, s.fields["TRNXSTATUS"], s.fields["RESULT"], s.fields["TRANSID"]) == (
            True,
            "0",
            "3",
            "3",
            transid,
        )
        assert (await ps.status("C1", "999999")).error == "34"  # not this session's payment
        assert (await ps.status("C9")).error == "11"
        assert (await ps.status("C1", "12ab")).error == "34"

        cancelled = await ps.cancel("C1", transid)
        assert (cancelled.signed, cancelled.error, cancelled.fields["TRANSID"]) == (True, "0", transid)
        assert (await ps.cancel("C1")).error == "0"  # a repeat answers the same
        s = await ps.status("C1")
        assert (s.error, s.fields["TRNXSTATUS"]) == ("22", "7")
        assert "AUTHCODE" not in s.fields
        assert (await ps.cancel("C9")).error == "11"
        p = await payment(env, transid)
        assert p.status == "cancelled"
        # the session stays taken by the cancelled payment
        assert (await ps.pay("C1")).fields["TRANSID"] == transid
        async with env.hub.read_sessions() as session:
            assert (await verify_ledger(session)).balanced
        d = await env.details(int(transid))
        assert [e["command"] for e in d["inbound"]] == ["pay", "cancel", "cancel", "pay"]


async def test_a_payment_sent_to_a_provider_cannot_be_cancelled(db_url: str) -> None:
    async with hub_env(db_url, catalog=catalog()) as env:
        ps = PaymentSystem(env)
        transid = (await ps.pay("D1")).fields["TRANSID"]
        assert (await wait_status(env, transid))["status"] == "succeeded"
        refused = await ps.cancel("D1")
        assert (refused.error, refused.fields["RESULT"]) == ("36", "1")
        s = await ps.status("D1", transid)
        assert (s.error, s.fields["TRNXSTATUS"], s.fields["AUTHCODE"]) == ("0", "7", transid)


# --- authentication -----------------------------------------------------------------------------------------


async def test_signature_login_and_address_failures_are_refused_and_store_nothing(db_url: str) -> None:
    async with hub_env(db_url, catalog=catalog(), run_workers=False) as env:
        ps = PaymentSystem(env)
        message = ps.message("A1")
        intruder = load_private_key(INTRUDER.private_pem)
        signed = ps.envelope(message)
        tampered = signed.replace(b"AMOUNT=100.00", b"AMOUNT=900.00")
        assert tampered != signed
        attempts = [
            ps.envelope(message, key=intruder),  # signed with another key
            ps.envelope(message, serial="PS8"),  # another key serial
            tampered,  # changed after signing
            encode_message(message),  # not signed at all
            b"garbage",
        ]
        for envelope in attempts:
            a = await ps.post("pay", envelope)
            assert (a.status, a.signed, a.error, a.fields["SESSION"] in ("A1", "")) == (401, True, "6", True)
        a = await ps.post("pay", signed, headers={"Content-Type": "text/plain"})
        assert (a.status, a.error) == (401, "6")

        # the gateway with a login also wants HTTP Basic
        login = PaymentSystem(env, "cpl")
        no_login = await login.send("pay", message)
        assert (no_login.status, no_login.error) == (401, "6")
        assert no_login.headers["www-authenticate"].startswith("Basic")
        wrong = await login.send("pay", message, auth=("cyber", "wrong-password"))
        assert wrong.status == 401
        right = await login.send("check", [*message, ("REQ_TYPE", "1")], auth=("cyber", PASSWORD))
        assert (right.status, right.error) == (200, "0")

        far = await PaymentSystem(env, "far").send("pay", message)
        assert (far.status, far.signed, far.error) == (403, True, "12")
        unknown = await PaymentSystem(env, "nope").send("pay", message)
        assert (unknown.status, unknown.signed, unknown.error) == (404, False, "44")
        # an OSMP gateway is not a Cyberplat one
        assert (await env.http.post("/cyberplat/qiwi/pay")).status_code == 404
        assert await stored(env) == (0, 1, 0)  # only the harness's initial deposit


async def test_failed_signatures_are_throttled(db_url: str) -> None:
    async with hub_env(db_url, catalog=catalog(), run_workers=False, **LIMITS) as env:
        ps = PaymentSystem(env)
        intruder = load_private_key(INTRUDER.private_pem)
        for _ in range(3):
            assert (await ps.post("check", ps.envelope(ps.message("T1"), key=intruder))).status == 401
        a = await ps.check("T1")
        assert (a.status, a.signed, a.error) == (429, True, "31")
        assert 1 <= int(a.headers["retry-after"]) <= 60


# --- bad input ----------------------------------------------------------------------------------------------


async def test_bad_input_is_answered_in_the_protocol_never_500(db_url: str) -> None:
    async with hub_env(db_url, catalog=catalog(), run_workers=False) as env:
        ps = PaymentSystem(env)
        key = ps.key

        def raw_envelope(body: bytes) -> bytes:
            return seal(body, key, PEER_SERIAL, HUB_SERIAL)

        for body in [
            b"SESSION=B1\r\nnot a key value line\r\n",
            b"SESSION=B1\r\nSESSION=B2\r\n",
            b"session=B1\r\n",
            b"",
            "SESSION=B1\r\nNUMBER=\u0439\u0446\u0443\r\n".encode("cp1251"),
        ]:
            for step in ("check", "pay", "status", "cancel"):
                a = await ps.post(step, raw_envelope(body))
                assert (a.status, a.signed) == (200, True), (body, a.text)
                assert a.error in ("2", "5", "10", "11"), (body, step, a.text)
        long_field = await ps.pay("B3", PERIOD="1" * 300)
        assert long_field.error == "10"
        long_number = await ps.pay("B4", number="1" * 80)
        assert long_number.error == "8"
        control = await ps.pay("B5", number="900\x01123")
        assert (control.status, control.error) == (200, "10")

        # not a form, no inputmessage, garbled percent-encoding: unauthenticated, never a 500
        for content, ctype in [
            (b"", "application/x-www-form-urlencoded"),
            (b"other=1", "application/x-www-form-urlencoded"),
            (b"inputmessage=%ZZ%", "application/x-www-form-urlencoded"),
            (b"\xff\xfe" * 100, "application/octet-stream"),
        ]:
            r = await env.http.post("/cyberplat/cp/pay", content=content, headers={"Content-Type": ctype})
            assert r.status_code == 401 and r.headers["content-type"].startswith("text/plain"), r.text
        r = await env.http.get("/cyberplat/cp/pay")
        assert r.status_code == 405
        r = await env.http.post("/cyberplat/cp/refund")
        assert r.status_code == 404
        # no payment; every authenticated pay and cancel is kept with the answer it had
        payments, _, kept = await stored(env)
        assert (payments, kept) == (0, 5 * 2 + 3)
        async with env.hub.read_sessions() as s:
            results = set((await s.scalars(select(InboundExchange.result))).all())
        assert 0 not in results and 30 not in results


# --- the admin API and the catalog --------------------------------------------------------------------------


async def test_admin_api_checks_the_protocol_and_its_config_and_masks_the_key(db_url: str) -> None:
    async with hub_env(db_url, catalog=catalog(), run_workers=False) as env:
        url = "/api/v1/admin/gateways"
        doc = gateway("cp", "cp-ch", service_param="svc")

        r = await env.http.put(f"{url}/cp", json={**doc, "protocol": "iso8583"}, headers=env.admin)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        assert "unknown inbound protocol 'iso8583'" in r.text and "cyberplat, osmp" in r.text

        for config, words in [
            ({**doc["config"], "private_key": "not a key"}, "private_key must be PEM"),
            ({k: v for k, v in doc["config"].items() if k != "peer_public_key"}, "peer_public_key"),
            ({**doc["config"], "peer_key_serial": ""}, "peer_key_serial is required"),
            ({**doc["config"], "sd": "x1"}, "sd must be digits"),
            ({**doc["config"], "url": "http://x"}, "unknown config key(s) url"),
        ]:
            r = await env.http.put(f"{url}/cp", json={**doc, "config": config}, headers=env.admin)
            assert r.status_code == 422 and words in r.text, (words, r.text)
        r = await env.http.put(f"{url}/cp", json={**doc, "service_param": "AMOUNT"}, headers=env.admin)
        assert r.status_code == 422 and "other than the cyberplat ones" in r.text

        # a read masks the hub's private key; sending the read back keeps it
        shown = (await env.http.get(f"{url}/cp", headers=env.admin)).json()
        assert shown["protocol"] == "cyberplat" and shown["config"]["private_key"] == "***"
        assert shown["config"]["peer_public_key"] == PEER.public_pem
        assert "PRIVATE KEY" not in (await env.http.get(url, headers=env.admin)).text
        r = await env.http.put(f"{url}/cp", json=shown, headers=env.admin)
        assert r.status_code == 200 and r.json()["change"] == "unchanged", r.text
        # a new key serial: updated, the answers are signed with the kept key under the new serial
        shown["config"]["key_serial"] = "HUB2"
        r = await env.http.put(f"{url}/cp", json=shown, headers=env.admin)
        assert r.json()["change"] == "updated"
        envelope = open_envelope(
            (
                await env.http.post(
                    "/cyberplat/cp/check",
                    content=b"inputmessage="
                    + urllib.parse.quote_plus(
                        PaymentSystem(env).envelope(PaymentSystem.message("M1"))
                    ).encode(),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
            ).content
        )
        assert envelope.signer_key == "HUB2" and envelope.verify(load_public_key(HUB.public_pem))

        # the catalog export keeps the protocol and masks the key; applied back, nothing changes
        from paymux.catalog.file import apply_catalog, dump_yaml, export_catalog, load_yaml
        from paymux.catalog.service import CatalogError

        async with env.hub.sessions() as session:
            text = dump_yaml(await export_catalog(session))
            assert "protocol: cyberplat" in text and "PRIVATE KEY" not in text
            report = await apply_catalog(session, load_yaml(text), actor="test")
            assert not report.changed, report.lines()
            bad = gateway("cp", "cp-ch", service_param="svc", protocol="osmp-v2")
            with pytest.raises(CatalogError, match="unknown inbound protocol 'osmp-v2'"):
                await apply_catalog(session, {"gateways": [bad]}, actor="test")
            await session.rollback()


# --- the real service's iPriv documents ---------------------------------------------------------------


async def test_a_payment_system_signing_ipriv_documents_pays_through_the_gateway(db_url: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from paymux.providers import ipriv

    passphrase = "1111111111"
    keys = {name: rsa.generate_private_key(public_exponent=65537, key_size=1024) for name in ("peer", "hub")}
    serials = {"peer": 17033, "hub": 64182}
    secret = {n: ipriv.secret_key_file(k, n, serials[n], passphrase).decode("ascii") for n, k in keys.items()}
    docs = [
        ipriv.public_key_document(k.public_key(), n, serials[n], ipriv.IprivSecretKey(n, serials[n], k))
        for n, k in keys.items()
    ]
    pubkeys = ipriv.public_key_file(docs).decode("ascii")
    cat = catalog()
    cat["channels"].append({"code": "cpi-ch", "name": "Cyberplat iPriv", "kind": "gateway"})
    gw = gateway("cpi", "cpi-ch")
    gw["config"] = {
        **gw["config"],
        "private_key": secret["hub"],
        "private_key_passphrase": passphrase,
        "key_serial": "64182",
        "peer_public_key": pubkeys,
        "peer_key_serial": "17033",
    }
    cat["gateways"].append(gw)
    async with hub_env(db_url, catalog=cat) as env, httpx.AsyncClient() as http:
        base = f"{env.base}/cyberplat/cpi"
        config = {
            "check_url": f"{base}/check",
            "pay_url": f"{base}/pay",
            "status_url": f"{base}/status",
            "sd": SD,
            "ap": AP,
            "op": OP,
            "key_serial": "17033",
            "provider_key_serial": "64182",
            "private_key": secret["peer"],
            "private_key_passphrase": passphrase,
            "provider_public_key": pubkeys,
            "timeout": "10",
        }
        assert CyberplatProtocol.validate_config(config) == []
        client = CyberplatProtocol(config, http)
        paid = await client.pay(PayRequest("7001", dt.datetime.now(dt.UTC), "T", ACCOUNT, 10000, "RUB"))
        assert paid.outcome == "ok" and paid.provider_txn_id, paid
        answer = paid.exchanges[-1].response or ""
        assert answer[10:12] == "SM" and "64182" in answer.splitlines()[1]
        # the same message in paymux's PEM envelope is not accepted by an iPriv gateway
        system = PaymentSystem(env, "cpi")
        refused = await system.check("7002")
        assert refused.status == 401 and refused.error == "6"
        d = await wait_status(env, paid.provider_txn_id)
        assert d["status"] == "succeeded"
