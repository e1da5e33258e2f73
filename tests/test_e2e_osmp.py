"""End to end: payments through the hub to a provider speaking OSMP (its emulator on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from harness import BASE_CATALOG, Env
from harness import test_settings as hub_settings
from paymux.auth.keys import issue_admin_token, issue_channel_key
from paymux.catalog.file import apply_catalog
from paymux.ledger.service import verify_ledger
from paymux.ledger.topups import record_topup
from paymux.payments.check_ids import is_check_id
from paymux.providers import osmp as osmp_protocol
from paymux.providers.emulators.behaviour import BehaviourEngine, EmulatorConfig
from paymux.providers.emulators.jsonhttp import create_app as jsonhttp_app
from paymux.providers.emulators.osmp import create_app as osmp_app
from paymux.providers.emulators.server import run_emulator
from paymux.runtime import Hub
from paymux.server import running_hub

PASSWORD = "osmp-Pa55word"


@contextlib.asynccontextmanager
async def osmp_env(
    db_url: str,
    osmp: dict[str, Any] | None = None,
    *,
    p1: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[Env]:
    """The harness catalog (or ``catalog``) with p1 on OSMP (POST, basic auth, more ``p1`` config)
    and p2, p3 on JSON/HTTP. ``env.extra["osmp"]`` is p1's emulator state (checks, commands)."""
    cat = copy.deepcopy(catalog or BASE_CATALOG)
    extra: dict[str, Any] = {}
    hub = Hub(hub_settings(db_url, **settings))
    async with contextlib.AsyncExitStack() as stack:
        engines: dict[str, BehaviourEngine] = {}
        urls: dict[str, str] = {}
        for p in cat["providers"]:
            code = p["code"]
            if code == "p1":
                engine = BehaviourEngine(
                    EmulatorConfig.model_validate({"token": f"hub:{PASSWORD}", **(osmp or {})})
                )
                app = osmp_app(engine=engine)
                extra["osmp"] = app.state.osmp
                urls[code] = await stack.enter_async_context(run_emulator(app)) + "/"
                p["protocol"] = "osmp"
                p["config"] = {
                    "url": urls[code],
                    "method": "POST",
                    "username": "hub",
                    "password": PASSWORD,
                    "timeout": "1",
                    **(p1 or {}),
                }
            else:
                engine = BehaviourEngine(EmulatorConfig())
                urls[code] = await stack.enter_async_context(run_emulator(jsonhttp_app(engine=engine)))
                p["config"] = {"url": urls[code], "timeout": "1"}
            engines[code] = engine
        async with hub.sessions() as session:
            await apply_catalog(session, cat, actor="test")
            await session.commit()
        hub.catalog_changed()
        keys: dict[str, str] = {}
        async with hub.sessions() as session:
            await record_topup(hub, session, "p1", "RUB", 100_000_00, reference="initial", actor="test")
            for ch in cat["channels"]:
                keys[ch["code"]] = await issue_channel_key(session, ch["code"])
            token = await issue_admin_token(session, "test")
            await session.commit()
        base = await stack.enter_async_context(running_hub(hub, run_workers=True))
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=20))
        try:
            yield Env(hub, base, http, keys, token, engines, urls, extra=extra)
        finally:
            await hub.close()


async def _ledger_ok(env: Env) -> None:
    async with env.hub.read_sessions() as s:
        check = await verify_ledger(s)
    assert check.balanced, check


async def test_payment_over_osmp_succeeds_and_details_show_the_exchange(db_url: str) -> None:
    async with osmp_env(db_url, {"provider_txn_prefix": "OSMP-"}) as env:
        r = await env.pay(amount="150.45")
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        final = await env.wait_final(pid)
        assert (final["status"], final["provider"]) == ("succeeded", "p1"), final
        [taken] = env.emulators["p1"].transactions()
        assert (taken.txn_id, taken.amount, taken.status) == (str(pid), 150_45, "succeeded")
        assert final["provider_txn_id"] == taken.provider_txn_id
        d = await env.details(pid)
        [attempt] = d["attempts"]
        assert (attempt["provider"], attempt["step"], attempt["outcome"], attempt["code"]) == (
            "p1",
            "pay",
            "ok",
            "0",
        )
        assert attempt["message"] == "OSMP result 0: OK (ok); provider says: OK"
        assert attempt["provider_txn_id"] == taken.provider_txn_id
        check, exchange = attempt["exchanges"]  # the check that registers the payment, then the pay
        assert (check["step"], exchange["step"]) == ("check", "pay")
        assert f"command=check&txn_id={pid}&account=" in check["request"]
        assert exchange["request"].startswith(f"POST {env.urls['p1']}")
        assert "Authorization: Basic ***" in exchange["request"]
        assert f"command=pay&txn_id={pid}&txn_date=" in exchange["request"]
        assert "sum=150.45" in exchange["request"]
        assert "<result>0</result>" in exchange["response"]
        assert f"<prv_txn>{taken.provider_txn_id}</prv_txn>" in exchange["response"]
        assert exchange["status_code"] == 200
        assert PASSWORD not in json.dumps(d)  # the password is masked everywhere in the details
        assert env.extra["osmp"].commands == {str(pid): ["check", "pay"]}  # registered, then confirmed
        await _ledger_ok(env)


