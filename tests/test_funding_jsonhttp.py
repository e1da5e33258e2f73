"""The JSON/HTTP funding source against the bank emulator, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paymux.funding.base import Debit, FundingAnswer, Refund, source_class
from paymux.funding.emulator import BankApp, BankConfig, create_app
from paymux.funding.jsonhttp import JsonHttpFunding
from paymux.providers.emulators.server import run_emulator
from paymux.providers.transport import provider_client

ACCOUNT = "40817810000000000001"
ACCOUNTS = {
    ACCOUNT: {"currency": "RUB", "balance": "1000.00"},
    "closed": {"currency": "RUB", "balance": "50.00", "closed": True},
    "slow": {"currency": "RUB", "balance": "100.00", "latency_ms": 800},
}


@dataclass
class Bank:
    url: str
    http: httpx.AsyncClient
    app: BankApp

    def source(self, **config: Any) -> JsonHttpFunding:
        return JsonHttpFunding({"url": self.url, "timeout": "2", **config}, self.http)

    async def state(self) -> dict[str, Any]:
        response = await self.http.get(f"{self.url}/_emulator/state")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    async def balance(self, account: str = ACCOUNT) -> str:
        return str((await self.state())["accounts"][account]["balance"])

    async def lose(self, count: int = 1) -> None:
        (await self.http.post(f"{self.url}/_emulator/lose", json={"count": count})).raise_for_status()


@asynccontextmanager
async def bank(**config: Any) -> AsyncIterator[Bank]:
    app = create_app(BankConfig.model_validate({"accounts": ACCOUNTS, **config}))
    async with run_emulator(app) as url, provider_client() as http:
        yield Bank(url, http, app)


def debit(key: str = "d-1", amount: int = 15000, account: str = ACCOUNT, currency: str = "RUB") -> Debit:
    return Debit(key=key, account=account, amount=amount, currency=currency, description="mobile, May")


def refund(key: str = "r-1", debit_key: str = "d-1", amount: int = 15000) -> Refund:
    return Refund(key=key, debit_key=debit_key, amount=amount, currency="RUB", reason="payment failed")


@contextmanager
def refusing_url() -> Iterator[str]:
    """A URL on 127.0.0.1 whose port is held but never listened on: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


# -- plug-in and config ----------------------------------------------------------------------------------


def test_registered_as_entry_point() -> None:
    assert source_class("jsonhttp") is JsonHttpFunding


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({}, "url is required"),
        ({"url": "ftp://bank.example"}, "http"),
        ({"url": "http://bank.example", "timeout": "soon"}, "timeout"),
        ({"url": "http://bank.example", "connect_timeout": 0}, "connect_timeout"),
        ({"url": "http://bank.example", "hmac_secret": 42}, "hmac_secret"),
        ({"url": "http://bank.example", "token": ["x"]}, "token"),
    ],
)
def test_validate_config(config: dict[str, Any], problem: str) -> None:
    problems = JsonHttpFunding.validate_config(config)
    assert any(problem in p for p in problems), problems
    assert JsonHttpFunding.validate_config({"url": "https://bank.example/f", "timeout": "5"}) == []


async def test_bad_config_never_sends() -> None:
    async with httpx.AsyncClient() as http:
        source = JsonHttpFunding({"url": "nowhere"}, http)
        assert (await source.debit(debit())).outcome == "refused"
        assert (await source.status("d-1")).outcome == "unknown"


def test_masked_config_and_repr_hide_secrets() -> None:
    config = {"url": "https://u:pw@bank.example", "token": "tok-1", "hmac_secret": "sec-1", "password": "p"}
    masked = JsonHttpFunding.masked_config(config)
    assert masked["url"] == "https://u:***@bank.example"
    assert [masked[k] for k in ("token", "hmac_secret", "password")] == ["***"] * 3
    assert config["token"] == "tok-1"  # the config itself is untouched
    text = repr(JsonHttpFunding(config, httpx.AsyncClient()))
    assert not any(s in text for s in ("tok-1", "sec-1", "'p'", ":pw@"))


# -- debits -------------------------------------------------------------------------------------------------


async def test_debit_done_and_same_key_debits_once() -> None:
    async with bank() as b:
        source = b.source()
        first = await source.debit(debit())
        again = await source.debit(debit())
        status = await source.status("d-1")
        assert first.outcome == "done" and first.kind == "debit" and first.reference
        assert again == first
        assert status.outcome == "done" and status.kind == "debit" and status.reference == first.reference
        assert await b.balance() == "850.00"
        [op] = (await b.state())["operations"]
        assert op["calls"] == 2 and op["amount"] == "150.00"


