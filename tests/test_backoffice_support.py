"""Helpers for the back-office tests (no tests here): an app over ASGI, users, login, form tokens."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from harness import test_settings as hub_settings
from paymux.api.app import create_app
from paymux.auth import sessions as sess
from paymux.auth.permissions import PREDEFINED_ROLES
from paymux.auth.user_models import Organization, Role, User
from paymux.auth.users import create_user, ensure_builtin_roles, ensure_operator_org
from paymux.backoffice.settings import BackofficeSettings
from paymux.runtime import Hub

PASSWORD = "Tr0ub4dor&3-horse-staple"


@dataclass
class Bo:
    app: FastAPI
    hub: Hub
    http: httpx.AsyncClient

    def client(self, base_url: str = "http://testserver") -> httpx.AsyncClient:
        """Another browser (its own cookies) on the same app."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=base_url)

    async def user(
        self,
        username: str,
        role: str = "administrator",
        *,
        org: str | None = None,
        password: str = PASSWORD,
        **attrs: Any,
    ) -> User:
        return await add_user(self.hub, username, role, org=org, password=password, **attrs)

    async def db_user(self, username: str) -> User:
        async with self.hub.sessions() as s:
            u = await s.scalar(select(User).where(User.username == username))
            assert u is not None
            return u


async def add_user(
    hub: Hub,
    username: str,
    role: str = "administrator",
    *,
    org: str | None = None,
    password: str = PASSWORD,
    **attrs: Any,
) -> User:
    async with hub.sessions() as s:
        roles = await ensure_builtin_roles(s)
        r = roles.get(role) or await s.scalar(select(Role).where(Role.code == role))
        assert r is not None, role
        o = (
            await ensure_operator_org(s)
            if org is None
            else await s.scalar(select(Organization).where(Organization.code == org))
        )
        assert o is not None
        u = await create_user(
            s,
            username=username,
            password=password,
            role=r,
            organization=o,
            email=attrs.pop("email", None),
            phone=attrs.pop("phone", None),
        )
        for k, v in attrs.items():
            setattr(u, k, v)
        await s.commit()
        return u


@contextlib.asynccontextmanager
async def bo_app(db_url: str, **settings: Any) -> AsyncIterator[Bo]:
    hub = Hub(hub_settings(db_url))
    app = create_app(hub)
    app.state.backoffice_settings = BackofficeSettings(**{"cookie_secure": False, **settings})
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http:
            yield Bo(app, hub, http)
    finally:
        await hub.close()


def form_token(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


async def post_form(http: httpx.AsyncClient, page: str, action: str, data: dict[str, Any]) -> httpx.Response:
    """Open ``page``, take its CSRF token and post ``data`` to ``action`` (like a browser would)."""
    r = await http.get(page)
    return await http.post(action, data={"csrf_token": form_token(r.text), **data})


async def login(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    return await post_form(
        http, "/backoffice/login", "/backoffice/login", {"username": username, "password": password}
    )


async def session_for(hub: Hub, username: str) -> str:
    """An active session cookie value for ``username`` made directly (for tests of many roles)."""
    async with hub.sessions() as s:
        u = await s.scalar(select(User).where(User.username == username))
        assert u is not None
        raw, _ = await sess.create_session(
            s, u, stage="active", ip="127.0.0.1", user_agent="test", method="password"
        )
        await s.commit()
        return raw


ROLE_CODES = list(PREDEFINED_ROLES)


def flash_of(html: str) -> str:
    """The message the page shows at its top (a kept message: "Saved.", or an error), or ""."""
    found = re.search(r'<p class="(?:flash|error)" id="flash(?:-error)?">(.*?)</p>', html, re.S)
    return found.group(1) if found else ""


async def follow(http: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
    """The page a redirect leads to (opening it shows and drops the message the action kept)."""
    assert response.status_code in (302, 303), (response.status_code, response.text[:300])
    return await http.get(response.headers["location"])