async def test_fatal_osmp_code_fails_over_to_the_next_provider(db_url: str) -> None:
    osmp = {"accounts": {"9001234567": {"pay": "fatal:7:payments to this account are forbidden"}}}
    async with osmp_env(db_url, osmp) as env:
        pid = (await env.pay()).json()["id"]
        final = await env.wait_final(pid)
        assert (final["status"], final["provider"]) == ("succeeded", "p2"), final
        assert env.succeeded_at(str(pid)) == ["p2"]
        d = await env.details(pid)
        assert d["failovers"] == 1 and "failover from p1" in d["route_reason"]
        first, second = d["attempts"]
        assert (first["provider"], first["outcome"], first["code"]) == ("p1", "fatal", "7")
        assert first["message"] == (
            "OSMP result 7: payment forbidden by the provider (fatal); "
            "provider says: payments to this account are forbidden"
        )
        assert "<result>7</result>" in first["exchanges"][-1]["response"]
        assert (second["provider"], second["outcome"]) == ("p2", "ok")
        assert PASSWORD not in json.dumps(d)
        await _ledger_ok(env)


async def test_temporary_osmp_code_is_retried_with_the_same_txn_id(db_url: str) -> None:
    async with osmp_env(db_url, {"accounts": {"*": {"pay": "temporary_then_ok:2"}}}) as env:
        pid = (await env.pay()).json()["id"]
        final = await env.wait_final(pid)
        assert (final["status"], final["provider"]) == ("succeeded", "p1"), final
        assert env.pay_calls("p1") == {str(pid): 3}
        assert len(env.emulators["p1"].transactions()) == 1
        d = await env.details(pid)
        assert [(a["provider"], a["outcome"], a["code"]) for a in d["attempts"]] == [
            ("p1", "temporary", "1"),
            ("p1", "temporary", "1"),
            ("p1", "ok", "0"),
        ]
        assert "(temporary)" in d["attempts"][0]["message"]
        await _ledger_ok(env)


async def test_lost_osmp_answer_is_settled_by_repeating_pay(db_url: str) -> None:
    osmp = {"accounts": {"*": {"pay": "lost_then_ok"}}, "lost_hold_ms": 5000}
    async with osmp_env(db_url, osmp) as env:
        pid = (await env.pay()).json()["id"]
        final = await env.wait_final(pid)
        assert (final["status"], final["provider"]) == ("succeeded", "p1"), final
        assert env.pay_calls("p1") == {str(pid): 2}  # the original pay and its repeat
        [taken] = env.emulators["p1"].transactions()
        assert final["provider_txn_id"] == taken.provider_txn_id
        assert env.succeeded_at(str(pid)) == ["p1"]
        d = await env.details(pid)
        assert [(a["step"], a["outcome"]) for a in d["attempts"]] == [("pay", "unknown"), ("status", "ok")]
        assert "command=pay" in d["attempts"][1]["exchanges"][-1]["request"]
        await _ledger_ok(env)


# -- account checks: a numeric check id of the hub's own ---------------------------------------------

MAX_PAYMENT_ID = 2**63 - 1
HOLDER = {"9001234567": {"balance": "15.50", "info": {"name": "I. Ivanov"}}}
CHECK = {"service": "topup", "account": "9001234567", "amount": "100.00", "currency": "RUB"}