@pytest.mark.parametrize(
    ("account", "amount", "currency", "code"),
    [
        (ACCOUNT, 100001, "RUB", "insufficient_funds"),
        ("nobody", 100, "RUB", "unknown_account"),
        ("closed", 100, "RUB", "account_closed"),
        (ACCOUNT, 100, "USD", "currency_mismatch"),
    ],
)
async def test_debit_refused(account: str, amount: int, currency: str, code: str) -> None:
    async with bank() as b:
        source = b.source()
        answer = await source.debit(debit(account=account, amount=amount, currency=currency))
        assert (answer.outcome, answer.code, answer.kind) == ("refused", code, "debit")
        # a refusal is kept under its key too: asked again, the same answer; status says the same
        assert await source.debit(debit(account=account, amount=amount, currency=currency)) == answer
        assert (await source.status("d-1")).outcome == "refused"
        assert await b.balance() == "1000.00"


async def test_whole_balance_can_be_debited_not_more() -> None:
    async with bank() as b:
        source = b.source()
        assert (await source.debit(debit("d-1", 100000))).outcome == "done"
        assert (await source.debit(debit("d-2", 1))).code == "insufficient_funds"
        assert await b.balance() == "0.00"


async def test_same_key_other_amount_is_unknown_never_a_second_debit() -> None:
    async with bank() as b:
        source = b.source()
        assert (await source.debit(debit(amount=100))).outcome == "done"
        clash = await source.debit(debit(amount=200))
        assert (clash.outcome, clash.code) == ("unknown", "key_conflict")
        assert (await source.status("d-1")).outcome == "done"
        assert await b.balance() == "999.00"


async def test_invalid_requests_are_refused_without_sending() -> None:
    async with bank() as b:
        source = b.source()
        for bad in (debit(key="a/b"), debit(key=""), debit(amount=0), debit(currency="XXX")):
            answer = await source.debit(bad)
            assert (answer.outcome, answer.code) == ("refused", "invalid_request"), bad
        assert (await source.status("a/b")).outcome == "not_found"
        assert (await b.state())["operations"] == []


async def test_status_of_an_unknown_key_is_not_found() -> None:
    async with bank() as b:
        assert (await b.source().status("never-sent")).outcome == "not_found"


# -- lost answers, timeouts, unreachable ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["drop", "hold"])
async def test_lost_answer_is_unknown_then_status_done_debited_once(mode: str) -> None:
    async with bank(lost_mode=mode) as b:
        source = b.source(timeout="0.5")
        await b.lose(1)
        lost = await source.debit(debit())
        assert lost.outcome == "unknown", lost
        status = await source.status("d-1")
        assert status.outcome == "done" and status.kind == "debit"
        again = await source.debit(debit())  # a retry under the same key answers the first result
        assert again.outcome == "done" and again.reference == status.reference
        state = await b.state()
        assert state["accounts"][ACCOUNT]["balance"] == "850.00" and state["lost"] == 1
        assert [op["calls"] for op in state["operations"]] == [2]


async def test_timeout_is_unknown_and_the_slow_debit_still_lands() -> None:
    async with bank() as b:
        source = b.source(timeout="0.3")
        answer = await source.debit(debit(account="slow", amount=1000))
        assert (answer.outcome, answer.code) == ("unknown", "timeout")
        assert (await source.status("d-1")).outcome == "not_found"  # still on its way
        await asyncio.sleep(0.8)
        patient = b.source(timeout="3")  # the slow account's status answers are slow too
        assert (await patient.status("d-1")).outcome == "done"
        assert await b.balance("slow") == "90.00"


async def test_connection_refused_is_unreachable() -> None:
    with refusing_url() as url:
        async with provider_client() as http:
            source = JsonHttpFunding({"url": url, "connect_timeout": "1"}, http)
            answers = [await source.debit(debit()), await source.refund(refund()), await source.status("d")]
    assert [(a.outcome, a.code) for a in answers] == [("unreachable", "unreachable")] * 3


async def test_bank_down_is_unreachable_and_nothing_moves() -> None:
    async with bank(down=True) as b:
        source = b.source()
        assert (await source.debit(debit())).outcome == "unreachable"
        assert (await source.status("d-1")).outcome == "unreachable"
        await b.http.post(f"{b.url}/_emulator/up")
        assert (await source.debit(debit())).outcome == "done"
        assert await b.balance() == "850.00"


@pytest.mark.parametrize(
    "exc",
    [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout],
)
async def test_connect_failures_are_unreachable(exc: type[httpx.TransportError]) -> None:
    async with _failing(exc) as source:
        assert (await source.debit(debit())).outcome == "unreachable"
        assert (await source.status("d-1")).outcome == "unreachable"


