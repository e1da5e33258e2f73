"""The OSMP (QIWI) protocol client against its emulator and hand-made peers, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from paymux.providers.base import CheckRequest, PayRequest, StatusRequest, protocol_class
from paymux.providers.emulators.behaviour import BehaviourEngine, EmulatorConfig
from paymux.providers.emulators.osmp import create_app, osmp_xml
from paymux.providers.emulators.server import run_emulator
from paymux.providers.osmp import OsmpProtocol, parse_response
from paymux.providers.osmp import _remembered as remembered_pays
from paymux.providers.osmp_codes import RESULT_CODES, result_code
from paymux.providers.transport import provider_client

TXN_DATE = dt.datetime(2026, 11, 22, 10, 0, 5, tzinfo=dt.UTC)
_seq = 0


def txn() -> str:
    """A fresh numeric txn_id (the protocol's txn_id is a number)."""
    global _seq
    _seq += 1
    return str(700000 + _seq)


@dataclass
class Harness:
    url: str
    http: httpx.AsyncClient
    engine: BehaviourEngine
    app: FastAPI

    def protocol(self, **config: Any) -> OsmpProtocol:
        return OsmpProtocol({"url": self.url, "timeout": "2", **config}, self.http)


@asynccontextmanager
async def emulator(
    config: dict[str, Any] | None = None, *, require_check: bool = True
) -> AsyncIterator[Harness]:
    app = create_app(EmulatorConfig.model_validate(config or {}), require_check=require_check)
    async with run_emulator(app) as url, provider_client() as http:
        yield Harness(url + "/", http, app.state.engine, app)


@asynccontextmanager
async def peer(app: FastAPI) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """A hand-made provider (an ASGI app) on loopback."""
    async with run_emulator(app) as url, provider_client() as http:
        yield url + "/osmp", http


def check_req(
    account: str = "9001234567", amount: int = 1045, txn_id: str | None = None, **kw: Any
) -> CheckRequest:
    return CheckRequest(
        txn_id=txn_id or txn(), service_code="mts", account=account, amount=amount, currency="RUB", **kw
    )


def pay_req(txn_id: str, account: str = "9001234567", amount: int = 1045, **kw: Any) -> PayRequest:
    return PayRequest(
        txn_id=txn_id,
        txn_date=TXN_DATE,
        service_code="mts",
        account=account,
        amount=amount,
        currency="RUB",
        **kw,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- registration and configuration --------------------------------------------------------------


def test_registered_as_entry_point() -> None:
    assert protocol_class("osmp") is OsmpProtocol


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({}, "url is required"),
        ({"url": "ftp://x.example/osmp"}, "must be an absolute http:// or https:// URL"),
        ({"url": "https://x.example/osmp?prv=1"}, "must not have a query"),
        ({"url": "https://u:p@x.example/osmp"}, "must not carry credentials"),
        ({"url": "https://x.example/osmp", "method": "PUT"}, "method must be GET or POST"),
        ({"url": "https://x.example/osmp", "password": "pw"}, "username is not"),
        ({"url": "https://x.example/osmp", "cert_file": "/nonexistent/c.pem"}, "is not a readable file"),
        ({"url": "https://x.example/osmp", "params": {"sum": "1"}}, "protocol's own parameters: sum"),
        ({"url": "https://x.example/osmp", "params": ["a"]}, "params must be a mapping"),
        ({"url": "https://x.example/osmp", "service_param": "account"}, "one of the protocol's own"),
        ({"url": "https://x.example/osmp", "txn_date_timezone": "Mars/Olympus"}, "not an IANA time zone"),
        ({"url": "https://x.example/osmp", "timeout": "soon"}, "timeout must be a number of seconds"),
        ({"url": "https://x.example/osmp", "verify": "no"}, "verify must be true or false"),
        (
            {"url": "https://x.example/osmp", "check_before_pay": "yes"},
            "check_before_pay must be true or false",
        ),
        (
            {"url": "https://x.example/osmp", "account_check": "info"},
            "account_check must be check or getInfo",
        ),
    ],
)
def test_validate_config_problems(config: dict[str, Any], problem: str) -> None:
    problems = OsmpProtocol.validate_config(config)
    assert any(problem in p for p in problems), problems


def test_validate_config_ok() -> None:
    config = {
        "url": "https://x.example/osmp",
        "method": "post",
        "username": "hub",
        "password": "pw",
        "params": {"prv_id": "17"},
        "service_param": "service",
        "txn_date_timezone": "Europe/Moscow",
        "timeout": "5",
        "check_before_pay": False,
        "account_check": "getInfo",
    }
    assert OsmpProtocol.validate_config(config) == []


