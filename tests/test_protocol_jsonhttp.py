"""The generic JSON/HTTP protocol client against its emulator, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from paymux.providers.base import (
    CheckRequest,
    Outcome,
    PayRequest,
    ProtocolResult,
    StatusRequest,
    display_url,
    protocol_class,
)
from paymux.providers.emulators.behaviour import BehaviourEngine, EmulatorConfig
from paymux.providers.emulators.jsonhttp import create_app
from paymux.providers.emulators.server import run_emulator
from paymux.providers.jsonhttp import JsonHttpProtocol
from paymux.providers.transport import provider_client

TXN_DATE = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)


@dataclass
class Harness:
    url: str
    http: httpx.AsyncClient
    engine: BehaviourEngine

    def protocol(self, **config: Any) -> JsonHttpProtocol:
        return JsonHttpProtocol({"url": self.url, "timeout": "2", **config}, self.http)

    async def transactions(self) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.url}/_emulator/transactions")
        response.raise_for_status()
        txns: list[dict[str, Any]] = response.json()["transactions"]
        return txns

    async def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.request(method, f"{self.url}/_emulator/{path}", **kwargs)
        response.raise_for_status()
        return response


@asynccontextmanager
async def emulator(config: dict[str, Any] | None = None) -> AsyncIterator[Harness]:
    app = create_app(EmulatorConfig.model_validate(config or {}))
    async with run_emulator(app) as url, provider_client() as http:
        yield Harness(url, http, app.state.engine)


def check_req(account: str = "1001", amount: int = 15000, txn_id: str = "t-check", **kw: Any) -> CheckRequest:
    return CheckRequest(
        txn_id=txn_id, service_code="mobile", account=account, amount=amount, currency="RUB", **kw
    )


def pay_req(txn_id: str, account: str = "1001", amount: int = 15000, **kw: Any) -> PayRequest:
    return PayRequest(
        txn_id=txn_id,
        txn_date=TXN_DATE,
        service_code="mobile",
        account=account,
        amount=amount,
        currency="RUB",
        **kw,
    )


def status_req(txn_id: str) -> StatusRequest:
    return StatusRequest(txn_id=txn_id, service_code="mobile")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- plug-in registration and config -----------------------------------------------------------------


def test_registered_as_entry_point() -> None:
    assert protocol_class("jsonhttp") is JsonHttpProtocol


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({}, "url is required"),
        ({"url": "ftp://x.example"}, "http"),
        ({"url": "provider.example/api"}, "http"),
        ({"url": 5}, "string"),
        ({"url": "http://x.example", "timeout": "soon"}, "timeout"),
        ({"url": "http://x.example", "timeout": "0"}, "timeout"),
        ({"url": "http://x.example", "connect_timeout": 1.5}, "connect_timeout"),
        ({"url": "http://x.example", "token": 42}, "token"),
    ],
)
def test_validate_config_problems(config: dict[str, Any], problem: str) -> None:
    problems = JsonHttpProtocol.validate_config(config)
    assert problems and any(problem in p for p in problems), problems


def test_validate_config_ok() -> None:
    config = {"url": "https://provider.example/api/", "token": "t", "timeout": 15, "connect_timeout": "0.5"}
    assert JsonHttpProtocol.validate_config(config) == []


async def test_bad_config_is_classified_not_raised() -> None:
    async with provider_client() as http:
        result = await JsonHttpProtocol({"url": ""}, http).pay(pay_req("t-1"))
    assert result.outcome == "fatal"
    assert result.code == "bad_config"
    assert result.exchanges == []


# -- check -------------------------------------------------------------------------------------------


async def test_check_ok_returns_info_and_records_the_exchange() -> None:
    config = {"accounts": {"1001": {"check": "ok", "balance": "1500.00", "info": {"name": "I. Ivanov"}}}}
    async with emulator(config) as emu:
        result = await emu.protocol().check(check_req("1001", fields={"region": "77"}))
    assert result.outcome == "ok"
    assert result.info == {"name": "I. Ivanov", "balance": "1500.00"}
    assert result.fields == {"name": "I. Ivanov", "balance": "1500.00"}
    [exchange] = result.exchanges
    assert exchange.step == "check"
    assert exchange.url == f"{emu.url}/check"
    assert exchange.status_code == 200
    assert isinstance(exchange.elapsed_ms, int) and exchange.elapsed_ms >= 0
    assert json.loads(exchange.request) == {
        "txn_id": "t-check",
        "service": "mobile",
        "account": "1001",
        "amount": "150.00",
        "currency": "RUB",
        "fields": {"region": "77"},
    }
    assert exchange.response is not None and json.loads(exchange.response)["result"] == "ok"


async def test_check_rejected_keeps_code_and_message() -> None:
    async with emulator({"accounts": {"404": {"check": "reject:5:account not found"}}}) as emu:
        result = await emu.protocol().check(check_req("404"))
    assert (result.outcome, result.code, result.message) == ("fatal", "5", "account not found")


async def test_amount_uses_the_currency_exponent() -> None:
    async with emulator() as emu:
        proto = emu.protocol()
        jpy = await proto.check(CheckRequest("t-jpy", "mobile", "1001", 150, "JPY"))
        bhd = await proto.check(CheckRequest("t-bhd", "mobile", "1001", 1500, "BHD"))
        bad = await proto.check(CheckRequest("t-xxx", "mobile", "1001", 1500, "XXX"))
    assert jpy.outcome == bhd.outcome == "ok"
    assert json.loads(jpy.exchanges[0].request)["amount"] == "150"
    assert json.loads(bhd.exchanges[0].request)["amount"] == "1.500"
    assert (bad.outcome, bad.code, bad.exchanges) == ("fatal", "invalid_request", [])


# -- pay, idempotency and status -----------------------------------------------------------------------


async def test_pay_ok_repeat_is_idempotent() -> None:
    async with emulator() as emu:
        proto = emu.protocol()
        first = await proto.pay(pay_req("t-1"))
        again = await proto.pay(pay_req("t-1"))
        status = await proto.status(status_req("t-1"))
        txns = await emu.transactions()
    assert first.outcome == again.outcome == status.outcome == "ok"
    assert first.provider_txn_id and first.provider_txn_id == again.provider_txn_id == status.provider_txn_id
    sent = json.loads(first.exchanges[0].request)
    assert sent["txn_date"] == "2026-11-22T10:00:00Z"
    assert sent["amount"] == "150.00"
    assert len(txns) == 1
    assert txns[0]["txn_id"] == "t-1"
    assert txns[0]["pay_calls"] == 2
    assert txns[0]["amount"] == "150.00"
    assert txns[0]["status"] == "succeeded"


async def test_repeated_txn_id_with_other_amount_is_refused() -> None:
    async with emulator() as emu:
        proto = emu.protocol()
        first = await proto.pay(pay_req("t-1", amount=15000))
        other = await proto.pay(pay_req("t-1", amount=20000))
        other_account = await proto.pay(pay_req("t-1", account="2002"))
        txns = await emu.transactions()
    assert first.outcome == "ok"
    assert (other.outcome, other.code) == ("fatal", "txn_conflict")
    assert (other_account.outcome, other_account.code) == ("fatal", "txn_conflict")
    assert len(txns) == 1
    assert (txns[0]["amount"], txns[0]["account"], txns[0]["pay_calls"]) == ("150.00", "1001", 3)


async def test_scripted_errors_are_classified() -> None:
    config = {
        "accounts": {
            "temp": {"check": "temporary:busy:try later", "pay": "temporary:91:provider busy"},
            "dead": {"check": "fatal:13:service blocked", "pay": "fatal:7:limit exceeded"},
        }
    }
    async with emulator(config) as emu:
        proto = emu.protocol()
        check_temp = await proto.check(check_req("temp"))
        check_fatal = await proto.check(check_req("dead"))
        pay_temp = await proto.pay(pay_req("t-temp", "temp"))
        pay_fatal = await proto.pay(pay_req("t-dead", "dead"))
        pay_fatal_again = await proto.pay(pay_req("t-dead", "dead"))
        status_temp = await proto.status(status_req("t-temp"))
        status_fatal = await proto.status(status_req("t-dead"))
        txns = await emu.transactions()
    assert (check_temp.outcome, check_temp.code, check_temp.message) == ("temporary", "busy", "try later")
    assert (check_fatal.outcome, check_fatal.code) == ("fatal", "13")
    assert (pay_temp.outcome, pay_temp.code, pay_temp.message) == ("temporary", "91", "provider busy")
    assert (pay_fatal.outcome, pay_fatal.code, pay_fatal.message) == ("fatal", "7", "limit exceeded")
    assert (pay_fatal_again.outcome, pay_fatal_again.code) == ("fatal", "7")
    assert status_temp.outcome == "not_found"  # a temporary refusal leaves nothing behind
    assert (status_fatal.outcome, status_fatal.code) == ("fatal", "7")
    assert [(t["txn_id"], t["status"], t["pay_calls"]) for t in txns] == [("t-dead", "failed", 2)]


async def test_temporary_then_ok() -> None:
    async with emulator({"accounts": {"1001": {"pay": "temporary_then_ok:2"}}}) as emu:
        proto = emu.protocol()
        outcomes = [(await proto.pay(pay_req("t-1"))).outcome for _ in range(4)]
        txns = await emu.transactions()
    assert outcomes == ["temporary", "temporary", "ok", "ok"]
    assert len(txns) == 1 and txns[0]["pay_calls"] == 4


async def test_pending_then_status_ok() -> None:
    config = {
        "pending_ms": 150,
        "accounts": {"1001": {"pay": "pending"}, "2002": {"pay": "pending_then_fatal:8:expired"}},
    }
    async with emulator(config) as emu:
        proto = emu.protocol()
        paid = await proto.pay(pay_req("t-1"))
        doomed = await proto.pay(pay_req("t-2", "2002"))
        early = await proto.status(status_req("t-1"))
        await asyncio.sleep(0.2)
        late = await proto.status(status_req("t-1"))
        late_doomed = await proto.status(status_req("t-2"))
        repeat = await proto.pay(pay_req("t-1"))
    assert paid.outcome == doomed.outcome == early.outcome == "pending"
    assert paid.provider_txn_id and early.provider_txn_id == paid.provider_txn_id
    assert (late.outcome, late.provider_txn_id) == ("ok", paid.provider_txn_id)
    assert (late_doomed.outcome, late_doomed.code, late_doomed.message) == ("fatal", "8", "expired")
    assert (repeat.outcome, repeat.provider_txn_id) == ("ok", paid.provider_txn_id)


async def test_status_of_unknown_txn_is_not_found() -> None:
    async with emulator() as emu:
        result = await emu.protocol().status(status_req("never-sent"))
    assert result.outcome == "not_found"
    assert result.provider_txn_id is None


# -- lost and broken answers ----------------------------------------------------------------------------


async def test_lost_response_is_unknown_then_status_ok() -> None:
    async with emulator({"accounts": {"1001": {"pay": "lost_then_ok"}}}) as emu:
        proto = emu.protocol(timeout="0.3")
        started = time.monotonic()
        lost = await proto.pay(pay_req("t-1"))
        assert time.monotonic() - started < 2
        status = await proto.status(status_req("t-1"))
        again = await proto.pay(pay_req("t-1"))
        txns = await emu.transactions()
        for _ in range(100):  # the held answer is dropped once the client has gone away
            if emu.engine.holding == 0:
                break
            await asyncio.sleep(0.01)
        assert emu.engine.holding == 0
    assert (lost.outcome, lost.code) == ("unknown", "timeout")
    assert lost.exchanges[0].response is None and lost.exchanges[0].status_code is None
    assert status.outcome == "ok" and status.provider_txn_id
    assert (again.outcome, again.provider_txn_id) == ("ok", status.provider_txn_id)
    assert len(txns) == 1 and txns[0]["pay_calls"] == 2


async def test_check_timeout_is_temporary() -> None:
    async with emulator({"accounts": {"slow": {"latency_ms": 1000}}}) as emu:
        result = await emu.protocol(timeout="0.1").check(check_req("slow"))
    assert (result.outcome, result.code) == ("temporary", "timeout")


async def test_random_lost_responses_are_done() -> None:
    async with emulator({"lost_response_rate": "1", "seed": 1}) as emu:
        proto = emu.protocol(timeout="0.2")
        lost = await proto.pay(pay_req("t-1"))
        status = await proto.status(status_req("t-1"))
    assert lost.outcome == "unknown"
    assert status.outcome == "ok"


async def test_broken_answer_to_pay_is_unknown() -> None:
    async with emulator({"accounts": {"1001": {"pay": "broken_then_ok"}}}) as emu:
        proto = emu.protocol()
        broken = await proto.pay(pay_req("t-1"))
        status = await proto.status(status_req("t-1"))
    assert (broken.outcome, broken.code) == ("unknown", "http_500")
    assert broken.exchanges[0].response == "Internal Server Error"
    assert status.outcome == "ok"


async def test_shutdown_releases_held_answers_promptly() -> None:
    async with emulator({"accounts": {"1001": {"pay": "lost_then_ok"}}}) as emu:
        pay = asyncio.create_task(emu.protocol(timeout="10").pay(pay_req("t-1")))
        for _ in range(200):
            if emu.engine.holding:
                break
            await asyncio.sleep(0.01)
        assert emu.engine.holding == 1
        started = time.monotonic()
    assert time.monotonic() - started < 2
    result = await pay
    assert result.outcome in ("ok", "unknown")
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


# -- downtime and unreachable providers ------------------------------------------------------------------


async def test_down_switch_gives_temporary_everywhere() -> None:
    async with emulator() as emu:
        proto = emu.protocol()
        await emu.control("POST", "down")
        check = await proto.check(check_req())
        pay = await proto.pay(pay_req("t-1"))
        status = await proto.status(status_req("t-1"))
        assert await emu.transactions() == []
        await emu.control("POST", "up")
        pay_up = await proto.pay(pay_req("t-1"))
    assert [r.outcome for r in (check, pay, status)] == ["temporary"] * 3
    assert pay.exchanges[0].status_code == 503
    assert pay.code == "unavailable"
    assert pay_up.outcome == "ok"


async def test_downtime_window() -> None:
    now = dt.datetime.now(dt.UTC)
    window = {
        "start": (now - dt.timedelta(minutes=5)).isoformat(),
        "end": (now + dt.timedelta(minutes=5)).isoformat(),
    }
    past = {"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"}
    async with emulator({"downtime": [past, window]}) as emu:
        result = await emu.protocol().pay(pay_req("t-1"))
    assert result.outcome == "temporary"
    async with emulator({"downtime": [past]}) as emu:
        result = await emu.protocol().pay(pay_req("t-1"))
    assert result.outcome == "ok"


async def test_nothing_listening_is_unreachable() -> None:
    port = free_port()
    async with provider_client() as http:
        proto = JsonHttpProtocol({"url": f"http://127.0.0.1:{port}", "connect_timeout": "1"}, http)
        results = [
            await proto.check(check_req()),
            await proto.pay(pay_req("t-1")),
            await proto.status(status_req("t-1")),
        ]
    assert [r.outcome for r in results] == ["unreachable"] * 3
    assert all(r.code == "unreachable" and len(r.exchanges) == 1 for r in results)
    assert results[1].exchanges[0].response is None


async def test_stopped_emulator_is_unreachable() -> None:
    async with emulator() as emu:
        url = emu.url
    async with provider_client() as http:
        result = await JsonHttpProtocol({"url": url}, http).pay(pay_req("t-1"))
    assert result.outcome == "unreachable"


# -- randomness -------------------------------------------------------------------------------------------


async def test_error_rates_with_a_seed_are_reproducible() -> None:
    config = {"seed": 42, "temporary_error_rate": "0.2", "fatal_error_rate": "0.1"}

    async def run(emu: Harness) -> list[Outcome]:
        proto = emu.protocol()
        checks = [(await proto.check(check_req(txn_id=f"c{i}"))).outcome for i in range(60)]
        pays = [(await proto.pay(pay_req(f"p{i}"))).outcome for i in range(60)]
        return checks + pays

    async with emulator(config) as emu:
        first = await run(emu)
        await emu.control("POST", "reset")
        second = await run(emu)
        txns = await emu.transactions()
    async with emulator(config) as emu:
        third = await run(emu)
    assert first == second == third
    counts = {outcome: first.count(outcome) for outcome in set(first)}
    assert set(counts) == {"ok", "temporary", "fatal"}
    assert 12 <= counts["temporary"] <= 40, counts  # 120 draws at 0.2
    assert 4 <= counts["fatal"] <= 25, counts  # 120 draws at 0.1
    # temporary refusals leave no transaction; fatal ones are recorded as failed
    assert len(txns) == second[60:].count("ok") + second[60:].count("fatal")


# -- security ---------------------------------------------------------------------------------------------


async def test_secrets_are_masked_in_exchanges() -> None:
    secret_token = "tok-Zq8v-very-secret"
    config = {"token": secret_token, "accounts": {"1001": {"info": {"api_key": "k-123456", "plan": "gold"}}}}
    async with emulator(config) as emu:
        proto = emu.protocol(token=secret_token)
        check = await proto.check(check_req(fields={"password": "hunter2", "note": "hello"}))
        pay = await proto.pay(pay_req("t-1", fields={"pin_secret": "p1n-7391"}))
    assert check.outcome == pay.outcome == "ok"
    recorded = repr(check.exchanges) + repr(pay.exchanges)
    for secret in (secret_token, "hunter2", "k-123456", "p1n-7391", "Bearer"):
        assert secret not in recorded
    request = json.loads(check.exchanges[0].request)
    assert request["fields"] == {"password": "***", "note": "hello"}
    response = json.loads(check.exchanges[0].response or "")
    assert response["info"] == {"api_key": "***", "plan": "gold"}


def test_recorded_urls_carry_no_credentials() -> None:
    assert display_url("https://hub:s3cret@prv.example/api?x=1") == "https://prv.example/api?x=1"
    assert display_url("http://127.0.0.1:8080/pay") == "http://127.0.0.1:8080/pay"
    assert display_url("http://prv.example/a@b") == "http://prv.example/a@b"


async def test_bearer_token_is_enforced() -> None:
    async with emulator({"token": "right"}) as emu:
        results: dict[str, list[ProtocolResult]] = {}
        for label, token in (("none", None), ("wrong", "wrong"), ("right", "right")):
            proto = emu.protocol(**({"token": token} if token else {}))
            results[label] = [
                await proto.check(check_req()),
                await proto.pay(pay_req(f"t-{label}")),
                await proto.status(status_req(f"t-{label}")),
            ]
        txns = await emu.transactions()
    for label in ("none", "wrong"):
        check, pay, status = results[label]
        assert (check.outcome, check.code) == ("fatal", "unauthorized")
        assert (pay.outcome, pay.code) == ("fatal", "unauthorized")
        assert pay.exchanges[0].status_code == 401
        assert status.outcome == "temporary"  # a status error never claims the payment failed
    assert [r.outcome for r in results["right"]] == ["ok", "ok", "ok"]
    assert [t["txn_id"] for t in txns] == ["t-right"]


# -- control endpoints ------------------------------------------------------------------------------------


async def test_control_endpoints() -> None:
    async with emulator({"latency_ms": 1, "temporary_error_rate": "0.25"}) as emu:
        got = (await emu.control("GET", "config")).json()
        assert got["temporary_error_rate"] == "0.25"
        assert got["latency_ms"] == 1
        new = {"accounts": {"1001": {"check": "reject:5:account not found"}}}
        put = (await emu.control("PUT", "config", json=new)).json()
        assert put["temporary_error_rate"] == "0" and put["accounts"]["1001"]["check"].startswith("reject")
        assert (await emu.protocol().check(check_req())).outcome == "fatal"
        bad = await emu.http.put(f"{emu.url}/_emulator/config", json={"fatal_error_rate": "2"})
        assert bad.status_code == 422
        await emu.protocol().pay(pay_req("t-1"))
        assert len(await emu.transactions()) == 1
        assert (await emu.control("POST", "reset")).json() == {"reset": True}
        assert await emu.transactions() == []
        down = (await emu.control("POST", "down")).json()
        assert down == {"down": True}
        assert (await emu.control("GET", "config")).json()["down"] is True


async def test_malformed_request_is_a_fatal_400() -> None:
    async with emulator() as emu:
        response = await emu.http.post(f"{emu.url}/pay", json={"txn_id": "t-1", "amount": "1.234"})
        garbage = await emu.http.post(f"{emu.url}/check", content=b"not json")
    assert response.status_code == 400
    assert response.json()["result"] == "error" and response.json()["temporary"] is False
    assert garbage.status_code == 400


# -- answers that are not protocol answers (a tiny hand-written provider) ---------------------------------


def odd_provider() -> FastAPI:
    """Answers according to the account: the misbehaviours a real provider may show."""
    app = FastAPI()
    answers: dict[str, tuple[int, bytes, str]] = {
        "503json": (
            503,
            b'{"result":"error","code":"maint","message":"maintenance","temporary":true}',
            "json",
        ),
        "500text": (500, b"<html>Internal Server Error</html>", "html"),
        "200garbage": (200, b"{not json", "json"),
        "200array": (200, b"[1, 2]", "json"),
        "404text": (404, b"Not Found", "text"),
        "429text": (429, b"Too Many Requests", "text"),
        "okweird": (200, b'{"result":"ok","status":"processing","provider_txn_id":"P1"}', "json"),
        "okfloat": (200, b'{"result":"ok","info":{"fee":0.1}}', "json"),
        "okmixed": (
            200,
            b'{"result":"ok","info":{"name":"A","debt":"12.50","months":3,"fee":0.1,"vip":true,"tags":["x"]}}',
            "json",
        ),
    }

    async def reply(request: Request) -> Response:
        body = await request.json()
        key = body.get("account") or body.get("txn_id")
        status, content, kind = answers[key]
        return Response(content, status_code=status, media_type=f"application/{kind}")

    for path in ("/check", "/pay", "/status"):
        app.add_api_route(path, reply, methods=["POST"])
    return app


NON_PROTOCOL_CASES = {
    # key: expected outcomes of check, pay, status
    "503json": ("temporary", "temporary", "temporary"),
    "500text": ("temporary", "unknown", "temporary"),
    "200garbage": ("temporary", "unknown", "temporary"),
    "200array": ("temporary", "unknown", "temporary"),
    "404text": ("fatal", "fatal", "temporary"),
    "429text": ("temporary", "temporary", "temporary"),
    "okweird": ("ok", "unknown", "temporary"),
}


async def test_non_protocol_answers() -> None:
    async with run_emulator(odd_provider()) as url, provider_client() as http:
        proto = JsonHttpProtocol({"url": url}, http)
        for key, expected in NON_PROTOCOL_CASES.items():
            results = [
                await proto.check(check_req(key)),
                await proto.pay(pay_req("t-1", key)),
                await proto.status(status_req(key)),
            ]
            assert tuple(r.outcome for r in results) == expected, key
            assert all(r.exchanges[0].status_code is not None for r in results), key
        floats = await proto.check(check_req("okfloat"))
        mixed = await proto.check(check_req("okmixed"))
    assert floats.outcome == "ok"
    assert floats.info == {"fee": "0.1"}  # a fraction is kept as its literal text, never a float
    assert floats.fields == {"fee": "0.1"}
    # the account details for a payer to see (an inbound gateway's <fields>): text and whole numbers
    assert mixed.fields == {"name": "A", "debt": "12.50", "months": "3", "fee": "0.1"}


# -- transport failures (no server needed) ------------------------------------------------------------------


def failing_client(exc_factory: Callable[[httpx.Request], Exception]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_factory(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("exc", "check", "pay"),
    [
        (httpx.ConnectError, "unreachable", "unreachable"),
        (httpx.ConnectTimeout, "unreachable", "unreachable"),
        (httpx.PoolTimeout, "unreachable", "unreachable"),
        (httpx.ReadTimeout, "temporary", "unknown"),
        (httpx.WriteTimeout, "temporary", "unknown"),
        (httpx.ReadError, "temporary", "unknown"),
        (httpx.WriteError, "temporary", "unknown"),
        (httpx.RemoteProtocolError, "temporary", "unknown"),
    ],
)
async def test_transport_failures(exc: type[httpx.TransportError], check: str, pay: str) -> None:
    async with failing_client(lambda request: exc("boom", request=request)) as http:
        proto = JsonHttpProtocol({"url": "http://127.0.0.1:9", "token": "boom-token"}, http)
        results = [
            await proto.check(check_req()),
            await proto.pay(pay_req("t-1")),
            await proto.status(status_req("t")),
        ]
    assert [r.outcome for r in results] == [check, pay, check]
    assert all(len(r.exchanges) == 1 and r.exchanges[0].response is None for r in results)
