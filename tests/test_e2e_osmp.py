"""End to end: payments through the hub to a provider speaking OSMP (its emulator on loopback)."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from harness import BASE_CATALOG, Env
from harness import test_settings as hub_settings
from paymux.auth.keys import issue_admin_token, issue_channel_key
from paymux.catalog.file import apply_catalog
from paymux.ledger.service import verify_ledger
from paymux.ledger.topups import record_topup
from paymux.providers.emulators.behaviour import BehaviourEngine, EmulatorConfig
from paymux.providers.emulators.jsonhttp import create_app as jsonhttp_app
from paymux.providers.emulators.osmp import create_app as osmp_app
from paymux.providers.emulators.server import run_emulator
from paymux.runtime import Hub
from paymux.server import running_hub

PASSWORD = "osmp-Pa55word"


@contextlib.asynccontextmanager
async def osmp_env(db_url: str, osmp: dict[str, Any] | None = None, **settings: Any) -> AsyncIterator[Env]:
    """The harness catalog with p1 on OSMP (POST, basic auth) and p2, p3 on JSON/HTTP."""
    cat = copy.deepcopy(BASE_CATALOG)
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
                urls[code] = await stack.enter_async_context(run_emulator(osmp_app(engine=engine))) + "/"
                p["protocol"] = "osmp"
                p["config"] = {
                    "url": urls[code],
                    "method": "POST",
                    "username": "hub",
                    "password": PASSWORD,
                    "timeout": "1",
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
            yield Env(hub, base, http, keys, token, engines, urls)
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
        [exchange] = attempt["exchanges"]
        assert exchange["request"].startswith(f"POST {env.urls['p1']}")
        assert "Authorization: Basic ***" in exchange["request"]
        assert f"command=pay&txn_id={pid}&txn_date=" in exchange["request"]
        assert "sum=150.45" in exchange["request"]
        assert "<result>0</result>" in exchange["response"]
        assert f"<prv_txn>{taken.provider_txn_id}</prv_txn>" in exchange["response"]
        assert exchange["status_code"] == 200
        assert PASSWORD not in json.dumps(d)  # the password is masked everywhere in the details
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
        assert "<result>7</result>" in first["exchanges"][0]["response"]
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
        assert "command=pay" in d["attempts"][1]["exchanges"][0]["request"]
        await _ledger_ok(env)