async def test_bad_config_is_classified_not_raised() -> None:
    async with provider_client() as http:
        proto = OsmpProtocol({"method": "PUT"}, http)
        result = await proto.pay(pay_req(txn()))
    assert result.outcome == "fatal"
    assert result.code == "bad_config"
    assert "url is required" in (result.message or "")


def test_result_code_table() -> None:
    temporary = {c for c, rc in RESULT_CODES.items() if not rc.fatal and c != 0}
    assert temporary == {1, 90}
    assert set(RESULT_CODES) == {0, 1, 4, 5, 7, 8, 31, 32, 79, 90, 241, 242, 243, 300}
    assert result_code(6).fatal and result_code(6).meaning == "unknown result code"
    assert result_code(0).label == "ok" and result_code(1).label == "temporary"


# -- check ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_check_ok_with_fields(method: str) -> None:
    accounts = {"9001234567": {"check": "ok", "balance": "15.50", "info": {"name": "I. Ivanov"}}}
    async with emulator({"accounts": accounts}) as emu:
        result = await emu.protocol(method=method).check(check_req())
    assert result.outcome == "ok"
    assert result.code == "0"
    assert result.info["fields"] == {"name": "I. Ivanov", "balance": "15.50"}
    assert result.info["meaning"] == "OK" and result.info["fatal"] is False
    [exchange] = result.exchanges
    assert exchange.step == "check" and exchange.status_code == 200
    assert exchange.request.startswith(f"{method} {emu.url}")
    assert "command=check" in exchange.request and "sum=10.45" in exchange.request
    assert exchange.response is not None and "<result>0</result>" in exchange.response


@pytest.mark.parametrize("code", [*sorted(c for c in RESULT_CODES if c != 0), 6])
async def test_every_check_result_code_is_classified(code: int) -> None:
    directive = f"temporary:{code}:scripted" if code in (1, 90) else f"reject:{code}:scripted"
    async with emulator({"accounts": {"*": {"check": directive}}}) as emu:
        result = await emu.protocol().check(check_req())
    rc = result_code(code)
    assert result.outcome == ("temporary" if code in (1, 90) else "fatal")
    assert result.code == str(code)
    assert result.info["result"] == code
    assert result.info["fatal"] is rc.fatal
    assert result.info["meaning"] == rc.meaning
    assert result.info["comment"] == "scripted"
    # the admin payment details show the message: meaning, fatal or temporary, the provider's comment
    assert result.message == f"OSMP result {code}: {rc.meaning} ({rc.label}); provider says: scripted"


@pytest.mark.parametrize("txn_id", ["chk-20261207011402636640", "1" * 21, "", "12 34", "١٢٣"])
async def test_a_txn_id_that_is_not_a_number_of_up_to_20_digits_is_never_sent(txn_id: str) -> None:
    async with emulator() as emu:
        check = await emu.protocol().check(CheckRequest(txn_id, "mts", "9001234567", 1045, "RUB"))
        pay = await emu.protocol().pay(pay_req(txn_id))
        state = emu.app.state.osmp
        assert state.commands == {} and state.registered == {}
    for result in (check, pay):
        assert (result.outcome, result.code, result.exchanges) == ("fatal", "invalid_request", [])
        assert "whole number of up to 20 digits" in (result.message or "")


async def test_check_returns_the_providers_fields() -> None:
    accounts = {"9001234567": {"balance": "15.50", "info": {"name": "I. Ivanov"}}}
    async with emulator({"accounts": accounts}) as emu:
        result = await emu.protocol().check(check_req())
    assert result.fields == {"name": "I. Ivanov", "balance": "15.50"}


# -- getInfo: the account check that registers nothing ------------------------------------------


async def test_account_check_get_info_sends_get_info_without_a_txn_id() -> None:
    accounts = {
        "9001234567": {"balance": "15.50", "info": {"name": "I. Ivanov"}},
        "9000000005": {"check": "reject:5:account not found"},
    }
    async with emulator({"accounts": accounts}) as emu:
        proto = emu.protocol(account_check="getInfo", params={"prv_id": "17"})
        found = await proto.check(check_req())
        missing = await proto.check(check_req(account="9000000005"))
        direct = await emu.protocol().get_info(check_req())  # get_info whatever account_check says
        state = emu.app.state.osmp
        assert state.get_info_calls == 3 and state.registered == {} and state.commands == {}
    assert (found.outcome, found.code) == ("ok", "0")
    assert found.fields == {"name": "I. Ivanov", "balance": "15.50"}
    [exchange] = found.exchanges
    assert exchange.step == "getInfo"
    assert "command=getInfo&account=9001234567&sum=10.45&ccy=RUB&prv_id=17" in exchange.request
    assert "txn_id" not in exchange.request
    assert (missing.outcome, missing.code) == ("fatal", "5")
    assert direct.outcome == "ok"


