"""Helpers for the operational back-office screens' tests (no tests here): a hub with emulated
providers serving payments over HTTP, and the back office over ASGI on the same hub."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy import select

from harness import Env, hub_env
from paymux.api.app import create_app
from paymux.auth.user_models import Organization
from paymux.backoffice.settings import BackofficeSettings
from paymux.catalog.models import Agent
from test_backoffice_support import Bo


@contextlib.asynccontextmanager
async def ops_env(db_url: str, **kwargs: Any) -> AsyncIterator[tuple[Env, Bo]]:
    async with hub_env(db_url, **kwargs) as env:
        app = create_app(env.hub)
        app.state.backoffice_settings = BackofficeSettings(cookie_secure=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http:
            yield env, Bo(app, env.hub, http)


async def agent_org(bo: Bo, agent_code: str = "dealer") -> str:
    """An organization of kind agent linked to the catalog agent ``agent_code``; returns its code."""
    async with bo.hub.sessions() as s:
        agent = await s.scalar(select(Agent).where(Agent.code == agent_code))
        assert agent is not None
        s.add(
            Organization(code=f"org-{agent_code}", name=f"{agent_code} org", kind="agent", agent_id=agent.id)
        )
        await s.commit()
    return f"org-{agent_code}"


async def pay_all(env: Env, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Make the payments (each spec: channel plus body fields) and wait until each is final."""
    out = []
    for spec in specs:
        spec = dict(spec)
        channel = spec.pop("channel", "term")
        r = await env.pay(channel, **spec)
        assert r.status_code in (200, 201, 202), r.text
        out.append(await env.wait_final(r.json()["id"], channel))
    return out
