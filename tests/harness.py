"""End-to-end test harness: a running hub over HTTP with emulated providers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from paymux.auth.keys import issue_admin_token, issue_channel_key
from paymux.catalog.file import apply_catalog
from paymux.ledger.topups import record_topup
from paymux.providers.emulators.behaviour import BehaviourEngine, EmulatorConfig
from paymux.providers.emulators.jsonhttp import create_app as jsonhttp_app
from paymux.providers.emulators.server import run_emulator
from paymux.runtime import Hub
from paymux.server import running_hub
from paymux.settings import Settings

FINAL = ("succeeded", "failed", "cancelled")

BASE_CATALOG: dict[str, Any] = {
    "channel_groups": [{"code": "self", "name": "Self-service"}, {"code": "online", "name": "Online"}],
    "agents": [{"code": "dealer", "name": "Dealer"}],
    "providers": [
        {
            "code": "p1",
            "name": "Provider one",
            "protocol": "jsonhttp",
            "config": {"url": "http://127.0.0.1:9"},
            "settlement": "prepaid",
            "overdraft": {"RUB": "0.00"},
            "breaker": {"window_seconds": 60, "min_calls": 4, "failure_rate_percent": 50, "open_seconds": 60},
        },
        {
            "code": "p2",
            "name": "Provider two",
            "protocol": "jsonhttp",
            "config": {"url": "http://127.0.0.1:9"},
            "settlement": "postpaid",
        },
        {
            "code": "p3",
            "name": "Provider three",
            "protocol": "jsonhttp",
            "config": {"url": "http://127.0.0.1:9"},
            "settlement": "postpaid",
        },
    ],
    "channels": [
        {"code": "term", "name": "Terminal", "kind": "terminal", "group": "self", "agent": "dealer"},
        {"code": "web", "name": "Internet bank", "kind": "internet_bank", "group": "online"},
    ],
    "services": [
        {
            "code": "topup",
            "name": "Mobile top-up",
            "currency": "RUB",
            "account_pattern": r"^\d{10}$",
            "min_amount": "1.00",
            "max_amount": "10000.00",
            "route": {
                "strategy": "priority",
                "candidates": [
                    {"provider": "p1", "code": "T1"},
                    {"provider": "p2", "code": "T2"},
                    {"provider": "p3", "code": "T3"},
                ],
            },
        },
    ],
    "tariffs": [
        {
            "kind": "fee",
            "channel_group": "self",
            "currency": "RUB",
            "effective_from": "2026-01-01T00:00:00Z",
            "rule": {"percent": "1", "min": "1.00"},
        },
        {
            "kind": "commission",
            "channel": "term",
            "currency": "RUB",
            "effective_from": "2026-01-01T00:00:00Z",
            "rule": {"percent": "0.5"},
        },
        {
            "kind": "remuneration",
            "provider": "p1",
            "currency": "RUB",
            "effective_from": "2026-01-01T00:00:00Z",
            "rule": {"percent": "1"},
        },
        {
            "kind": "remuneration",
            "provider": "p2",
            "currency": "RUB",
            "effective_from": "2026-01-01T00:00:00Z",
            "rule": {"percent": "2"},
        },
        {
            "kind": "remuneration",
            "provider": "p3",
            "currency": "RUB",
            "effective_from": "2026-01-01T00:00:00Z",
            "rule": {"percent": "3"},
        },
    ],
}


def test_settings(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "retry_base_ms": 50,
        "retry_max_ms": 400,
        "provider_timeout_ms": 700,
        "provider_connect_timeout_ms": 500,
        "lease_seconds": 30,
        "poll_interval_ms": 20,
        "catalog_cache_seconds": 60,
        "workers": 16,
        # the hub's own collection account named by the tests' bank statements (statements_support)
        "invoice_hub_accounts": ["MD24AG000225100013104168"],
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Env:
    hub: Hub
    base: str
    http: httpx.AsyncClient
    keys: dict[str, str]
    admin_token: str
    emulators: dict[str, BehaviourEngine]
    urls: dict[str, str]
    counter: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def headers(self, channel: str = "term") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[channel]}"}

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    async def pay(self, channel: str = "term", **body: Any) -> httpx.Response:
        self.counter += 1
        payload = {
            "external_id": f"ext-{self.counter}",
            "service": "topup",
            "account": "9001234567",
            "amount": "100.00",
            "currency": "RUB",
        }
        payload.update(body)
        return await self.http.post("/api/v1/payments", json=payload, headers=self.headers(channel))

    async def wait_final(self, payment_id: int, channel: str = "term", within: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            r = await self.http.get(f"/api/v1/payments/{payment_id}", headers=self.headers(channel))
            body: dict[str, Any] = r.json()
            if body.get("status") in FINAL or time.monotonic() > deadline:
                return body
            await asyncio.sleep(0.03)

    async def details(self, payment_id: int) -> dict[str, Any]:
        r = await self.http.get(f"/api/v1/admin/payments/{payment_id}", headers=self.admin)
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    def pay_calls(self, provider: str) -> dict[str, int]:
        """Pay requests that reached ``provider``, by txn id (refused ones included)."""
        return dict(self.emulators[provider].ledger.all_pay_calls())

    def succeeded_at(self, txn_id: str) -> list[str]:
        return [
            code
            for code, e in self.emulators.items()
            for t in e.transactions()
            if t.txn_id == txn_id and t.status == "succeeded"
        ]


@contextlib.asynccontextmanager
async def hub_env(
    db_url: str,
    *,
    emulators: dict[str, dict[str, Any]] | None = None,
    catalog: dict[str, Any] | None = None,
    deposits: dict[str, int] | None = None,
    run_workers: bool = True,
    **settings: Any,
) -> AsyncIterator[Env]:
    """A hub serving on loopback, with emulators for p1..p3 (configs by provider code)."""
    cat = copy.deepcopy(catalog or BASE_CATALOG)
    configs = {p["code"]: (emulators or {}).get(p["code"], {}) for p in cat["providers"]}
    hub = Hub(test_settings(db_url, **settings))
    async with contextlib.AsyncExitStack() as stack:
        engines: dict[str, BehaviourEngine] = {}
        urls: dict[str, str] = {}
        for code, cfg in configs.items():
            eng = BehaviourEngine(EmulatorConfig.model_validate(cfg))
            urls[code] = await stack.enter_async_context(run_emulator(jsonhttp_app(engine=eng)))
            engines[code] = eng
        for p in cat["providers"]:
            p["config"] = {"timeout": "1", **p.get("config", {}), "url": urls[p["code"]]}
        async with hub.sessions() as session:
            await apply_catalog(session, cat, actor="test")
            await session.commit()
        hub.catalog_changed()
        keys: dict[str, str] = {}
        async with hub.sessions() as session:
            for code, amount in (deposits if deposits is not None else {"p1": 100_000_00}).items():
                await record_topup(hub, session, code, "RUB", amount, reference="initial", actor="test")
            for ch in cat["channels"]:
                keys[ch["code"]] = await issue_channel_key(session, ch["code"])
            token = await issue_admin_token(session, "test")
            await session.commit()
        base = await stack.enter_async_context(running_hub(hub, run_workers=run_workers))
        http = await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=20))
        try:
            yield Env(hub, base, http, keys, token, engines, urls)
        finally:
            await hub.close()
