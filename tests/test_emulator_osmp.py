"""The OSMP emulator against a small spec-following client written here (raw httpx + XML parsing)."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from paymux.cli import app as cli_app
from paymux.providers.emulators.behaviour import BehaviourEngine, EmulatorConfig
from paymux.providers.emulators.osmp import create_app
from paymux.providers.emulators.server import run_emulator


@dataclass
class Answer:
    status_code: int
    content_type: str
    raw: str
    root: ET.Element | None

    def get(self, tag: str) -> str | None:
        assert self.root is not None, self.raw
        return self.root.findtext(tag)

    @property
    def result(self) -> int:
        value = self.get("result")
        assert value is not None, self.raw
        return int(value)


@dataclass
class SpecClient:
    """What the OSMP specification says a caller does: parameters in, XML <response> out."""

    url: str
    http: httpx.AsyncClient
    engine: BehaviourEngine

    async def call(
        self,
        params: dict[str, str] | list[tuple[str, str]],
        *,
        method: str = "GET",
        auth: tuple[str, str] | None = None,
    ) -> Answer:
        if method == "GET":
            r = await self.http.get(self.url, params=params, auth=auth)
        else:
            r = await self.http.post(self.url, data=dict(params), auth=auth)
        root = ET.fromstring(r.text) if r.headers.get("content-type", "").startswith("text/xml") else None
        return Answer(r.status_code, r.headers.get("content-type", ""), r.text, root)

    async def pay(
        self,
        txn_id: str,
        account: str = "9001234567",
        sum_: str = "10.45",
        *,
        check_first: bool = True,
        **extra: str,
    ) -> Answer:
        """A payment as the protocol makes it: check (registers the txn_id), then pay (confirms it)."""
        if check_first:
            await self.check(account, sum_, txn_id)
        params = {"command": "pay", "txn_id": txn_id, "txn_date": "20261122100000", "account": account}
        params |= {"sum": sum_, "ccy": "RUB", **extra}
        return await self.call(params)

    async def check(self, account: str = "9001234567", sum_: str = "10.45", txn_id: str = "1") -> Answer:
        return await self.call({"command": "check", "txn_id": txn_id, "account": account, "sum": sum_})

    async def get_info(self, account: str = "9001234567", **extra: str) -> Answer:
        return await self.call({"command": "getInfo", "account": account, "ccy": "RUB", **extra})

    async def state(self) -> dict[str, Any]:
        found: dict[str, Any] = (await self.http.get(self.url + "_emulator/transactions")).json()
        return found


@asynccontextmanager
async def emulator(
    config: dict[str, Any] | None = None, *, require_check: bool = True
) -> AsyncIterator[SpecClient]:
    app = create_app(EmulatorConfig.model_validate(config or {}), require_check=require_check)
    async with run_emulator(app) as url, httpx.AsyncClient() as http:
        yield SpecClient(url + "/", http, app.state.engine)


async def test_check_answer_format() -> None:
    async with emulator({"accounts": {"9001234567": {"check": "ok", "balance": "3.50"}}}) as osmp:
        answer = await osmp.check(txn_id="42")
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/xml")
    assert answer.raw.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert answer.root is not None and answer.root.tag == "response"
    assert [child.tag for child in answer.root] == ["osmp_txn_id", "result", "comment", "fields"]
    assert (answer.get("osmp_txn_id"), answer.result, answer.get("comment")) == ("42", 0, "OK")
    field = answer.root.find("fields/field1")
    assert field is not None and field.get("name") == "balance" and field.text == "3.50"


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_pay_answer_format(method: str) -> None:
    async with emulator({"provider_txn_prefix": "Q-"}) as osmp:
        params = {
            "command": "pay",
            "txn_id": "1001",
            "txn_date": "20261122100000",
            "account": "9001234567",
            "sum": "10.45",
            "ccy": "RUB",
        }
        assert (await osmp.check(txn_id="1001")).result == 0  # registers the payment
        answer = await osmp.call(params, method=method)
        assert answer.root is not None
        assert [child.tag for child in answer.root] == ["osmp_txn_id", "prv_txn", "sum", "result", "comment"]
        assert answer.get("osmp_txn_id") == "1001"
        assert answer.get("prv_txn") == "Q-00000001"
        assert answer.get("sum") == "10.45"
        assert answer.result == 0
        [taken] = osmp.engine.transactions()
        assert (taken.amount, taken.currency, taken.txn_date) == (1045, "RUB", "20261122100000")


async def test_repeated_pay_returns_the_original_and_pays_once() -> None:
    async with emulator() as osmp:
        first = await osmp.pay("2001")
        again = await osmp.pay("2001")
        assert first.result == again.result == 0
        assert first.get("prv_txn") == again.get("prv_txn")
        assert len(osmp.engine.transactions()) == 1
        assert osmp.engine.ledger.pay_calls("2001") == 2


@pytest.mark.parametrize("change", [{"sum_": "11.00"}, {"account": "9007654321"}])
async def test_repeat_with_another_sum_or_account_is_refused(change: dict[str, str]) -> None:
    async with emulator() as osmp:
        assert (await osmp.pay("2002")).result == 0
        kw = {"account": change.get("account", "9001234567"), "sum_": change.get("sum_", "10.45")}
        check = await osmp.check(kw["account"], kw["sum_"], "2002")
        assert check.result == 300
        assert "already registered for another account or sum" in (check.get("comment") or "")
        refused = await osmp.pay("2002", check_first=False, **change)
        assert refused.result == 300
        assert "registered for another account or sum" in (refused.get("comment") or "")
        unregistered = await osmp.pay("2003", check_first=False)  # no check for this one at all
        assert unregistered.result == 300
        assert "not registered by a check" in (unregistered.get("comment") or "")
        [taken] = osmp.engine.transactions()
        assert (taken.amount, taken.account) == (1045, "9001234567")


# -- the payment process: getInfo (registers nothing), check (registers), pay (confirms) -----------


async def test_pay_needs_a_check_of_the_same_txn_id_first() -> None:
    async with emulator() as osmp:
        alone = await osmp.pay("2101", check_first=False)
        assert (alone.result, alone.get("comment")) == (
            300,
            "txn_id 2101 was not registered by a check: check first",
        )
        assert osmp.engine.transactions() == [] and osmp.engine.ledger.all_pay_calls() == {}
        other = await osmp.check(txn_id="2102")  # a check of another txn_id registers only that one
        assert other.result == 0
        assert (await osmp.pay("2101", check_first=False)).result == 300
        checked = await osmp.check(txn_id="2101")
        assert (checked.get("osmp_txn_id"), checked.result) == ("2101", 0)
        assert checked.get("prv_txn") is None  # a check takes no payment
        assert osmp.engine.transactions() == []
        paid = await osmp.pay("2101", check_first=False)
        assert paid.result == 0
        state = await osmp.state()
        assert state["checked"] == ["2101", "2102"]
        assert state["commands"] == {"2101": ["check", "pay"], "2102": ["check"]}


async def test_a_refused_check_registers_nothing() -> None:
    async with emulator({"accounts": {"9000000005": {"check": "reject:5:account not found"}}}) as osmp:
        refused = await osmp.check("9000000005", txn_id="2201")
        assert refused.result == 5
        assert (await osmp.pay("2201", "9000000005", check_first=False)).result == 300
        assert (await osmp.state())["checked"] == []


async def test_without_require_check_a_pay_alone_is_taken() -> None:
    async with emulator(require_check=False) as osmp:
        assert (await osmp.pay("2301", check_first=False)).result == 0
        assert (await osmp.state())["commands"] == {"2301": ["pay"]}


@pytest.mark.parametrize("txn_id", ["chk-20261207011402636640", "1" * 21, "12.5", "-7", ""])
async def test_a_check_whose_txn_id_is_not_a_number_of_up_to_20_digits_is_refused(txn_id: str) -> None:
    async with emulator() as osmp:
        answer = await osmp.check(txn_id=txn_id)
        assert answer.result == 300
        assert "whole number of up to 20 digits" in (answer.get("comment") or "")
        assert (await osmp.state())["checked"] == []
        assert (await osmp.check(txn_id="1" * 20)).result == 0  # 20 digits is the most the protocol takes


async def test_get_info_answers_fields_and_registers_nothing() -> None:
    accounts = {
        "9001234567": {"balance": "15.50", "info": {"name": "I. Ivanov"}},
        "9000000005": {"check": "reject:5:account not found"},
    }
    async with emulator({"accounts": accounts}) as osmp:
        answer = await osmp.get_info()
        assert answer.root is not None
        assert [child.tag for child in answer.root] == ["result", "comment", "fields"]  # no osmp_txn_id
        assert answer.result == 0
        fields = {
            f.get("name"): f.text for f in answer.root.iter() if f.tag.startswith("field") and f.get("name")
        }
        assert fields == {"name": "I. Ivanov", "balance": "15.50"}
        with_sum = await osmp.get_info(sum="10.45")
        assert with_sum.result == 0
        assert (await osmp.get_info("9000000005")).result == 5
        missing = await osmp.call({"command": "getInfo"})
        assert missing.result == 4
        state = await osmp.state()
        assert (state["checked"], state["commands"], state["get_info_calls"]) == ([], {}, 3)
        assert osmp.engine.transactions() == []


BASE_PAY = {
    "command": "pay",
    "txn_id": "3001",
    "txn_date": "20261122100000",
    "account": "9001234567",
    "sum": "10.45",
}


@pytest.mark.parametrize(
    ("change", "result", "comment"),
    [
        ({"command": "refund"}, 300, "unknown command 'refund'"),
        ({"command": None}, 300, "unknown command ''"),
        ({"txn_id": None}, 300, "txn_id is required"),
        ({"txn_id": "abc"}, 300, "whole number"),
        ({"txn_id": "1" * 21}, 300, "whole number"),
        ({"account": None}, 4, "account is required"),
        ({"account": ""}, 4, "account is required"),
        ({"sum": None}, 300, "sum is required"),
        ({"sum": "10,45"}, 300, "bad sum"),
        ({"sum": "abc"}, 300, "bad sum"),
        ({"sum": "-1.00"}, 300, "bad sum"),
        ({"sum": "10.455"}, 300, "bad sum"),
        ({"sum": "1e3"}, 300, "bad sum"),
        ({"sum": ""}, 300, "bad sum"),
        ({"sum": "0.00"}, 241, "amount too small"),
        ({"ccy": "XXX"}, 300, "unknown currency"),
        ({"txn_date": None}, 300, "txn_date is required"),
        ({"txn_date": "2026-11-22T10:00:00"}, 300, "YYYYMMDDHHMMSS"),
        ({"txn_date": "20261399000000"}, 300, "not a valid date"),
    ],
)
async def test_bad_requests_are_answered_and_nothing_is_paid(
    change: dict[str, str | None], result: int, comment: str
) -> None:
    params = {k: v for k, v in ({**BASE_PAY, **change}).items() if v is not None}
    async with emulator() as osmp:
        answer = await osmp.call(params)
        assert answer.status_code == 200
        assert answer.result == result, answer.raw
        assert comment in (answer.get("comment") or ""), answer.raw
        assert osmp.engine.transactions() == []
        assert osmp.engine.ledger.all_pay_calls() == {}


async def test_parameter_given_twice_is_refused() -> None:
    async with emulator() as osmp:
        answer = await osmp.call([*BASE_PAY.items(), ("sum", "99.00")])
        assert (answer.result, answer.get("comment")) == (300, "parameter 'sum' is given more than once")
        assert osmp.engine.transactions() == []


async def test_post_must_be_a_form() -> None:
    async with emulator() as osmp:
        r = await osmp.http.post(osmp.url, json=BASE_PAY)
        root = ET.fromstring(r.text)
        assert root.findtext("result") == "300"
        assert "x-www-form-urlencoded" in (root.findtext("comment") or "")
        assert osmp.engine.transactions() == []


async def test_post_form_with_query_parameters_too() -> None:
    async with emulator() as osmp:
        assert (await osmp.check(txn_id=BASE_PAY["txn_id"])).result == 0
        r = await osmp.http.post(
            osmp.url, params={"command": "pay"}, data={k: v for k, v in BASE_PAY.items() if k != "command"}
        )
        assert ET.fromstring(r.text).findtext("result") == "0"


@pytest.mark.parametrize(
    ("directive", "result"),
    [("reject:5:account not found", 5), ("reject:4", 4), ("reject:79:closed", 79), ("temporary:90", 90)]
    + [(f"fatal:{code}:scripted", code) for code in (7, 8, 31, 32, 241, 242, 243, 300)],
)
async def test_check_result_codes_are_scriptable_per_account(directive: str, result: int) -> None:
    async with emulator({"accounts": {"9000000001": {"check": directive}}}) as osmp:
        scripted = await osmp.check(account="9000000001")
        other = await osmp.check(account="9000000002")
    assert scripted.result == result
    assert other.result == 0


@pytest.mark.parametrize("code", [1, 4, 5, 7, 8, 31, 32, 79, 241, 242, 243, 300])
async def test_pay_result_codes_are_scriptable_per_account(code: int) -> None:
    directive = "temporary:1" if code == 1 else f"fatal:{code}:scripted {code}"
    async with emulator({"accounts": {"9000000001": {"pay": directive}}}) as osmp:
        scripted = await osmp.pay("4001", account="9000000001")
        assert scripted.result == code
        assert (await osmp.pay("4002", account="9000000002")).result == 0
        # a repeated pay answers the original (final) refusal again
        assert (await osmp.pay("4001", account="9000000001")).result == code


async def test_unscripted_errors_use_the_generic_codes() -> None:
    accounts = {"1": {"pay": "temporary"}, "2": {"pay": "fatal"}, "3": {"check": "reject"}}
    async with emulator({"accounts": accounts}) as osmp:
        assert (await osmp.pay("5001", account="1")).result == 1
        assert (await osmp.pay("5002", account="2")).result == 300
        assert (await osmp.check(account="3")).result == 5


async def test_pending_answers_90_until_done() -> None:
    async with emulator({"accounts": {"*": {"pay": "pending"}}, "pending_ms": 200}) as osmp:
        first = await osmp.pay("6001")
        assert (first.result, first.get("comment")) == (90, "payment not yet completed, ask again later")
        assert first.get("prv_txn")
        await asyncio.sleep(0.25)
        done = await osmp.pay("6001")
        assert done.result == 0 and done.get("prv_txn") == first.get("prv_txn")


async def test_down_answers_result_1() -> None:
    async with emulator() as osmp:
        await osmp.http.post(osmp.url + "_emulator/down")
        assert (await osmp.pay("7001")).result == 1
        await osmp.http.post(osmp.url + "_emulator/up")
        assert (await osmp.pay("7001")).result == 0
        assert osmp.engine.ledger.pay_calls("7001") == 1  # the refused one was never decided


async def test_latency_and_lost_answer() -> None:
    config = {"latency_ms": 150, "accounts": {"*": {"pay": "lost_then_ok"}}, "lost_hold_ms": 10_000}
    async with emulator(config) as osmp:
        started = time.monotonic()
        assert (await osmp.check(txn_id="8001")).result == 0
        assert time.monotonic() - started >= 0.15
        with pytest.raises(httpx.ReadTimeout):
            await osmp.http.get(osmp.url, params={**BASE_PAY, "txn_id": "8001"}, timeout=0.5)
        again = await osmp.call({**BASE_PAY, "txn_id": "8001"})
        assert again.result == 0
        [taken] = osmp.engine.transactions()
        assert again.get("prv_txn") == taken.provider_txn_id


async def test_broken_answer_is_malformed_xml() -> None:
    async with emulator({"accounts": {"*": {"pay": "broken_then_ok"}}}) as osmp:
        assert (await osmp.check(txn_id="9001")).result == 0
        r = await osmp.http.get(osmp.url, params={**BASE_PAY, "txn_id": "9001"})
        assert r.status_code == 200
        with pytest.raises(ET.ParseError):
            ET.fromstring(r.text)
        assert (await osmp.pay("9001")).result == 0
        assert len(osmp.engine.transactions()) == 1


async def test_basic_auth() -> None:
    async with emulator({"token": "hub:pa55word"}) as osmp:
        anonymous = await osmp.call(BASE_PAY)
        wrong = await osmp.call(BASE_PAY, auth=("hub", "nope"))
        garbage = await osmp.http.get(osmp.url, params=BASE_PAY, headers={"Authorization": "Basic !!!"})
        bearer = await osmp.http.get(osmp.url, params=BASE_PAY, headers={"Authorization": "Bearer pa55word"})
        for refused in (anonymous, wrong):
            assert refused.status_code == 401
        assert garbage.status_code == bearer.status_code == 401
        assert anonymous.root is None
        assert osmp.engine.transactions() == []
        register = {"command": "check", **{k: BASE_PAY[k] for k in ("txn_id", "account", "sum")}}
        assert (await osmp.call(register, auth=("hub", "pa55word"))).result == 0
        right = await osmp.call(BASE_PAY, auth=("hub", "pa55word"), method="POST")
        assert right.result == 0
        header = "Basic " + base64.b64encode(b"hub:pa55word").decode()
        assert (
            await osmp.http.get(osmp.url, params=BASE_PAY, headers={"Authorization": header})
        ).status_code == 200


async def test_control_endpoints() -> None:
    async with emulator() as osmp:
        await osmp.pay("9101")
        txns = (await osmp.http.get(osmp.url + "_emulator/transactions")).json()
        assert [t["txn_id"] for t in txns["transactions"]] == ["9101"]
        assert txns["pay_calls"] == {"9101": 1}
        assert (txns["checked"], txns["commands"]) == (["9101"], {"9101": ["check", "pay"]})
        bad = await osmp.http.put(osmp.url + "_emulator/config", json={"accounts": {"*": {"pay": "explode"}}})
        assert bad.status_code == 422
        good = await osmp.http.put(
            osmp.url + "_emulator/config", json={"accounts": {"*": {"pay": "fatal:7"}}}
        )
        assert good.status_code == 200
        assert (await osmp.pay("9102")).result == 7
        await osmp.http.post(osmp.url + "_emulator/reset")
        assert osmp.engine.transactions() == []
        state = await osmp.state()
        assert (state["checked"], state["commands"], state["get_info_calls"]) == ([], {}, 0)


# -- the CLI -------------------------------------------------------------------------------------


def test_cli_refuses_bad_basic_auth() -> None:
    result = CliRunner().invoke(cli_app, ["emulator", "osmp", "--basic-auth", "no-colon"])
    assert result.exit_code == 2
    assert "user:password" in result.output


def test_cli_refuses_a_bad_config_file(tmp_path: Any) -> None:
    path = tmp_path / "osmp.yaml"
    path.write_text("accounts: {'1': {pay: 'fatal-ish'}}\n")
    result = CliRunner().invoke(cli_app, ["emulator", "osmp", "--config", str(path)])
    assert result.exit_code == 2
    assert "invalid emulator configuration" in result.output


def test_cli_serves_osmp(tmp_path: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "osmp.yaml"
    config.write_text("accounts: {'9000000005': {check: 'reject:5:no such subscriber'}}\n")
    paymux = os.path.join(os.path.dirname(sys.executable), "paymux")
    proc = subprocess.Popen(
        [
            *(paymux, "emulator", "osmp", "--port", str(port), "--config", str(config)),
            *("--basic-auth", "u:p", "--no-check-first"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/",
                    params={"command": "check", "txn_id": "1", "account": "9000000005", "sum": "1.00"},
                    auth=("u", "p"),
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the emulator did not start"
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.1)
        root = ET.fromstring(r.text)
        assert (root.findtext("result"), root.findtext("comment")) == ("5", "no such subscriber")
        pay = {
            "command": "pay",
            "txn_id": "2",
            "txn_date": "20261122100000",
            "account": "9001",
            "sum": "1.00",
        }
        paid = ET.fromstring(httpx.get(f"http://127.0.0.1:{port}/", params=pay, auth=("u", "p")).text)
        assert paid.findtext("result") == "0"  # --no-check-first: a pay without a check is taken
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