async def test_account_check_over_osmp_sends_a_numeric_check_id_of_its_own(db_url: str) -> None:
    async with osmp_env(db_url, {"accounts": HOLDER}) as env:
        pid = (await env.pay()).json()["id"]
        assert (await env.wait_final(pid))["status"] == "succeeded"
        answers = [await env.http.post("/api/v1/checks", json=CHECK, headers=env.headers()) for _ in range(2)]
        for r in answers:
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["result"], body["provider"], body["code"]) == ("ok", "p1", "0"), body
            assert body["fields"] == {"name": "I. Ivanov", "balance": "15.50"}
        commands = env.extra["osmp"].commands
        check_ids = [t for t, seen in commands.items() if seen == ["check"]]
        assert len(check_ids) == 2 and len(set(check_ids)) == 2  # one id per check, never reused
        for t in check_ids:  # the protocol's txn_id: digits, at most 20; beyond every payment id
            assert t.isascii() and t.isdigit() and len(t) == 20 and int(t) > MAX_PAYMENT_ID
        assert commands[str(pid)] == ["check", "pay"]


# -- check before pay ------------------------------------------------------------------------------


async def test_a_check_refusal_is_a_definitive_refusal_and_fails_over(db_url: str) -> None:
    osmp = {"accounts": {"9001234567": {"check": "reject:5:account not found"}}}
    async with osmp_env(db_url, osmp) as env:
        pid = (await env.pay()).json()["id"]
        final = await env.wait_final(pid)
        assert (final["status"], final["provider"]) == ("succeeded", "p2"), final
        assert env.pay_calls("p1") == {}  # the pay never went to p1
        assert env.extra["osmp"].commands == {str(pid): ["check"]}
        first, second = (await env.details(pid))["attempts"]
        assert (first["provider"], first["step"], first["outcome"], first["code"]) == (
            "p1",
            "pay",
            "fatal",
            "5",
        )
        assert first["message"].startswith("check before pay: OSMP result 5: account not found (fatal)")
        assert [e["step"] for e in first["exchanges"]] == ["check"]
        assert (second["provider"], second["outcome"]) == ("p2", "ok")
        await _ledger_ok(env)


async def test_a_temporary_check_refusal_is_retried_at_the_same_provider(db_url: str) -> None:
    async with osmp_env(db_url, {"accounts": {"*": {"check": "temporary:1:busy"}}}) as env:
        pid = (await env.pay()).json()["id"]
        deadline = time.monotonic() + 10
        while len(env.extra["osmp"].commands.get(str(pid), [])) < 2:  # refused twice for now
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        env.emulators["p1"].configure(EmulatorConfig.model_validate({"token": f"hub:{PASSWORD}"}))
        final = await env.wait_final(pid)
        assert (final["status"], final["provider"]) == ("succeeded", "p1"), final
        seen = env.extra["osmp"].commands[str(pid)]
        assert seen[-2:] == ["check", "pay"] and set(seen[:-1]) == {"check"}  # the same txn_id each time
        assert env.pay_calls("p1") == {str(pid): 1}
        outcomes = [(a["provider"], a["outcome"]) for a in (await env.details(pid))["attempts"]]
        assert outcomes[-1] == ("p1", "ok") and set(outcomes[:-1]) == {("p1", "temporary")}
        await _ledger_ok(env)


# -- settling a lost answer in another process ------------------------------------------------------


class _Forgetful(dict):  # type: ignore[type-arg]
    """In place of the plug-in's memory of pay requests: as if every status ran in a new process."""

    def __setitem__(self, key: object, value: object) -> None:
        pass

    def move_to_end(self, key: object, last: bool = True) -> None:
        pass


