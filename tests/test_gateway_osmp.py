"""OSMP inbound: payment systems check and pay through the hub over real HTTP (``/osmp/{gateway}``).

The client below is written from the protocol: check/pay as GET query or POST form parameters,
the answer an UTF-8 XML ``<response>`` with osmp_txn_id, prv_txn, sum, result and comment.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from harness import BASE_CATALOG, Env, hub_env
from paymux.gateways.models import InboundExchange, InboundGateway
from paymux.ledger.models import JournalEntry
from paymux.ledger.service import verify_ledger
from paymux.payments.models import Payment

PASSWORD = "qiwi-secret-42"
FINGERPRINT = "AB:CD:EF:01:23:45:67:89"
CERT_HEADER = "X-Client-Cert-Fingerprint"
ACCOUNT = "9001234567"
WATER_ACCOUNT = "12345678"
ELEMENTS = ("osmp_txn_id", "prv_txn", "sum", "result", "comment", "fields")


@pytest.fixture(autouse=True)
def _tcp_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateways decide themselves which proxies' headers to believe, so the app must see the TCP
    peer: uvicorn's own X-Forwarded-For handling (on for loopback by default) is turned off, as
    docs/protocols.md asks of a deployment (``paymux serve`` should pass ``proxy_headers=False``)."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "")


def catalog() -> dict[str, Any]:
    """The harness catalog plus two gateway channels, a water service (on p2 only) and two gateways."""
    cat = copy.deepcopy(BASE_CATALOG)
    cat["channels"] += [
        {"code": "qiwi", "name": "QIWI", "kind": "gateway", "group": "online"},
        {"code": "cyber-ch", "name": "Cyber", "kind": "gateway"},
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
        {
            "code": "qiwi",
            "name": "QIWI wallet",
            "services": ["topup"],
            "default_service": "topup",
            "limits": {"RUB": {"min": "10.00", "max": "5000.00"}},
            "ignore_params": ["prv_id"],
            "auth": {"login": "qiwi", "password": PASSWORD},
            "allow_ips": ["127.0.0.0/8"],
        },
        {
            "code": "cyber",
            "name": "Cyber payment system",
            "channel": "cyber-ch",
            "services": ["topup", "water"],
            "service_param": "prv",
            "check": "local",
            "pay_result": "final",
            "auth": {"client_cert": {"header": CERT_HEADER, "allowed": [FINGERPRINT]}},
            "trusted_proxies": ["127.0.0.1/32"],
        },
    ]
    return cat


@dataclass
class Answer:
    status: int
    elements: dict[str, str]
    raw: str
    fields: dict[str, str] | None = None  # <fields><field1 name="...">...</field1>...</fields>

    @property
    def result(self) -> int:
        return int(self.elements["result"])

    @property
    def prv_txn(self) -> str | None:
        return self.elements.get("prv_txn")


def parse_answer(r: httpx.Response) -> Answer:
    """Check the answer is the OSMP document and read it."""
    assert r.headers["content-type"].startswith("text/xml"), r.headers
    raw = r.content.decode("utf-8")
    assert raw.startswith('<?xml version="1.0" encoding="UTF-8"?>'), raw
    root = ET.fromstring(r.content)
    assert root.tag == "response", raw
    names = [child.tag for child in root]
    assert set(names) <= set(ELEMENTS), names
    assert names == [n for n in ELEMENTS if n in names], f"elements out of order: {names}"
    assert {"result", "comment"} <= set(names), names
    fields = None
    container = root.find("fields")
    if container is not None:
        assert [f.tag for f in container] == [f"field{i}" for i in range(1, len(container) + 1)], raw
        fields = {f.get("name") or "": f.text or "" for f in container}
    return Answer(r.status_code, {child.tag: child.text or "" for child in root}, raw, fields)


class OsmpClient:
    """What a payment system does: GET (or POST form) with the OSMP parameters."""

    def __init__(self, env: Env, gateway: str, *, method: str = "GET", **http: Any) -> None:
        self.env = env
        self.path = f"/osmp/{gateway}"
        self.method = method
        self.http = http  # headers, auth

    async def send(self, params: dict[str, str] | list[tuple[str, str]], **http: Any) -> Answer:
        opts = {**self.http, **http}
        if self.method == "GET":
            r = await self.env.http.get(self.path, params=params, **opts)
        else:
            r = await self.env.http.post(self.path, data=dict(params), **opts)
        return parse_answer(r)

    async def check(
        self,
        txn_id: str,
        account: str = ACCOUNT,
        amount: str = "100.00",
        headers: dict[str, str] | None = None,
        **extra: str,
    ) -> Answer:
        params = {"command": "check", "txn_id": txn_id, "account": account, "sum": amount}
        return await self.send({**params, **extra}, **({"headers": headers} if headers else {}))

    async def pay(
        self,
        txn_id: str,
        account: str = ACCOUNT,
        amount: str = "100.00",
        txn_date: str = "20260315143000",
        headers: dict[str, str] | None = None,
        **extra: str,
    ) -> Answer:
        params = {"command": "pay", "txn_id": txn_id, "txn_date": txn_date, "account": account, "sum": amount}
        return await self.send({**params, **extra}, **({"headers": headers} if headers else {}))


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


def qiwi(env: Env, method: str = "GET") -> OsmpClient:
    return OsmpClient(env, "qiwi", method=method, headers=basic("qiwi", PASSWORD))


def cyber(env: Env, fingerprint: str = FINGERPRINT) -> OsmpClient:
    return OsmpClient(env, "cyber", headers={CERT_HEADER: fingerprint})


async def stored(env: Env) -> tuple[int, int, int]:
    """(payments, journal entries, inbound exchanges)."""
    async with env.hub.read_sessions() as s:
        out = []
        for model in (Payment, JournalEntry, InboundExchange):
            out.append(int(await s.scalar(select(func.count()).select_from(model)) or 0))
    return out[0], out[1], out[2]


async def payment(env: Env, payment_id: str | None) -> Payment:
    assert payment_id is not None
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


async def admin_put_gateway(env: Env, doc: dict[str, Any]) -> httpx.Response:
    return await env.http.put(f"/api/v1/admin/gateways/{doc['code']}", json=doc, headers=env.admin)


# --- check ---------------------------------------------------------------------------------------------


CHECK_EMULATORS = {
    "p1": {
        "accounts": {
            "9000000005": {"check": "reject:5:account not found"},
            "9000000079": {"check": "reject:79:account blocked"},
            "9000000099": {"check": "reject:X9:whatever the provider says"},
            "9000000243": {"check": "temporary:1:busy"},
        }
    },
    "p2": {"accounts": {"9000000243": {"check": "temporary:1:busy"}}},
    "p3": {"accounts": {"9000000243": {"check": "temporary:1:busy"}}},
}


async def test_check_ok_and_every_refusal_code(db_url: str) -> None:
    async with hub_env(db_url, catalog=catalog(), emulators=CHECK_EMULATORS) as env:
        c = qiwi(env)
        a = await c.check("1001")
        assert (a.status, a.result, a.elements["osmp_txn_id"], a.elements["sum"]) == (
            200,
            0,
            "1001",
            "100.00",
        )
        assert a.prv_txn is None  # a check makes no payment
        assert a.fields is None  # p1 told nothing about this account

        # the routed provider decides on the account: its OSMP codes pass through
        assert (await c.check("1002", account="9000000005")).result == 5
        assert (await c.check("1003", account="9000000079")).result == 79
        refused = await c.check("1004", account="9000000099")
        assert refused.result == 7 and "whatever the provider says" in refused.elements["comment"]
        assert (await c.check("1005", account="9000000243")).result == 243  # nobody could check it

        # the hub's own rules
        assert (await c.check("1010", account="12ab")).result == 4
        assert (await c.check("1011", amount="9.99")).result == 241  # gateway minimum 10.00
        assert (await c.check("1012", amount="0.00")).result == 241
        assert (await c.check("1013", amount="5000.01")).result == 242  # gateway maximum 5000.00
        assert (await c.check("1014", amount="5000.00")).result == 0
        assert (await c.check("1015", service="water")).result == 7  # not open to this gateway
        assert (await c.check("1016", service="nope")).result == 7
        assert (await c.check("1017", foo="1")).result == 31  # topup has no extra fields
        assert (await c.check("1018", prv_id="77")).result == 0  # ignored parameter
        assert (await c.check("1019", ccy="RUB")).result == 0
        assert (await c.check("1020", ccy="EUR")).result == 300
        assert (await c.check("1021", amount="10.456")).result == 300  # more decimals than RUB has

        # a disabled service: forbidden for technical reasons
        r = await env.http.post("/api/v1/admin/services/topup/disable", headers=env.admin)
        assert r.status_code == 200, r.text
        assert (await c.check("1030")).result == 8
        await env.http.post("/api/v1/admin/services/topup/enable", headers=env.admin)
        assert (await c.check("1031")).result == 0

        # the gateway's channel disabled: 8 as well
        await env.http.post("/api/v1/admin/channels/qiwi/disable", headers=env.admin)
        assert (await c.check("1032")).result == 8
        assert (await c.pay("1032")).result == 8
        await env.http.post("/api/v1/admin/channels/qiwi/enable", headers=env.admin)

        # checks store nothing
        assert (await stored(env))[0] == 0


INFO_EMULATORS = {
    "p1": {
        "accounts": {
            ACCOUNT: {"balance": "12.00", "info": {"name": "I. Ivanov"}},
            "9000000005": {"check": "reject:5:account not found"},
        }
    }
}


async def test_check_and_get_info_answer_the_providers_fields(db_url: str) -> None:
    async with hub_env(db_url, catalog=catalog(), emulators=INFO_EMULATORS) as env:
        before = await stored(env)
        c = qiwi(env)
        checked = await c.check("1101")
        assert (checked.result, checked.elements["osmp_txn_id"]) == (0, "1101")
        assert checked.fields == {"name": "I. Ivanov", "balance": "12.00"}
        # getInfo: the account's state and details; no txn_id and no sum needed, none echoed
        info = await c.send({"command": "getInfo", "account": ACCOUNT})
        assert (info.result, info.fields) == (0, {"name": "I. Ivanov", "balance": "12.00"})
        assert "osmp_txn_id" not in info.elements and "sum" not in info.elements
        with_sum = await c.send({"command": "getInfo", "account": ACCOUNT, "sum": "100.00", "txn_id": "9"})
        assert (with_sum.result, with_sum.elements["osmp_txn_id"], with_sum.elements["sum"]) == (
            0,
            "9",
            "100.00",
        )
        assert (await c.send({"command": "getInfo", "account": "9000000005"})).result == 5
        # the same rules as check
        assert (await c.send({"command": "getInfo", "account": "12ab"})).result == 4
        assert (await c.send({"command": "getInfo"})).result == 4
        assert (await c.send({"command": "getInfo", "account": ACCOUNT, "txn_id": "x1"})).result == 300
        assert (await c.send({"command": "getInfo", "account": ACCOUNT, "sum": "10,00"})).result == 300
        assert (await c.send({"command": "getInfo", "account": ACCOUNT, "sum": "5000.01"})).result == 242
        assert (await c.send({"command": "getInfo", "account": ACCOUNT, "service": "water"})).result == 7
        # a local check asks no provider: no fields
        local = await cyber(env).send({"command": "getInfo", "account": ACCOUNT, "prv": "topup"})
        assert (local.result, local.fields) == (0, None)
        # getInfo, like check, stores nothing
        assert await stored(env) == before


async def test_local_check_and_extra_fields(db_url: str) -> None:
    async with hub_env(db_url, catalog=catalog()) as env:
        c = cyber(env)
        assert (await c.check("1", account=WATER_ACCOUNT, prv="water", period="2026-02")).result == 0
        assert (await c.check("2", account=WATER_ACCOUNT, prv="water", period="2026-2")).result == 31
        assert (await c.check("3", account=WATER_ACCOUNT, prv="water", meter="5")).result == 31
        assert (await c.check("4", account=WATER_ACCOUNT, prv="water", amount="0.50")).result == 241
        assert (await c.check("5", account=WATER_ACCOUNT, prv="water", amount="20000.01")).result == 242
        assert (await c.check("6", account="1234", prv="water")).result == 4
        # no service parameter and no default service
        a = await c.check("7", account=WATER_ACCOUNT)
        assert a.result == 300 and "prv" in a.elements["comment"]
        # a provider that would refuse is not asked by a local check
        assert (await c.check("8", prv="topup")).result == 0
        assert env.emulators["p1"].ledger.all_pay_calls() == {}


# --- malformed requests ----------------------------------------------------------------------------------


async def test_malformed_requests_are_result_300_and_store_nothing(db_url: str) -> None:
    async with hub_env(db_url, catalog=catalog()) as env:
        c = qiwi(env)
        before = await stored(env)
        base = {
            "command": "pay",
            "txn_id": "1",
            "txn_date": "20260315143000",
            "account": ACCOUNT,
            "sum": "10.45",
        }

        def params(**over: str | None) -> list[tuple[str, str]]:
            merged = {**base, **over}
            return [(k, v) for k, v in merged.items() if v is not None]

        cases: list[tuple[list[tuple[str, str]], str]] = [
            (params(sum="10,45"), "sum"),
            (params(txn_id=None), "txn_id"),
            (params(txn_id="12a"), "txn_id"),
            (params(txn_id="123456789012345678901"), "txn_id"),
            (params(txn_date="20261315143000"), "txn_date"),
            (params(txn_date="2026-03-15"), "txn_date"),
            (params(txn_date=None), "txn_date"),
            (params(command="refund"), "command"),
            (params(command=None), "command"),
            (params(command="check", sum=None), "sum"),
            (params(command="check", sum="-1.00"), "sum"),
            (params(command="check", sum="1e3"), "sum"),
            (params(command="check", sum=" 10.45"), "sum"),
            ([*params(command="check"), ("account", "9007654321")], "account"),
            (params(command="check", ccy="rub"), "ccy"),
            (params(account=ACCOUNT + "\x00"), "control character"),
            (params(command="check", account="\x85" + ACCOUNT), "control character"),
        ]
        for params, word in cases:
            a = await c.send(params)
            assert (a.status, a.result) == (200, 300), (params, a.raw)
            assert word in a.elements["comment"], (word, a.raw)
        # the txn_id is echoed when there is one
        a = await c.send([("command", "refund"), ("txn_id", "5"), ("account", ACCOUNT), ("sum", "1")])
        assert a.elements["osmp_txn_id"] == "5"
        # a missing account is a wrong account
        a = await c.send([("command", "check"), ("txn_id", "12"), ("sum", "10.45")])
        assert a.result == 4
        # the same parameter in the query and in the form
        r = await env.http.post(
            "/osmp/qiwi?txn_id=13",
            data={"command": "check", "txn_id": "13", "account": ACCOUNT, "sum": "10.45"},
            headers=basic("qiwi", PASSWORD),
        )
        assert parse_answer(r).result == 300
        # a body that is not a form
        r = await env.http.post(
            "/osmp/qiwi",
            content=b"<request/>",
            headers={**basic("qiwi", PASSWORD), "content-type": "text/xml"},
        )
        assert (r.status_code, parse_answer(r).result) == (200, 300)
        payments, entries, _ = await stored(env)
        assert (payments, entries) == before[:2]  # malformed pays are recorded as exchanges only
        async with env.hub.read_sessions() as s:
            rows = (await s.scalars(select(InboundExchange))).all()
        assert rows and all(r.payment_id is None and r.result == 300 for r in rows)


# --- pay ----------------------------------------------------------------------------------------------------


async def test_pay_repeat_and_conflict_credit_once_and_deliver(db_url: str) -> None:
    async with hub_env(db_url, catalog=catalog()) as env:
        c = qiwi(env)
        first = await c.pay("5001", amount="150.50")
        assert (first.status, first.result, first.elements["osmp_txn_id"]) == (200, 0, "5001")
        assert first.elements["sum"] == "150.50"
        p = await payment(env, first.prv_txn)
        assert (p.external_id, p.account, p.amount, p.currency) == ("5001", ACCOUNT, 15050, "RUB")
        assert p.fee == 0  # no fee tariff for the gateway's channel group

        # the same pay again (GET and POST): the original outcome, the same prv_txn, nothing new
        again = await c.pay("5001", amount="150.50", txn_date="20260315150000")
        assert (again.result, again.prv_txn, again.elements["sum"]) == (0, first.prv_txn, "150.50")
        posted = await qiwi(env, "POST").pay("5001", amount="150.50")
        assert (posted.result, posted.prv_txn) == (0, first.prv_txn)
        # the same amount written differently is the same payment
        assert (await c.pay("5001", amount="150.5")).prv_txn == first.prv_txn

        # a repeat with another sum or account is refused with 300, nothing stored (counted once the
        # payment is final: its delivery writes an entry of its own)
        await wait_status(env, first.prv_txn)
        before = await stored(env)
        other_sum = await c.pay("5001", amount="150.51")
        assert other_sum.result == 300 and first.prv_txn in other_sum.elements["comment"]
        assert other_sum.prv_txn is None
        assert (await c.pay("5001", account="9007654321", amount="150.50")).result == 300
        # ... also when the other sum breaks a limit
        assert (await c.pay("5001", amount="9999.00")).result == 300
        assert (await stored(env))[:2] == before[:2]

        async with env.hub.read_sessions() as s:
            n = await s.scalar(select(func.count()).select_from(Payment).where(Payment.external_id == "5001"))
            accepts = await s.scalar(
                select(func.count()).select_from(JournalEntry).where(JournalEntry.kind == "payment_accept")
            )
        assert (n, accepts) == (1, 1)

        # delivered to the emulated provider, once
        d = await wait_status(env, first.prv_txn)
        assert d["status"] == "succeeded", d
        assert d["channel"] == "qiwi"
        assert env.succeeded_at(str(p.id)) == ["p1"]
        assert env.pay_calls("p1") == {str(p.id): 1}
        # after delivery a repeat still answers the original outcome
        assert (await c.pay("5001", amount="150.50")).prv_txn == first.prv_txn

        # the payment's details show every inbound request and our answer
        inbound = d["inbound"]
        assert [e["result"] for e in inbound] == [0, 0, 0, 0]
        assert inbound[0]["request"]["sum"] == "150.50" and inbound[0]["request"]["txn_id"] == "5001"
        assert inbound[0]["gateway"] == "qiwi" and inbound[1]["method"] == "GET"
        assert inbound[2]["method"] == "POST"
        assert f"<prv_txn>{p.id}</prv_txn>" in inbound[0]["response"]
        assert inbound[0]["remote_addr"] == "127.0.0.1"
        async with env.hub.read_sessions() as s:
            ledger = await verify_ledger(s)
        assert ledger.balanced, ledger


async def test_pay_refusals_and_temporary_error(db_url: str) -> None:
    async with hub_env(db_url, catalog=catalog()) as env:
        c = qiwi(env)
        assert (await c.pay("6001", account="12")).result == 4
        assert (await c.pay("6002", amount="5.00")).result == 241
        assert (await c.pay("6003", amount="6000.00")).result == 242
        assert (await c.pay("6004", service="water", account=WATER_ACCOUNT)).result == 7
        assert (await c.pay("6005", note="x")).result == 31
        assert (await stored(env))[0] == 0

        # no provider can take the payment now: 1, the payment system repeats it later
        x = cyber(env)
        await env.http.post("/api/v1/admin/providers/p2/disable", headers=env.admin)
        a = await x.pay("6010", account=WATER_ACCOUNT, prv="water")
        assert (a.result, a.prv_txn) == (1, None)
        await env.http.post("/api/v1/admin/providers/p2/enable", headers=env.admin)
        a = await x.pay("6010", account=WATER_ACCOUNT, prv="water")
        assert a.result == 90 and a.prv_txn is not None  # cyber answers the final outcome
        assert (await stored(env))[0] == 1


async def test_login_password_as_parameters_are_masked_in_details(db_url: str) -> None:
    async with hub_env(db_url, catalog=catalog()) as env:
        c = OsmpClient(env, "qiwi", method="POST")
        a = await c.pay("7001", login="qiwi", password=PASSWORD)
        assert a.result == 0
        d = await env.details(int(a.prv_txn or 0))
        req = d["inbound"][0]["request"]
        assert req["login"] == "qiwi" and req["password"] == "***"
        assert PASSWORD not in str(d)
        # a wrong password parameter is refused
        bad = await c.pay("7002", login="qiwi", password="wrong-password")
        assert bad.status == 401


# --- pay_result: final -----------------------------------------------------------------------------------


async def test_final_result_mode_answers_90_until_delivered(db_url: str) -> None:
    emus = {"p2": {"accounts": {"87654321": {"pay": "fatal:5:no such subscriber"}}}}
    async with hub_env(db_url, catalog=catalog(), emulators=emus) as env:
        c = cyber(env)
        a = await c.pay("8001", account=WATER_ACCOUNT, prv="water", amount="42.00")
        assert (a.result, a.elements["sum"]) == (90, "42.00")
        assert (await wait_status(env, a.prv_txn))["status"] == "succeeded"
        done = await c.pay("8001", account=WATER_ACCOUNT, prv="water", amount="42.00")
        assert (done.result, done.prv_txn) == (0, a.prv_txn)
        # another extra field value is another payment: refused
        assert (
            await c.pay("8001", account=WATER_ACCOUNT, prv="water", amount="42.00", period="2026-01")
        ).result == 300
        assert (await c.pay("8001", account=WATER_ACCOUNT, prv="topup", amount="42.00")).result == 300

        b = await c.pay("8002", account="87654321", prv="water", amount="42.00")
        assert b.result == 90
        assert (await wait_status(env, b.prv_txn))["status"] == "failed"
        failed = await c.pay("8002", account="87654321", prv="water", amount="42.00")
        assert (failed.result, failed.prv_txn) == (5, b.prv_txn)
        assert "no such subscriber" in failed.elements["comment"]
        async with env.hub.read_sessions() as s:
            assert (await verify_ledger(s)).balanced


# --- authentication and addresses --------------------------------------------------------------------------


async def test_wrong_auth_and_address_are_refused_and_store_nothing(db_url: str) -> None:
    cat = catalog()
    cat["channels"].append({"code": "far", "name": "Far away", "kind": "gateway"})
    cat["gateways"].append(
        {"code": "far", "name": "Far", "services": ["topup"], "allow_ips": ["10.0.0.0/8", "192.0.2.1"]}
    )
    async with hub_env(db_url, catalog=cat, run_workers=False) as env:
        before = await stored(env)
        nobody = OsmpClient(env, "qiwi")
        r = await env.http.get("/osmp/qiwi", params={"command": "pay", "txn_id": "1", "account": ACCOUNT})
        a = parse_answer(r)
        assert (a.status, a.result, a.elements["osmp_txn_id"]) == (401, 300, "1")
        assert r.headers["www-authenticate"].startswith("Basic ")
        assert (await nobody.pay("2", headers=basic("qiwi", "wrong-password"))).status == 401
        assert (await nobody.pay("3", headers=basic("other", PASSWORD))).status == 401
        assert (await nobody.pay("4", headers={"Authorization": "Basic !!!"})).status == 401
        # a certificate header cannot replace the password
        assert (await nobody.pay("5", headers={CERT_HEADER: FINGERPRINT})).status == 401

        assert (await cyber(env, "00:11").pay("6", prv="topup")).status == 401
        assert (await OsmpClient(env, "cyber").pay("7", prv="topup")).status == 401
        # fingerprints compare without case and colons
        ok = await cyber(env, "abcdef0123456789").pay("8", prv="topup")
        assert (ok.status, ok.result) == (200, 90)

        far = await OsmpClient(env, "far").pay("9")
        assert (far.status, far.result) == (403, 300)
        unknown = parse_answer(await env.http.get("/osmp/nope", params={"txn_id": "10"}))
        assert (unknown.status, unknown.result, unknown.elements["osmp_txn_id"]) == (404, 300, "10")
        payments, entries, exchanges = await stored(env)
        assert (payments, entries, exchanges) == (before[0] + 1, before[1] + 1, before[2] + 1)


async def test_proxy_headers_are_believed_only_from_trusted_proxies(db_url: str) -> None:
    cat = catalog()
    cat["channels"].append({"code": "behind", "name": "Behind a proxy", "kind": "gateway"})
    cat["gateways"].append(
        {
            "code": "behind",
            "name": "Behind a proxy",
            "services": ["topup"],
            "allow_ips": ["203.0.113.0/24"],
            "trusted_proxies": ["127.0.0.1"],
        }
    )
    async with hub_env(db_url, catalog=cat) as env:
        b = OsmpClient(env, "behind")
        # the proxy (127.0.0.1) says who the client is
        assert (await b.check("1", headers={"X-Forwarded-For": "203.0.113.7"})).status == 200
        assert (await b.check("2", headers={"X-Forwarded-For": "203.0.113.7, 127.0.0.1"})).status == 200
        assert (await b.check("3", headers={"X-Forwarded-For": "198.51.100.1"})).status == 403
        assert (await b.check("4", headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.1"})).status == 403
        assert (await b.check("5", headers={"X-Forwarded-For": "garbage"})).status == 403
        assert (await b.check("6")).status == 403  # the proxy itself is not the payment system

        # the certificate header works from the trusted proxy ...
        c = cyber(env)
        assert (await c.check("7", prv="topup")).result == 0
        # ... and not once the proxy is elsewhere: the same header from 127.0.0.1 is not believed
        doc = copy.deepcopy(cat["gateways"][1])
        doc["trusted_proxies"] = ["10.20.30.40/32"]
        r = await admin_put_gateway(env, doc)
        assert r.status_code == 200 and r.json()["change"] == "updated", r.text
        assert (await c.check("8", prv="topup")).status == 401
        # and the forwarded address is not believed either
        r = await env.http.get("/api/v1/admin/gateways/behind", headers=env.admin)
        behind = r.json()
        behind["trusted_proxies"] = ["10.20.30.40/32"]
        assert (await admin_put_gateway(env, behind)).status_code == 200
        assert (await b.check("9", headers={"X-Forwarded-For": "203.0.113.7"})).status == 403


# --- several gateways --------------------------------------------------------------------------------


async def test_two_gateways_side_by_side(db_url: str) -> None:
    async with hub_env(db_url, catalog=catalog()) as env:
        q, c = qiwi(env), cyber(env)
        # the same txn_id at two payment systems is two payments
        a = await q.pay("9001", amount="20.00")
        b = await c.pay("9001", amount="20.00", prv="topup")
        assert (a.result, b.result) == (0, 90)
        assert a.prv_txn != b.prv_txn
        pa, pb = await payment(env, a.prv_txn), await payment(env, b.prv_txn)
        async with env.hub.read_sessions() as s:
            channels = {g.code: g.channel_id for g in (await s.scalars(select(InboundGateway))).all()}
        assert (pa.channel_id, pb.channel_id) == (channels["qiwi"], channels["cyber"])
        # each with its own rules
        assert (await q.pay("9002", amount="6000.00")).result == 242  # qiwi's limit
        big = await c.pay("9002", amount="6000.00", prv="topup")
        assert big.result == 90  # no such limit at cyber
        assert (await q.pay("9003", service="water", account=WATER_ACCOUNT)).result == 7
        assert (await c.pay("9003", prv="water", account=WATER_ACCOUNT)).result == 90
        # cyber names the service with prv; a "service" parameter there is an unknown extra field
        assert (await c.check("9004", prv="topup", service="topup")).result == 31
        # the credentials of one gateway do not open the other
        assert (await OsmpClient(env, "cyber", headers=basic("qiwi", PASSWORD)).check("9005")).status == 401
        assert (await OsmpClient(env, "qiwi", headers={CERT_HEADER: FINGERPRINT}).check("9006")).status == 401
        for pid in (a.prv_txn, b.prv_txn, big.prv_txn):
            assert (await wait_status(env, pid))["status"] == "succeeded"


# --- catalog file and admin API ----------------------------------------------------------------------


async def test_catalog_export_apply_and_admin_api(db_url: str) -> None:
    from paymux.catalog.file import apply_catalog, dump_yaml, export_catalog, load_yaml
    from paymux.catalog.service import CatalogError

    async with hub_env(db_url, catalog=catalog(), run_workers=False) as env:
        async with env.hub.sessions() as s:
            text = dump_yaml(await export_catalog(s))
            assert "gateways:" in text and PASSWORD not in text and "$argon2id$" not in text
            assert "password_hash: '***'" in text  # masked; applying it keeps the stored hash
            report = await apply_catalog(s, load_yaml(text), actor="test")
            assert not report.changed, report.lines()
            text = dump_yaml(await export_catalog(s, with_secrets=True))
            assert PASSWORD not in text and "$argon2id$" in text  # only ever the hash
            report = await apply_catalog(s, load_yaml(text), actor="test")
            assert not report.changed, report.lines()
            # the same plain password again changes nothing; a new one does
            report = await apply_catalog(s, {"gateways": catalog()["gateways"][:1]}, actor="test")
            assert not report.changed
            doc = catalog()["gateways"][0]
            doc["auth"]["password"] = "a-new-password"
            report = await apply_catalog(s, {"gateways": [doc]}, actor="test")
            assert report.lines() == ["updated gateway qiwi"]
            await s.rollback()

            bad = copy.deepcopy(catalog()["gateways"][0])
            bad["channel"] = "term"
            with pytest.raises(CatalogError, match="kind 'terminal'"):
                await apply_catalog(s, {"gateways": [bad]}, actor="test")
            await s.rollback()
            bad = copy.deepcopy(catalog()["gateways"][0])
            bad["services"] = ["topup", "ghost"]
            with pytest.raises(CatalogError, match="ghost"):
                await apply_catalog(s, {"gateways": [bad]}, actor="test")
            await s.rollback()
            bad = copy.deepcopy(catalog()["gateways"][1])
            bad["code"] = "cyber2"
            with pytest.raises(CatalogError, match="already belongs to gateway 'cyber'"):
                await apply_catalog(s, {"gateways": [bad]}, actor="test")
            await s.rollback()
        for mutate, message in (
            (lambda g: g.update(trusted_proxies=[]), "trusted_proxies"),
            (lambda g: g.update(allow_ips=["10.0.0.0/33"]), "allow_ips"),
            (lambda g: g.update(default_service="ghost"), "default_service"),
            (lambda g: g.update(service_param="sum"), "service_param"),
            (lambda g: g.update(limits={"RUB": {"min": 5.0}}), "float"),
        ):
            doc = copy.deepcopy(catalog()["gateways"][1])
            mutate(doc)
            with pytest.raises(CatalogError, match=message):
                load_yaml(dump_yaml_dict({"gateways": [doc]}))

        r = await env.http.get("/api/v1/admin/gateways", headers=env.admin)
        assert r.status_code == 200, r.text
        listed = {g["code"]: g for g in r.json()}
        assert set(listed) == {"qiwi", "cyber"}
        assert listed["qiwi"]["auth"]["password_hash"] == "***"
        # sending the masked document back keeps the password
        listed["qiwi"]["limits"] = {"RUB": {"min": "1.00", "max": "100.00"}}
        r = await admin_put_gateway(env, listed["qiwi"])
        assert r.json() == {"code": "qiwi", "change": "updated"}, r.text
        c = qiwi(env)
        assert (await c.check("1", amount="100.01")).result == 242  # the new limit is in force at once
        assert (await c.check("2", amount="5.00")).result == 0
        r = await env.http.put(
            "/api/v1/admin/gateways/qiwi",
            json={**listed["qiwi"], "services": ["ghost"], "default_service": None},
            headers=env.admin,
        )
        assert r.status_code == 422 and "ghost" in r.json()["detail"]
        r = await env.http.put("/api/v1/admin/gateways/other", json=listed["qiwi"], headers=env.admin)
        assert r.status_code == 422
        assert (await env.http.get("/api/v1/admin/gateways/nope", headers=env.admin)).status_code == 404
        assert (await env.http.get("/api/v1/admin/gateways")).status_code == 401
        # disabled through the admin API
        r = await admin_put_gateway(env, {**listed["qiwi"], "enabled": False})
        assert r.json()["change"] == "updated"
        assert (await c.check("3", amount="5.00")).result == 8


def dump_yaml_dict(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data)


def test_xml_escapes_and_drops_what_xml_cannot_carry() -> None:
    from paymux.gateways.osmp.xml import response

    body = response(txn_id="1", result=300, comment="a <b> & 'c' \x00\x07ok", prv_txn=None, sum=None)
    root = ET.fromstring(body)
    assert [c.tag for c in root] == ["osmp_txn_id", "result", "comment"]
    assert root.findtext("comment") == "a <b> & 'c' ok"
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')


async def test_txn_date_is_parsed_strictly() -> None:
    from paymux.gateways.osmp.codes import OsmpRefusal
    from paymux.gateways.osmp.params import parse_txn_date

    assert parse_txn_date("20240229235959") == dt.datetime(2024, 2, 29, 23, 59, 59)
    for bad in (
        "20260229000000",
        "2024022923595",
        "202402292359590",
        "20240229 23595",
        "２０２４０２２９２３５９５９",
    ):
        with pytest.raises(OsmpRefusal):
            parse_txn_date(bad)


def test_migration_0002_upgrades_and_downgrades(tmp_path: Any) -> None:
    from alembic import command
    from sqlalchemy import create_engine, inspect

    from paymux.db.migrate import alembic_config, upgrade

    path = tmp_path / "m.db"
    upgrade(f"sqlite+aiosqlite:///{path}", "0002")

    def tables() -> set[str]:
        eng = create_engine(f"sqlite:///{path}")
        try:
            return set(inspect(eng).get_table_names())
        finally:
            eng.dispose()

    assert {"inbound_gateways", "inbound_exchanges"} <= tables()
    command.downgrade(alembic_config(f"sqlite+aiosqlite:///{path}"), "0001")
    assert not {"inbound_gateways", "inbound_exchanges"} & tables()
    assert "payments" in tables()
    upgrade(f"sqlite+aiosqlite:///{path}", "0002")
    assert {"inbound_gateways", "inbound_exchanges"} <= tables()