async def test_get_info_answers_are_classified_as_check_answers() -> None:
    answers = {
        b"<response><result>0</result><fields><field1 name='fio'>A. B.</field1></fields></response>": "ok",
        b"<response><osmp_txn_id>77</osmp_txn_id><result>0</result></response>": "ok",  # no txn_id sent
        b"<response><result>1</result></response>": "temporary",
        b"<response><result>90</result></response>": "temporary",
        b"<response><result>79</result></response>": "fatal",
        b"<response><result>0</result>": "temporary",  # not OSMP: it moves no money, ask again
    }
    for body, outcome in answers.items():
        async with peer(scripted_peer(body)) as (url, http):
            result = await OsmpProtocol({"url": url, "account_check": "getInfo"}, http).check(check_req())
        assert result.outcome == outcome, (body, result)
    async with peer(scripted_peer(next(iter(answers)))) as (url, http):
        result = await OsmpProtocol({"url": url}, http).get_info(check_req())
    assert result.fields == {"fio": "A. B."}


# -- check before pay ----------------------------------------------------------------------------


async def test_pay_is_a_check_then_a_pay_of_the_same_txn_id() -> None:
    async with emulator({"provider_txn_prefix": "PRV-"}) as emu:
        t = txn()
        result = await emu.protocol().pay(pay_req(t))
        state = emu.app.state.osmp
        assert state.commands == {t: ["check", "pay"]}
    assert (result.outcome, result.provider_txn_id) == ("ok", "PRV-00000001")
    check, pay = result.exchanges
    assert (check.step, pay.step) == ("check", "pay")
    assert f"command=check&txn_id={t}&account=9001234567&sum=10.45" in check.request
    assert f"command=pay&txn_id={t}&txn_date=20261122100005&account=9001234567&sum=10.45" in pay.request


@pytest.mark.parametrize(
    ("directive", "outcome", "code"),
    [
        ("reject:5:account not found", "fatal", "5"),
        ("reject:79:account closed", "fatal", "79"),
        ("reject:241", "fatal", "241"),
        ("temporary:1:busy", "temporary", "1"),
        ("temporary:90:later", "temporary", "90"),
    ],
)
async def test_a_refused_check_ends_the_pay_before_it_is_sent(
    directive: str, outcome: str, code: str
) -> None:
    async with emulator({"accounts": {"*": {"check": directive}}}) as emu:
        t = txn()
        result = await emu.protocol().pay(pay_req(t))
        assert emu.engine.ledger.pay_calls(t) == 0 and emu.engine.transactions() == []
        assert emu.app.state.osmp.commands == {t: ["check"]}
    assert (result.outcome, result.code) == (outcome, code)  # a refusal is definitive, never unknown
    assert (result.message or "").startswith(f"check before pay: OSMP result {code}: ")
    assert [e.step for e in result.exchanges] == ["check"]


async def test_check_before_pay_off_sends_the_pay_alone() -> None:
    async with emulator(require_check=False) as emu:
        t = txn()
        result = await emu.protocol(check_before_pay=False).pay(pay_req(t))
        assert emu.app.state.osmp.commands == {t: ["pay"]}
    assert result.outcome == "ok"
    assert [e.step for e in result.exchanges] == ["pay"]


async def test_without_the_check_a_provider_that_requires_it_refuses_the_pay() -> None:
    async with emulator() as emu:
        result = await emu.protocol(check_before_pay=False).pay(pay_req(txn()))
        assert emu.engine.transactions() == []
    assert (result.outcome, result.code) == ("fatal", "300")
    assert "not registered by a check" in (result.message or "")


# -- pay -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_pay_ok_sends_the_osmp_parameters(method: str) -> None:
    async with emulator({"provider_txn_prefix": "PRV-"}) as emu:
        t = txn()
        result = await emu.protocol(method=method).pay(pay_req(t, amount=1045))
        assert result.outcome == "ok"
        assert result.provider_txn_id == "PRV-00000001"
        assert result.info["sum"] == "10.45" and result.info["osmp_txn_id"] == t
        [taken] = emu.engine.transactions()
    assert (taken.txn_id, taken.amount, taken.currency, taken.account) == (t, 1045, "RUB", "9001234567")
    assert taken.txn_date == "20261122100005"
    assert taken.status == "succeeded"


