"""Helpers for the invoice tests (no tests here): a hub on loopback with a biller and its API key."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from harness import Env, hub_env

INV = "/api/v1/invoices"
AB = "/api/v1/admin/billers"


def invoice(number: str = "INV-1", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "number": number,
        "amount": "120.50",
        "currency": "EUR",
        "due_date": "2030-01-31",
        "payer": {
            "name": "Ion Popescu",
            "email": "ion@example.md",
            "phone": "+37369123456",
            "language": "ro",
        },
        "description": "Electricity, December",
    }
    body.update(over)
    return body


@dataclass
class Billing:
    env: Env
    key: str
    code: str = "power"

    @property
    def http(self) -> httpx.AsyncClient:
        return self.env.http

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def post(self, body: Any) -> httpx.Response:
        return await self.http.post(INV, json=body, headers=self.h)

    async def get(self, number: str) -> dict[str, Any]:
        r = await self.http.get(f"{INV}/{number}", headers=self.h)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out


@contextlib.asynccontextmanager
async def billing_env(db_url: str, **biller: Any) -> AsyncIterator[Billing]:
    async with hub_env(db_url, run_workers=False) as env:
        r = await env.http.post(AB, json={"code": "power", "name": "Power Co", **biller}, headers=env.admin)
        assert r.status_code == 201, r.text
        r = await env.http.post(f"{AB}/power/keys", json={"name": "billing"}, headers=env.admin)
        assert r.status_code == 201, r.text
        yield Billing(env, r.json()["key"])