@pytest.mark.parametrize(
    "exc",
    [httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError],
)
async def test_failures_after_connecting_are_unknown(exc: type[httpx.TransportError]) -> None:
    async with _failing(exc) as source:
        assert (await source.debit(debit())).outcome == "unknown"
        assert (await source.refund(refund())).outcome == "unknown"
        assert (await source.status("d-1")).outcome == "unknown"


@asynccontextmanager
async def _failing(exc: type[httpx.TransportError]) -> AsyncIterator[JsonHttpFunding]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("boom tok-9", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        source = JsonHttpFunding({"url": "http://127.0.0.1:9", "token": "tok-9"}, http)
        yield source
        answer = await source.debit(debit())
        assert answer.message is not None and "tok-9" not in answer.message  # secrets scrubbed


# -- refunds ------------------------------------------------------------------------------------------------


async def test_refund_gives_back_idempotently_never_above_the_debit() -> None:
    async with bank() as b:
        source = b.source()
        assert (await source.debit(debit(amount=15000))).outcome == "done"
        part = await source.refund(refund("r-1", amount=10000))
        assert part.outcome == "done" and part.kind == "refund"
        assert await source.refund(refund("r-1", amount=10000)) == part  # same key: given back once
        assert await b.balance() == "950.00"
        over = await source.refund(refund("r-2", amount=5001))
        assert (over.outcome, over.code) == ("refused", "amount_exceeds_debit")
        assert (await source.refund(refund("r-3", amount=5000))).outcome == "done"
        assert await b.balance() == "1000.00"
        status = await source.status("r-1")
        assert (status.outcome, status.kind) == ("done", "refund")
        nothing = await source.refund(refund("r-4", debit_key="d-404", amount=1))
        assert (nothing.outcome, nothing.code) == ("refused", "debit_not_found")


async def test_refund_of_a_refused_debit_is_refused() -> None:
    async with bank() as b:
        source = b.source()
        assert (await source.debit(debit(amount=10**8))).outcome == "refused"
        assert (await source.refund(refund(amount=1))).code == "debit_not_found"


async def test_lost_refund_answer_settled_by_status() -> None:
    async with bank() as b:
        source = b.source(timeout="0.5")
        assert (await source.debit(debit())).outcome == "done"
        await b.lose(1)
        assert (await source.refund(refund())).outcome == "unknown"
        assert (await source.status("r-1")).outcome == "done"
        assert (await source.refund(refund())).outcome == "done"
        assert await b.balance() == "1000.00"


# -- credentials -------------------------------------------------------------------------------------------


async def test_hmac_signature_is_verified() -> None:
    async with bank(hmac_secret="right-secret", token="tok") as b:
        good = b.source(hmac_secret="right-secret", token="tok")
        assert (await good.debit(debit("d-1"))).outcome == "done"
        assert (await good.status("d-1")).outcome == "done"
        wrong = await b.source(hmac_secret="wrong-secret", token="tok").debit(debit("d-2"))
        assert (wrong.outcome, wrong.code) == ("refused", "bad_signature")
        unsigned = await b.source(token="tok").debit(debit("d-3"))
        assert (unsigned.outcome, unsigned.code) == ("refused", "bad_signature")
        no_token = await b.source(hmac_secret="right-secret").debit(debit("d-4"))
        assert (no_token.outcome, no_token.code) == ("refused", "unauthorized")
        # a refused status request says nothing about the operation: unknown, not refused
        status = await b.source(hmac_secret="wrong-secret", token="tok").status("d-1")
        assert (status.outcome, status.code) == ("unknown", "bad_signature")
        assert [op["key"] for op in (await b.state())["operations"]] == ["d-1"]
        assert await b.balance() == "850.00"


async def test_a_signed_body_changed_on_the_way_is_refused() -> None:
    async with bank(hmac_secret="s") as b:
        source = b.source(hmac_secret="s")
        headers = source._headers("POST", "/debits", b'{"key":"d-1"}')
        body = b'{"key":"d-1","account":"%s","amount":"999.00","currency":"RUB"}' % ACCOUNT.encode()
        response = await b.http.post(f"{b.url}/debits", content=body, headers=headers)
        assert response.status_code == 401 and response.json()["code"] == "bad_signature"


async def test_secrets_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with bank(hmac_secret="sec-77", token="tok-77") as b:
        source = b.source(hmac_secret="sec-77", token="tok-77")
        await source.debit(debit())
        logging.getLogger("test").info("source %r", source)
    with refusing_url() as url:
        async with provider_client() as http:
            await JsonHttpFunding({"url": url, "token": "tok-77"}, http).debit(debit())
    assert "tok-77" not in caplog.text and "sec-77" not in caplog.text
    assert "JsonHttpFunding" in caplog.text


# -- answers that are not protocol answers ---------------------------------------------------------------


def odd_bank() -> FastAPI:
    app = FastAPI()
    answers: dict[str, tuple[int, bytes]] = {
        "garbage": (200, b"{not json"),
        "array": (200, b"[1]"),
        "html500": (500, b"<html>oops</html>"),
        "weird": (200, b'{"result":"maybe","key":"K"}'),
        "nodone": (200, b'{"result":"done","key":"K","kind":"debit"}'),  # no reference
        "otherkey": (200, b'{"result":"done","key":"OTHER","kind":"debit","reference":"B1"}'),
        "otherkind": (200, b'{"result":"done","key":"K","kind":"refund","reference":"B1"}'),
        "notfound": (404, b'{"result":"not_found","key":"K"}'),
        "float": (200, b'{"result":"done","key":"K","kind":"debit","reference":"B1","amount":1.5}'),
    }

    async def reply(request: Request) -> Response:
        account = (await request.json())["account"]
        status, content = answers[account]
        return Response(content, status_code=status, media_type="application/json")

    async def status(key: str) -> Response:
        status, content = answers[key.split("-")[0]]
        return Response(content.replace(b'"K"', f'"{key}"'.encode()), status, media_type="application/json")

    app.add_api_route("/debits", reply, methods=["POST"])
    app.add_api_route("/operations/{key}", status, methods=["GET"])
    return app


async def test_malformed_answers_are_unknown() -> None:
    async with run_emulator(odd_bank()) as url, provider_client() as http:
        source = JsonHttpFunding({"url": url}, http)
        names = ("garbage", "array", "html500", "weird", "nodone", "otherkey", "otherkind", "notfound")
        outcomes = {name: (await source.debit(debit("K", account=name))).outcome for name in names}
        assert set(outcomes.values()) == {"unknown"}, outcomes
        assert (await source.debit(debit("K", account="float"))).outcome == "done"
        statuses = {name: (await source.status(f"{name}-1")).outcome for name in ("garbage", "weird")}
        assert set(statuses.values()) == {"unknown"}, statuses
        assert (await source.status("notfound-1")).outcome == "not_found"
        assert (await source.status("nodone-1")).outcome == "unknown"


# -- the books always balance --------------------------------------------------------------------------------

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["debit", "refund", "retry"]),
        st.integers(0, 5),  # which key
        st.integers(1, 40000),  # amount in kopecks
        st.booleans(),  # the answer is lost
    ),
    max_size=14,
)