@pytest.mark.parametrize("code", [*sorted(c for c in RESULT_CODES if c not in (0, 1, 90)), 6])
async def test_every_fatal_pay_code_is_fatal(code: int) -> None:
    async with emulator({"accounts": {"*": {"pay": f"fatal:{code}:no way"}}}) as emu:
        result = await emu.protocol().pay(pay_req(txn()))
    assert result.outcome == "fatal"
    assert result.code == str(code)
    assert result.info["fatal"] is True
    assert f"OSMP result {code}: {result_code(code).meaning} (fatal)" in (result.message or "")


async def test_pay_result_1_is_temporary_and_90_is_pending() -> None:
    accounts = {"1111": {"pay": "temporary:1:busy"}, "2222": {"pay": "pending"}}
    async with emulator({"accounts": accounts, "pending_ms": 60_000}) as emu:
        temporary = await emu.protocol().pay(pay_req(txn(), account="1111"))
        pending = await emu.protocol().pay(pay_req(txn(), account="2222"))
    assert (temporary.outcome, temporary.code, temporary.info["fatal"]) == ("temporary", "1", False)
    assert (pending.outcome, pending.code, pending.info["fatal"]) == ("pending", "90", False)
    assert "temporary" in (pending.message or "")


async def test_temporary_then_ok_retried_with_the_same_txn_id() -> None:
    async with emulator({"accounts": {"*": {"pay": "temporary_then_ok:2"}}}) as emu:
        proto, t = emu.protocol(), txn()
        outcomes = [(await proto.pay(pay_req(t))).outcome for _ in range(3)]
        assert outcomes == ["temporary", "temporary", "ok"]
        assert emu.engine.ledger.pay_calls(t) == 3
        assert len(emu.engine.transactions()) == 1


async def test_repeated_pay_is_idempotent() -> None:
    async with emulator() as emu:
        proto, t = emu.protocol(), txn()
        first = await proto.pay(pay_req(t))
        second = await proto.pay(pay_req(t))
        assert first.outcome == second.outcome == "ok"
        assert first.provider_txn_id == second.provider_txn_id
        assert len(emu.engine.transactions()) == 1
        assert emu.engine.ledger.pay_calls(t) == 2


async def test_repeated_pay_with_another_sum_is_refused() -> None:
    async with emulator() as emu:
        proto, t = emu.protocol(), txn()
        assert (await proto.pay(pay_req(t, amount=1000))).outcome == "ok"
        other = await proto.pay(pay_req(t, amount=2000))
        assert (other.outcome, other.code) == ("fatal", "300")
        [taken] = emu.engine.transactions()
        assert taken.amount == 1000


async def test_downtime_answers_temporary() -> None:
    async with emulator({"down": True}) as emu:
        check = await emu.protocol().check(check_req())
        pay = await emu.protocol().pay(pay_req(txn()))
        assert (check.outcome, check.code) == ("temporary", "1")
        assert (pay.outcome, pay.code) == ("temporary", "1")
        assert emu.engine.transactions() == []


# -- status: the same pay again ------------------------------------------------------------------


async def test_lost_answer_is_unknown_then_status_repeats_pay() -> None:
    config = {"accounts": {"*": {"pay": "lost_then_ok"}}, "lost_hold_ms": 10_000}
    async with emulator(config) as emu:
        proto, t = emu.protocol(timeout="0.4"), txn()
        lost = await proto.pay(pay_req(t))
        assert (lost.outcome, lost.code) == ("unknown", "timeout")
        settled = await proto.status(StatusRequest(t, "mts"))
        assert settled.outcome == "ok"
        [taken] = emu.engine.transactions()
        assert settled.provider_txn_id == taken.provider_txn_id
        assert emu.engine.ledger.pay_calls(t) == 2  # the status was a second pay, not a second payment
        check, repeat = settled.exchanges  # the same check first (check_before_pay), then the same pay
        assert check.step == "check" and f"command=check&txn_id={t}&" in check.request
        assert repeat.step == "status" and f"command=pay&txn_id={t}&" in repeat.request


async def test_status_survives_a_rebuilt_protocol_instance() -> None:
    config = {"accounts": {"*": {"pay": "broken_then_ok"}}}
    async with emulator(config) as emu:
        t = txn()
        broken = await emu.protocol().pay(pay_req(t))
        assert (broken.outcome, broken.code) == ("unknown", "bad_response")
        assert "malformed XML" in (broken.message or "")
        settled = await emu.protocol(timeout="3").status(StatusRequest(t, "mts"))  # a new instance
        assert settled.outcome == "ok"


async def test_status_of_a_pay_this_process_never_sent() -> None:
    async with emulator() as emu:
        result = await emu.protocol().status(StatusRequest(txn(), "mts"))
        assert (result.outcome, result.code) == ("temporary", "cannot_settle")
        assert "no status command" in (result.message or "")
        assert result.exchanges == []


