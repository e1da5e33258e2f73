"""Helpers for the recurring API tests (no tests here): a hub with two agents' channels and a
customer-facing client."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from harness import BASE_CATALOG, Env, hub_env
from paymux.errors import PROBLEM_BASE

C = "/api/v1/customers"


def catalog() -> dict[str, Any]:
    """The base catalog with a second agent: ``term`` and ``mob`` are the dealer's, ``other`` is
    bank2's, ``web`` has no agent. A ``gas`` service with a required contract field."""
    cat = copy.deepcopy(BASE_CATALOG)
    cat["agents"].append({"code": "bank2", "name": "Second bank"})
    cat["channels"] += [
        {"code": "mob", "name": "Mobile bank", "kind": "mobile_bank", "group": "online", "agent": "dealer"},
        {
            "code": "other",
            "name": "Other bank's app",
            "kind": "mobile_bank",
            "group": "online",
            "agent": "bank2",
        },
    ]
    gas = copy.deepcopy(cat["services"][0])
    gas.update(
        code="gas",
        name="Gas",
        account_pattern=r"^\d{6}$",
        fields=[{"name": "contract", "pattern": r"^C\d{3}$", "required": True}],
    )
    cat["services"].append(gas)
    return cat


@dataclass
class Api:
    env: Env

    @property
    def http(self) -> httpx.AsyncClient:
        return self.env.http

    def h(self, channel: str = "term") -> dict[str, str]:
        return self.env.headers(channel)

    async def put_customer(self, ref: str = "CUST-1", channel: str = "term", **body: Any) -> httpx.Response:
        payload = {"currency": "RUB", "timezone": "Europe/Moscow", "language": "ru", **body}
        return await self.http.put(f"{C}/{ref}", json=payload, headers=self.h(channel))

    async def template(self, ref: str = "CUST-1", channel: str = "term", **body: Any) -> httpx.Response:
        payload = {
            "key": "t1",
            "name": "My phone",
            "service": "topup",
            "account": "9001234567",
            "amount": "300.00",
        }
        payload.update(body)
        return await self.http.post(f"{C}/{ref}/templates", json=payload, headers=self.h(channel))

    async def subscribe(self, ref: str = "CUST-1", channel: str = "term", **body: Any) -> httpx.Response:
        return await self.http.post(f"{C}/{ref}/subscriptions", json=body, headers=self.h(channel))

    async def sub(self, sub_id: int, ref: str = "CUST-1", channel: str = "term") -> dict[str, Any]:
        r = await self.http.get(f"{C}/{ref}/subscriptions/{sub_id}", headers=self.h(channel))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def act(
        self, sub_id: int, action: str, ref: str = "CUST-1", channel: str = "term", **body: Any
    ) -> httpx.Response:
        return await self.http.post(
            f"{C}/{ref}/subscriptions/{sub_id}/{action}", json=body or None, headers=self.h(channel)
        )

    async def scheduled(
        self, key: str = "s1", template_id: int | None = None, **terms: Any
    ) -> dict[str, Any]:
        if template_id is None:
            r = await self.template()
            template_id = r.json()["id"]
        body = {
            "key": key,
            "template_id": template_id,
            "kind": "scheduled",
            "period": "monthly",
            "day_of_month": 5,
        }
        body.update(terms)
        r = await self.subscribe(**body)
        assert r.status_code == 201, r.text
        created: dict[str, Any] = r.json()
        return created


@contextlib.asynccontextmanager
async def recurring_env(db_url: str, **kwargs: Any) -> AsyncIterator[Api]:
    async with hub_env(db_url, catalog=catalog(), run_workers=False, **kwargs) as env:
        yield Api(env)


def problem(r: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    if slug is not None:
        assert body["type"] == PROBLEM_BASE + slug, body
    return body