async def test_a_lost_answer_is_settled_by_a_process_that_never_sent_the_pay(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(osmp_protocol, "_remembered", _Forgetful())
    osmp = {"accounts": {"*": {"pay": "lost_then_ok"}}, "lost_hold_ms": 5000}
    async with osmp_env(db_url, osmp) as env:
        pid = (await env.pay()).json()["id"]
        final = await env.wait_final(pid)
        assert (final["status"], final["provider"]) == ("succeeded", "p1"), final
        assert env.pay_calls("p1") == {str(pid): 2}
        assert len(env.emulators["p1"].transactions()) == 1
        d = await env.details(pid)
        assert [(a["step"], a["outcome"]) for a in d["attempts"]] == [("pay", "unknown"), ("status", "ok")]
        await _ledger_ok(env)


# -- OSMP in, OSMP out: an inbound gateway in front of an OSMP provider ------------------------------

GATEWAY_PASSWORD = "qiwi-relay-42"


def relay_catalog(**gateway: Any) -> dict[str, Any]:
    cat = copy.deepcopy(BASE_CATALOG)
    cat["channels"].append({"code": "qiwi", "name": "QIWI", "kind": "gateway"})
    cat["gateways"] = [
        {
            "code": "qiwi",
            "name": "QIWI",
            "services": ["topup"],
            "default_service": "topup",
            "auth": {"login": "qiwi", "password": GATEWAY_PASSWORD},
            **gateway,
        }
    ]
    return cat


async def inbound(env: Env, **params: str) -> ET.Element:
    r = await env.http.get("/osmp/qiwi", params=params, auth=("qiwi", GATEWAY_PASSWORD))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml"), r.text
    return ET.fromstring(r.content)


def fields_of(root: ET.Element) -> dict[str | None, str | None]:
    container = root.find("fields")
    assert container is not None, ET.tostring(root)
    assert [f.tag for f in container] == [f"field{i}" for i in range(1, len(container) + 1)]
    return {f.get("name"): f.text for f in container}


async def test_inbound_check_answers_the_providers_fields_under_a_check_id_of_the_hub(db_url: str) -> None:
    async with osmp_env(db_url, {"accounts": HOLDER}, catalog=relay_catalog()) as env:
        root = await inbound(env, command="check", txn_id="555", account="9001234567", sum="100.00")
        assert [c.tag for c in root] == ["osmp_txn_id", "sum", "result", "comment", "fields"]
        assert (root.findtext("osmp_txn_id"), root.findtext("result")) == ("555", "0")
        assert fields_of(root) == {"name": "I. Ivanov", "balance": "15.50"}
        [(t, seen)] = env.extra["osmp"].commands.items()
        assert seen == ["check"] and is_check_id(t)  # not the payment system's 555


async def test_inbound_check_forwards_the_payment_systems_txn_id_when_asked(db_url: str) -> None:
    catalog = relay_catalog(check_txn_id="upstream")
    async with osmp_env(db_url, {"accounts": HOLDER}, catalog=catalog) as env:
        root = await inbound(env, command="check", txn_id="555", account="9001234567", sum="100.00")
        assert root.findtext("result") == "0"
        assert env.extra["osmp"].commands == {"555": ["check"]}


@pytest.mark.parametrize(("check_txn_id", "provider"), [("own", "p1"), ("upstream", "p2")])
async def test_a_forwarded_check_can_take_a_payments_txn_id_at_the_provider(
    db_url: str, check_txn_id: str, provider: str
) -> None:
    """Why the default is ``own``: the payment system numbers its checks its own way, and its 1 is
    the hub's payment 1 at the provider, which then refuses that payment's check (another account)."""
    async with osmp_env(db_url, catalog=relay_catalog(check_txn_id=check_txn_id)) as env:
        root = await inbound(env, command="check", txn_id="1", account="9001234567", sum="100.00")
        assert root.findtext("result") == "0"
        pid = (await env.pay(account="9007654321")).json()["id"]
        assert pid == 1
        final = await env.wait_final(pid)
        assert (final["status"], final["provider"]) == ("succeeded", provider), final


async def test_inbound_get_info_is_a_get_info_at_the_provider_and_registers_nothing(db_url: str) -> None:
    p1 = {"account_check": "getInfo"}
    async with osmp_env(db_url, {"accounts": HOLDER}, p1=p1, catalog=relay_catalog()) as env:
        root = await inbound(env, command="getInfo", account="9001234567")  # no txn_id, no sum
        assert [c.tag for c in root] == ["result", "comment", "fields"]
        assert root.findtext("result") == "0"
        assert fields_of(root) == {"name": "I. Ivanov", "balance": "15.50"}
        state = env.extra["osmp"]
        assert (state.get_info_calls, state.registered, state.commands) == (1, {}, {})
        # the channel API's account check asks p1 the same way
        r = await env.http.post("/api/v1/checks", json=CHECK, headers=env.headers())
        assert (r.json()["result"], r.json()["fields"]) == ("ok", {"name": "I. Ivanov", "balance": "15.50"})
        assert (state.get_info_calls, state.registered) == (2, {})
        d = await env.http.get("/api/v1/admin/payments", headers=env.admin)
        assert d.status_code == 200 and d.json()["items"] == []  # and the hub stored no payment


async def test_inbound_get_info_with_a_provider_without_get_info_is_a_check_under_a_check_id(
    db_url: str,
) -> None:
    async with osmp_env(db_url, {"accounts": HOLDER}, catalog=relay_catalog()) as env:
        root = await inbound(env, command="getInfo", account="9001234567", sum="100.00", txn_id="77")
        assert [c.tag for c in root] == ["osmp_txn_id", "sum", "result", "comment", "fields"]
        assert (root.findtext("osmp_txn_id"), root.findtext("sum")) == ("77", "100.00")
        [(t, seen)] = env.extra["osmp"].commands.items()
        assert seen == ["check"] and is_check_id(t)