async def test_status_carrying_the_pay_request_settles_from_another_process() -> None:
    async with emulator({"accounts": {"*": {"pay": "lost_then_ok"}}, "lost_hold_ms": 10_000}) as emu:
        t = txn()
        assert (await emu.protocol(timeout="0.3").pay(pay_req(t))).outcome == "unknown"
        remembered_pays.clear()  # as if this process had been restarted
        assert (await emu.protocol().status(StatusRequest(t, "mts"))).code == "cannot_settle"
        settled = await emu.protocol().status(StatusRequest(t, "mts", pay=pay_req(t)))
        assert settled.outcome == "ok"
        assert emu.engine.ledger.pay_calls(t) == 2
        assert len(emu.engine.transactions()) == 1


async def test_status_registers_and_pays_a_payment_the_provider_never_got() -> None:
    """A worker stopped after the claim, before anything was sent: the status (the pay the hub
    passes with it) is checked and paid, with the payment's txn_id."""
    async with emulator() as emu:
        t = txn()
        settled = await emu.protocol().status(StatusRequest(t, "mts", pay=pay_req(t)))
        assert emu.app.state.osmp.commands == {t: ["check", "pay"]}
        [taken] = emu.engine.transactions()
    assert (settled.outcome, settled.provider_txn_id) == ("ok", taken.provider_txn_id)


async def test_status_is_decided_by_the_pay_not_by_the_check() -> None:
    async with emulator() as emu:
        t = txn()
        assert (await emu.protocol().pay(pay_req(t))).outcome == "ok"
        # the account has been closed since: a check now refuses it, but the payment was made
        emu.engine.configure(
            EmulatorConfig.model_validate({"accounts": {"*": {"check": "reject:79:closed"}}})
        )
        settled = await emu.protocol().status(StatusRequest(t, "mts", pay=pay_req(t)))
        assert emu.app.state.osmp.commands == {t: ["check", "pay", "check", "pay"]}
    assert settled.outcome == "ok"
    check, repeat = settled.exchanges
    assert "<result>79</result>" in (check.response or "") and "<result>0</result>" in (repeat.response or "")


async def test_pending_then_settled_by_repeating_pay() -> None:
    async with emulator({"accounts": {"*": {"pay": "pending"}}, "pending_ms": 300}) as emu:
        proto, t = emu.protocol(), txn()
        assert (await proto.pay(pay_req(t))).outcome == "pending"
        assert (await proto.status(StatusRequest(t, "mts"))).outcome == "pending"
        await asyncio.sleep(0.35)
        done = await proto.status(StatusRequest(t, "mts"))
        assert (done.outcome, done.code) == ("ok", "0")
        assert len(emu.engine.transactions()) == 1


async def test_pending_then_fatal_by_repeating_pay() -> None:
    config = {"accounts": {"*": {"pay": "pending_then_fatal:79:account closed"}}, "pending_ms": 100}
    async with emulator(config) as emu:
        proto, t = emu.protocol(), txn()
        assert (await proto.pay(pay_req(t))).outcome == "pending"
        await asyncio.sleep(0.15)
        failed = await proto.status(StatusRequest(t, "mts"))
        assert (failed.outcome, failed.code) == ("fatal", "79")
        assert "account not active" in (failed.message or "")


async def test_status_never_fatal_without_a_result_code() -> None:
    async with emulator({"latency_ms": 1000}, require_check=False) as emu:
        proto, t = emu.protocol(timeout="0.2", check_before_pay=False), txn()
        assert (await proto.pay(pay_req(t))).outcome == "unknown"
        later = await proto.status(StatusRequest(t, "mts"))
        assert (later.outcome, later.code) == ("temporary", "timeout")
        # with the check first, a check that got no answer makes the status temporary at once
        checked_first = await emu.protocol(timeout="0.2").status(StatusRequest(t, "mts", pay=pay_req(t)))
        assert (checked_first.outcome, checked_first.code) == ("temporary", "timeout")
        assert [e.step for e in checked_first.exchanges] == ["check"]


# -- network failures and answers that are not OSMP ----------------------------------------------