async def _settle(source: JsonHttpFunding, key: str, answer: FundingAnswer) -> FundingAnswer:
    """What the hub does with an unknown answer: ask status (never send a new operation)."""
    while answer.outcome == "unknown":
        answer = await source.status(key)
    return answer


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPERATIONS)
def test_books_balance(ops: list[tuple[str, int, int, bool]]) -> None:
    """balance == initial - done debits + done refunds, never negative, whatever is retried or lost."""

    async def run() -> None:
        async with bank(accounts={ACCOUNT: {"currency": "RUB", "balance": "500.00"}}) as b:
            source = b.source()
            sent: list[tuple[str, Debit | Refund]] = []
            done: dict[str, int] = {}  # key -> signed amount, as the hub learnt it
            for n, (kind, which, amount, lost) in enumerate(ops):
                if lost:
                    await b.lose(1)
                if kind == "retry" and sent:
                    kind, request = sent[which % len(sent)]
                elif kind == "refund":
                    debits = [r for k, r in sent if k == "debit"]
                    debit_key = debits[which % len(debits)].key if debits else f"d-{which}"
                    request = refund(f"r-{n}", debit_key, amount)
                else:
                    kind, request = "debit", debit(f"d-{n}", amount)
                sent.append((kind, request))
                answer = await (source.debit(request) if kind == "debit" else source.refund(request))  # type: ignore[arg-type]
                answer = await _settle(source, request.key, answer)
                assert answer.outcome in ("done", "refused"), answer
                if answer.outcome == "done":
                    done[request.key] = -request.amount if kind == "debit" else request.amount
                balance = await b.balance()
                assert not balance.startswith("-")
                assert int(balance.replace(".", "")) == 50000 + sum(done.values())
            state = await b.state()
            assert all(op["calls"] >= 1 for op in state["operations"])
            assert {op["key"] for op in state["operations"] if op["status"] == "done"} == set(done)

    asyncio.run(run())
