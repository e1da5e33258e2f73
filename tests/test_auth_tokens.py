"""Personal API tokens on the admin API: shown once, stored hashed, permissions, expiry, revocation, scope."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import Depends
from sqlalchemy import select, update

from harness import hub_env
from paymux.auth.admin_api import require_api
from paymux.auth.keys import digest, issue_admin_token
from paymux.auth.principal import Principal
from paymux.auth.tokens import issue_token
from paymux.auth.user_models import ApiToken, Organization, User
from paymux.catalog.models import Agent
from test_backoffice_support import add_user, bo_app, form_token, login


async def test_token_created_on_the_account_page_carries_the_users_permissions(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("op", "operator")
        await login(bo.http, "op")
        page = await bo.http.get("/backoffice/account")
        r = await bo.http.post(
            "/backoffice/account/tokens",
            data={"csrf_token": form_token(page.text), "name": "ci", "days": "30"},
        )
        token = re.search(r'id="new-token">([^<]+)<', r.text).group(1)  # type: ignore[union-attr]
        assert token.startswith("pmx_usr_")
        assert token not in (await bo.http.get("/backoffice/account")).text  # shown once
        async with bo.hub.read_sessions() as s:
            row = await s.scalar(select(ApiToken))
            assert row is not None and row.token_hash == digest(token) and row.prefix == token[:12]
            assert dt.timedelta(days=29) < row.expires_at - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)
        auth = {"Authorization": f"Bearer {token}"}
        assert (await bo.http.get("/api/v1/admin/providers", headers=auth)).status_code == 200
        r = await bo.http.post("/api/v1/admin/tariffs", headers=auth, json={})
        assert r.status_code == 403 and r.json()["permission"] == "tariffs.write"
        # revoked on the account page: refused at once
        page = await bo.http.get("/backoffice/account")
        r = await bo.http.post(
            f"/backoffice/account/tokens/{row.id}/revoke", data={"csrf_token": form_token(page.text)}
        )
        assert r.status_code == 303
        assert (await bo.http.get("/api/v1/admin/providers", headers=auth)).status_code == 401


async def test_expired_tokens_disabled_users_and_ip_rules(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        user = await bo.user("ops2", "operator")
        async with bo.hub.sessions() as s:
            u = await s.get(User, user.id)
            assert u is not None
            expired, _ = await issue_token(s, u, "old", dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
            live, _ = await issue_token(s, u, "new", None)
            await s.commit()
        get = lambda t: bo.http.get("/api/v1/admin/providers", headers={"Authorization": f"Bearer {t}"})  # noqa: E731
        assert (await get(expired)).status_code == 401
        assert (await get(live)).status_code == 200
        async with bo.hub.sessions() as s:
            await s.execute(update(User).values(allowed_networks=["192.0.2.0/24"]))
            await s.commit()
        assert (await get(live)).status_code == 403
        async with bo.hub.sessions() as s:
            await s.execute(update(User).values(allowed_networks=[], enabled=False))
            await s.commit()
        assert (await get(live)).status_code == 401


async def test_agent_users_see_only_their_channels_and_payments(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        term = (await env.pay("term")).json()
        web = (await env.pay("web")).json()
        async with env.hub.sessions() as s:
            agent = await s.scalar(select(Agent).where(Agent.code == "dealer"))
            assert agent is not None
            s.add(Organization(code="dealer-org", name="Dealer", kind="agent", agent_id=agent.id))
            await s.commit()
        for name, role, org in (("dealer1", "agent", "dealer-org"), ("support1", "support", None)):
            u = await add_user(env.hub, name, role, org=org)
            async with env.hub.sessions() as s:
                row = await s.get(User, u.id)
                assert row is not None
                env.extra[name], _ = await issue_token(s, row, "t", None)
                await s.commit()
        dealer = {"Authorization": f"Bearer {env.extra['dealer1']}"}
        support = {"Authorization": f"Bearer {env.extra['support1']}"}
        r = await env.http.get("/api/v1/admin/payments", headers=dealer)
        assert [p["id"] for p in r.json()["items"]] == [term["id"]]
        r = await env.http.get("/api/v1/admin/payments", headers=support)
        assert sorted(p["id"] for p in r.json()["items"]) == sorted([term["id"], web["id"]])
        assert (await env.http.get(f"/api/v1/admin/payments/{web['id']}", headers=dealer)).status_code == 404
        assert (await env.http.get(f"/api/v1/admin/payments/{term['id']}", headers=dealer)).status_code == 200
        r = await env.http.get("/api/v1/admin/channels", headers=dealer)
        assert [c["code"] for c in r.json()] == ["term"]
        assert (await env.http.get("/api/v1/admin/providers", headers=dealer)).status_code == 403


async def test_require_api_declares_a_routes_permission(db_url: str) -> None:
    async with bo_app(db_url) as bo:

        @bo.app.get("/api/v1/admin/zz-cash")
        async def cash(me: Annotated[Principal, Depends(require_api("balances.read"))]) -> dict[str, str]:
            return {"who": me.audit_name}

        tokens = {}
        for name, role in (("cashier1", "cashier"), ("support1", "support")):
            user = await bo.user(name, role)
            async with bo.hub.sessions() as s:
                u = await s.get(User, user.id)
                assert u is not None
                tokens[name], _ = await issue_token(s, u, "t", None)
                await s.commit()
        async with bo.hub.sessions() as s:
            tokens["legacy"] = await issue_admin_token(s, "ops")
            await s.commit()
        get = lambda t: bo.http.get("/api/v1/admin/zz-cash", headers={"Authorization": f"Bearer {t}"})  # noqa: E731
        r = await get(tokens["cashier1"])
        assert r.status_code == 200 and r.json()["who"].startswith("user:cashier1 (token pmx_usr_")
        assert (await get(tokens["support1"])).status_code == 403
        assert (await get(tokens["legacy"])).json() == {"who": "admin:ops"}
        assert (await bo.http.get("/api/v1/admin/zz-cash")).status_code == 401