async def test_slow_answer_is_unknown_for_pay_and_temporary_for_check() -> None:
    async with emulator({"latency_ms": 1500}, require_check=False) as emu:
        pay = await emu.protocol(timeout="0.3", check_before_pay=False).pay(pay_req(txn()))
        check = await emu.protocol(timeout="0.3").check(check_req())
        # the check before the pay timed out: the pay was never sent, so it is temporary, not unknown
        checked_first = await emu.protocol(timeout="0.3").pay(pay_req(txn()))
    assert (pay.outcome, pay.code) == ("unknown", "timeout")
    assert (check.outcome, check.code) == ("temporary", "timeout")
    assert pay.exchanges[0].response is None
    assert (checked_first.outcome, checked_first.code) == ("temporary", "timeout")
    assert [e.step for e in checked_first.exchanges] == ["check"]


@asynccontextmanager
async def dropping_server() -> AsyncIterator[str]:
    """A peer that reads the request and closes the connection without answering."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/osmp"
    finally:
        server.close()
        await server.wait_closed()


async def test_dropped_connection_is_unknown_for_pay() -> None:
    async with dropping_server() as url, provider_client() as http:
        proto = OsmpProtocol({"url": url, "timeout": "2", "check_before_pay": False}, http)
        pay = await proto.pay(pay_req(txn()))
        check = await proto.check(check_req())
        checked_first = await OsmpProtocol({"url": url, "timeout": "2"}, http).pay(pay_req(txn()))
    assert (pay.outcome, pay.code) == ("unknown", "network_error")
    assert (check.outcome, check.code) == ("temporary", "network_error")
    assert (checked_first.outcome, checked_first.code) == ("temporary", "network_error")


async def test_nothing_listening_is_unreachable() -> None:
    async with provider_client() as http:
        proto = OsmpProtocol({"url": f"http://127.0.0.1:{free_port()}/osmp"}, http)
        result = await proto.pay(pay_req(txn()))
    assert (result.outcome, result.code) == ("unreachable", "unreachable")


def scripted_peer(body: bytes, media_type: str = "text/xml", status_code: int = 200) -> FastAPI:
    app = FastAPI()

    @app.api_route("/osmp", methods=["GET", "POST"])
    async def answer() -> Response:
        # the content type exactly as given (Starlette would add "; charset=utf-8" to a text/* media type)
        return Response(body, status_code=status_code, headers={"content-type": media_type})

    return app


GOOD = b'<?xml version="1.0" encoding="UTF-8"?><response><result>0</result><prv_txn>X1</prv_txn></response>'


@pytest.mark.parametrize(
    ("body", "media_type", "status_code", "problem"),
    [
        (b"<response><result>0</result>", "text/xml", 200, "malformed XML"),
        (GOOD, "text/html", 200, "content type 'text/html'"),
        (b'{"result": 0}', "application/json", 200, "content type 'application/json'"),
        (b"<html><body>Bad gateway</body></html>", "text/html", 502, "HTTP 502"),
        (b"<answer><result>0</result></answer>", "text/xml", 200, "not <response>"),
        (b"<response><comment>ok</comment></response>", "text/xml", 200, "has no <result>"),
        (b"<response><result>OK</result></response>", "text/xml", 200, "not a whole number"),
        (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "0">]><response><result>&e;</result></response>',
            "text/xml",
            200,
            "malformed XML",
        ),
        (b"<response><osmp_txn_id>1</osmp_txn_id><result>0</result></response>", "text/xml", 200, "about"),
    ],
)
async def test_answers_that_are_not_osmp(
    body: bytes, media_type: str, status_code: int, problem: str
) -> None:
    async with peer(scripted_peer(body, media_type, status_code)) as (url, http):
        proto = OsmpProtocol({"url": url, "timeout": "2", "check_before_pay": False}, http)
        pay = await proto.pay(pay_req(txn()))
        check = await proto.check(check_req())
        checked_first = await OsmpProtocol({"url": url, "timeout": "2"}, http).pay(pay_req(txn()))
    assert pay.outcome == "unknown", pay
    assert check.outcome == "temporary"
    assert checked_first.outcome == "temporary"  # the check got no OSMP answer: the pay was not sent
    assert [e.step for e in checked_first.exchanges] == ["check"]
    assert problem in (pay.message or ""), pay.message
    assert pay.exchanges[0].response is not None  # what came back is kept for the details


async def test_good_xml_with_a_plain_content_type_is_accepted() -> None:
    async with peer(scripted_peer(GOOD, "text/plain; charset=windows-1251")) as (url, http):
        result = await OsmpProtocol({"url": url}, http).pay(pay_req(txn()))
    assert (result.outcome, result.provider_txn_id) == ("ok", "X1")


CYRILLIC = "Платёж принят"


@pytest.mark.parametrize(
    ("body", "media_type"),
    [
        (
            f'<?xml version="1.0" encoding="windows-1251"?><response><result>0</result>'
            f"<comment>{CYRILLIC}</comment></response>".encode("cp1251"),
            "text/xml",
        ),
        (
            f"<response><result>0</result><comment>{CYRILLIC}</comment></response>".encode("cp1251"),
            "text/xml; charset=windows-1251",
        ),
        (f"<response><result>0</result><comment>{CYRILLIC}</comment></response>".encode(), "text/xml"),
    ],
)
async def test_answer_encodings(body: bytes, media_type: str) -> None:
    async with peer(scripted_peer(body, media_type)) as (url, http):
        result = await OsmpProtocol({"url": url}, http).pay(pay_req(txn()))
    assert (result.outcome, result.info["comment"]) == ("ok", CYRILLIC)
    assert CYRILLIC in (result.exchanges[0].response or "")


@pytest.mark.parametrize(("status_code", "outcome"), [(401, "fatal"), (404, "fatal"), (429, "temporary")])
async def test_non_osmp_client_errors(status_code: int, outcome: str) -> None:
    async with peer(scripted_peer(b"no", "text/plain", status_code)) as (url, http):
        result = await OsmpProtocol({"url": url}, http).pay(pay_req(txn()))
    assert (result.outcome, result.code) == (outcome, f"http_{status_code}")


async def test_ok_with_another_sum_is_unknown() -> None:
    body = b"<response><sum>99.00</sum><result>0</result><prv_txn>X2</prv_txn></response>"
    async with peer(scripted_peer(body)) as (url, http):
        result = await OsmpProtocol({"url": url}, http).pay(pay_req(txn(), amount=1045))
    assert (result.outcome, result.code) == ("unknown", "sum_mismatch")
    assert "99.00" in (result.message or "") and "10.45" in (result.message or "")


def test_parse_response_reads_optional_fields() -> None:
    body = osmp_xml(result=0, txn_id="5", prv_txn="P", sum_="1.00", comment="fine", fields={"fio": "A B"})
    answer = parse_response(body.decode())
    assert (answer.result, answer.osmp_txn_id, answer.prv_txn, answer.sum) == (0, "5", "P", "1.00")
    assert answer.fields == {"fio": "A B"}
    extra = parse_response("<response><result>0</result><balance>12.00</balance></response>")
    assert extra.fields == {"balance": "12.00"}


# -- the wire: GET vs POST, parameters, basic auth -----------------------------------------------


def recording_peer(seen: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.api_route("/osmp", methods=["GET", "POST"])
    async def record(request: Request) -> Response:
        body = (await request.body()).decode()
        seen.append(
            {
                "method": request.method,
                "query": dict(request.query_params),
                "form": dict(parse_qsl(body)),
                "content_type": request.headers.get("content-type"),
                "authorization": request.headers.get("authorization"),
            }
        )
        params = dict(request.query_params) | dict(parse_qsl(body))
        return Response(osmp_xml(result=0, txn_id=params.get("txn_id"), prv_txn="R1"), media_type="text/xml")

    return app


async def test_get_and_post_on_the_wire() -> None:
    seen: list[dict[str, Any]] = []
    async with peer(recording_peer(seen)) as (url, http):
        config = {
            "url": url,
            "params": {"prv_id": "17"},
            "service_param": "service",
            "txn_date_timezone": "Europe/Moscow",
        }
        t = txn()
        fields = {"fio": "Ivanov I."}
        assert (await OsmpProtocol(config, http).pay(pay_req(t, fields=fields))).outcome == "ok"
        assert (
            await OsmpProtocol({**config, "method": "POST"}, http).pay(pay_req(t, fields=fields))
        ).outcome == "ok"
    get_check, get, post_check, post = seen
    expected = {
        "command": "pay",
        "txn_id": t,
        "txn_date": "20261122130005",  # 10:00:05 UTC in Moscow
        "account": "9001234567",
        "sum": "10.45",
        "ccy": "RUB",
        "service": "mts",
        "fio": "Ivanov I.",
        "prv_id": "17",
    }
    # the check that registers the payment: the same parameters and txn_id, without txn_date
    check = {k: v for k, v in expected.items() if k != "txn_date"} | {"command": "check"}
    assert get_check["method"] == "GET" and get_check["query"] == check
    assert get["method"] == "GET" and get["query"] == expected and get["form"] == {}
    assert post_check["method"] == "POST" and post_check["form"] == check
    assert post["method"] == "POST" and post["query"] == {} and post["form"] == expected
    assert post["content_type"] == "application/x-www-form-urlencoded"


async def test_extra_field_clashing_with_a_parameter_is_refused() -> None:
    async with provider_client() as http:
        proto = OsmpProtocol({"url": "http://127.0.0.1:9/osmp"}, http)
        result = await proto.pay(pay_req(txn(), fields={"sum": "1.00"}))
    assert (result.outcome, result.code) == ("fatal", "invalid_request")


async def test_basic_auth() -> None:
    async with emulator({"token": "hub:s3cret-pass"}) as emu:
        anonymous = await emu.protocol().pay(pay_req(txn()))
        wrong = await emu.protocol(username="hub", password="guess-again").check(check_req())
        proto = emu.protocol(username="hub", password="s3cret-pass", method="POST")
        right = await proto.pay(pay_req(txn()))
        assert (anonymous.outcome, anonymous.code) == ("fatal", "http_401")
        assert (wrong.outcome, wrong.code) == ("fatal", "http_401")
        assert right.outcome == "ok"
        assert len(emu.engine.transactions()) == 1
    assert [e.step for e in right.exchanges] == ["check", "pay"]
    for exchange in right.exchanges:
        assert "Authorization: Basic ***" in exchange.request
    assert "s3cret-pass" not in repr(right)


async def test_secret_looking_parameters_are_masked_in_the_record() -> None:
    seen: list[dict[str, Any]] = []
    async with peer(recording_peer(seen)) as (url, http):
        proto = OsmpProtocol({"url": url, "params": {"prv_password": "hunter22"}}, http)
        result = await proto.check(check_req())
    assert seen[0]["query"]["prv_password"] == "hunter22"  # sent
    assert "hunter22" not in result.exchanges[0].request  # never recorded
    assert "prv_password=%2A%2A%2A" in result.exchanges[0].request


# -- client certificate (TLS on loopback) --------------------------------------------------------


def _make_pki(directory: Any) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("paymux test CA"))
        .issuer_name(name("paymux test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write("ca", ca, ca_key)

    def leaf(stem: str, usage: x509.ObjectIdentifier, san: x509.GeneralName) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(stem))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        write(stem, cert, key)

    leaf("server", ExtendedKeyUsageOID.SERVER_AUTH, x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH, x509.DNSName("hub.example"))
    return {stem: str(directory / stem) for stem in ("ca", "server", "client")}


@asynccontextmanager
async def tls_emulator(pki: dict[str, str], engine: BehaviourEngine) -> AsyncIterator[str]:
    """The OSMP emulator behind HTTPS that requires a client certificate signed by the test CA."""
    import ssl

    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        create_app(engine=engine),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        ssl_certfile=pki["server"] + ".pem",
        ssl_keyfile=pki["server"] + ".key",
        ssl_ca_certs=pki["ca"] + ".pem",
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the TLS emulator did not start"
            await asyncio.sleep(0.01)
        yield f"https://127.0.0.1:{port}/"
    finally:
        engine.release_holds()
        server.should_exit = True
        await task


async def test_client_certificate(tmp_path: Any) -> None:
    pki = _make_pki(tmp_path)
    engine = BehaviourEngine(EmulatorConfig())
    async with tls_emulator(pki, engine) as url, httpx.AsyncClient() as shared:
        with_cert = OsmpProtocol(
            {
                "url": url,
                "cert_file": pki["client"] + ".pem",
                "key_file": pki["client"] + ".key",
                "ca_file": pki["ca"] + ".pem",
            },
            shared,
        )
        without_cert = OsmpProtocol({"url": url, "ca_file": pki["ca"] + ".pem", "timeout": "2"}, shared)
        unverified = OsmpProtocol({"url": url, "timeout": "2"}, shared)  # the shared client, system CAs
        try:
            t = txn()
            assert (await with_cert.pay(pay_req(t))).outcome == "ok"
            refused = await without_cert.check(check_req())
            untrusted = await unverified.check(check_req())
        finally:
            await with_cert.aclose()
            await without_cert.aclose()
    # without a client certificate the server ends the connection; an unknown CA never connects
    # (TLS 1.3: the client learns only when it reads the answer that the server dropped it)
    assert (refused.outcome, refused.code) == ("temporary", "network_error"), refused
    assert (untrusted.outcome, untrusted.code) == ("unreachable", "unreachable"), untrusted
    assert [txn_.txn_id for txn_ in engine.transactions()] == [t]


async def test_unreadable_certificate_is_a_config_problem(tmp_path: Any) -> None:
    cert = tmp_path / "broken.pem"
    cert.write_text("not a certificate")
    async with provider_client() as http:
        proto = OsmpProtocol({"url": "https://127.0.0.1:9/", "cert_file": str(cert)}, http)
        result = await proto.pay(pay_req(txn()))
    assert (result.outcome, result.code) == ("fatal", "bad_config")
    assert "TLS setup failed" in (result.message or "")
    assert result.exchanges == []
