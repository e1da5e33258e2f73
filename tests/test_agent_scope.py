"""What an agent's users see: their channels' payments as their reports show them, nothing of the
provider side, on every page, export and admin API answer they can reach, over real HTTP and in
headless Chromium; the operator's staff still see all of it.

The provider side is made recognisable: a provider code, name and service code nobody would write,
a fixed remuneration of 37.19 (no fee, commission or total is that), the emulator's URL, the
provider's transaction id, the route reason and the names of provider and revenue accounts. None of
them may appear anywhere in the bytes an agent gets (Excel files are unzipped and searched too).
"""

from __future__ import annotations

import asyncio
import copy
import io
import re
import zipfile
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from browser_support import chromium, needs_chromium, screenshot, serving_backoffice
from browser_support import login as browser_login
from harness import BASE_CATALOG, Env, hub_env
from paymux.api.app import create_app
from paymux.auth.sessions import session_hash
from paymux.auth.tokens import issue_token
from paymux.auth.user_models import User, UserSession
from paymux.payments.models import Payment
from test_backoffice_ops_support import agent_org, pay_all
from test_backoffice_permissions import app_routes
from test_backoffice_support import add_user, session_for

PROVIDER = "zqx-hidden-prov"
PROVIDER_NAME = "Qwzx Hidden Provider"
SERVICE_CODE = "ZQ-SVC-0071"
REMUNERATION = "37.19"
WAITING = "9005555555"  # an account the provider leaves pending


def catalog() -> dict[str, Any]:
    """The harness catalog with p1 renamed to something recognisable, paying a fixed remuneration."""
    cat = copy.deepcopy(BASE_CATALOG)
    cat["providers"][0].update(code=PROVIDER, name=PROVIDER_NAME)
    cat["services"][0]["route"]["candidates"][0].update(provider=PROVIDER, code=SERVICE_CODE)
    for t in cat["tariffs"]:
        if t.get("provider") == "p1":
            t.update(provider=PROVIDER, rule={"fixed": REMUNERATION})
    return cat


def texts(r: httpx.Response) -> str:
    """Everything a response carries, as text: its body, or every file of an Excel (zip) body."""
    if r.content[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(r.content)) as z:
            return "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
    return r.content.decode("utf-8", "replace")


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[dict[str, Any]]:
    """Three delivered payments (two through the agent's channel term, one through web), the back
    office on loopback, users and the secrets of the provider side."""
    deposits = {PROVIDER: 100_000_00}
    emulators = {PROVIDER: {"accounts": {WAITING: {"pay": "pending"}}, "pending_ms": 3_600_000}}
    async with (
        hub_env(db_url, catalog=catalog(), deposits=deposits, emulators=emulators) as env,
        serving_backoffice(env.hub) as base,
    ):
        done = await pay_all(
            env, [{"channel": "term"}, {"channel": "web"}, {"channel": "term", "amount": "250.00"}]
        )
        assert {p["status"] for p in done} == {"succeeded"}
        details = await env.details(done[0]["id"])
        assert details["provider"] == PROVIDER and details["remuneration"] == REMUNERATION
        # and one the provider has not finished (in the queues, in doubt); one needs attention
        waiting = (await env.pay("term", account=WAITING)).json()["id"]
        for _ in range(500):  # until the provider was asked (and answered that it is pending)
            if (await env.details(waiting))["attempts"]:
                break
            await asyncio.sleep(0.02)
        assert (await env.details(waiting))["status"] == "processing"
        async with env.hub.sessions() as s:
            await s.execute(update(Payment).where(Payment.id == done[2]["id"]).values(needs_attention=True))
            await s.commit()
        org = await agent_org_of(env)
        await add_user(env.hub, "dealer.kim", "agent", org=org)
        # an agent's user given an operator's role still gets no more than an agent may
        await add_user(env.hub, "dealer.boss", "administrator", org=org)
        await add_user(env.hub, "op", "operator")
        await add_user(env.hub, "sup", "support")
        secrets = [
            PROVIDER,
            PROVIDER_NAME,
            SERVICE_CODE,
            REMUNERATION,
            REMUNERATION.replace(".", ","),  # as the Russian and Romanian pages write it
            env.urls[PROVIDER].split("//", 1)[1],  # host:port of the provider's emulator
            details["provider_txn_id"],
            details["route_reason"],
            "provider_deposit",
            "provider_remuneration",
            "revenue_remuneration",
        ]
        assert all(secrets), secrets
        mine = sorted([done[0]["id"], done[2]["id"], waiting])
        yield {"env": env, "base": base, "done": done, "mine": mine, "secrets": secrets}


async def agent_org_of(env: Env) -> str:
    return await agent_org(SimpleNamespace(hub=env.hub))  # type: ignore[arg-type]  # it needs the hub only


async def signed_in(env: Env, base: str, username: str) -> httpx.AsyncClient:
    """A client of the served back office with ``username``'s session cookie."""
    raw = await session_for(env.hub, username)
    http = httpx.AsyncClient(base_url=base, timeout=30)
    http.cookies.set("pmx_session", raw, path="/backoffice")
    async with env.hub.read_sessions() as s:
        csrf = await s.scalar(select(UserSession.csrf_token).where(UserSession.id_hash == session_hash(raw)))
    http.headers["X-CSRF-Token"] = str(csrf)
    return http


async def token_of(env: Env, username: str) -> dict[str, str]:
    async with env.hub.sessions() as s:
        u = await s.scalar(select(User).where(User.username == username))
        assert u is not None
        token, _ = await issue_token(s, u, "scope test", None)
        await s.commit()
    return {"Authorization": f"Bearer {token}"}


def agent_pages(done: list[dict[str, Any]]) -> list[str]:
    """The pages and exports an agent's user may open (each with the provider side to hide)."""
    mine = done[0]["id"]
    return [
        "/backoffice/",
        "/backoffice/dashboard",
        "/backoffice/payments",
        "/backoffice/payments?export=xlsx",
        f"/backoffice/payments/{mine}",
        f"/backoffice/payments?provider={PROVIDER}&sort=provider",
        "/backoffice/queues?live=0",
        "/backoffice/queues?export=xlsx",
        "/backoffice/reports?group_by=service&group_by=channel&grain=day",
        "/backoffice/reports?group_by=service&export=xlsx",
        "/backoffice/reports/comparison?group_by=service",
        "/backoffice/reports/comparison?group_by=service&export=xlsx",
        "/backoffice/account",
    ]


def agent_api(done: list[dict[str, Any]]) -> list[str]:
    mine = done[0]["id"]
    return [
        "/api/v1/admin/payments",
        f"/api/v1/admin/payments/{mine}",
        "/api/v1/admin/channels",
        "/api/v1/admin/reports/turnover?group_by=service&timezone=UTC",
        "/api/v1/admin/reports/turnover?group_by=service&timezone=UTC&format=xlsx",
        "/api/v1/admin/reports/comparison?group_by=channel&timezone=UTC",
    ]


@pytest.mark.parametrize("username", ["dealer.kim", "dealer.boss"])
async def test_agent_pages_exports_and_api_hold_no_provider_side(
    world: dict[str, Any], username: str
) -> None:
    env, base, done, secrets = world["env"], world["base"], world["done"], world["secrets"]
    mine = world["mine"]
    http = await signed_in(env, base, username)
    try:
        for url in agent_pages(done):
            r = await http.get(url)
            assert r.status_code == 200, (url, r.status_code)
            assert not leaks(texts(r), secrets), (url, leaks(texts(r), secrets))
        # the list shows the agent's payments with what it may see of them
        r = await http.get("/backoffice/payments")
        assert sorted(int(x) for x in re.findall(r'class="payment-link">(\d+)<', r.text)) == mine
        detail = (await http.get(f"/backoffice/payments/{done[0]['id']}")).text
        for shown in ("100.00 RUB", "1.00 RUB", "101.00 RUB", "0.50 RUB", done[0]["external_id"]):
            assert shown in detail, shown  # amount, fee, total, commission, its id
        assert "channel_collected:term" in detail and "channel_commission:term" in detail
        # the provider's transaction id is not searched, and its filter is not there (nothing is filtered)
        searched = await http.get(f"/backoffice/payments?q={secrets[6]}")
        assert re.findall(r'class="payment-link">(\d+)<', searched.text) == []
        filtered = await http.get(f"/backoffice/payments?txn={secrets[6]}x")
        assert sorted(int(x) for x in re.findall(r'class="payment-link">(\d+)<', filtered.text)) == mine
        assert (await http.get(f"/backoffice/payments/{done[1]['id']}")).status_code == 404
        # nor the delivery state: in doubt, needing attention
        for url in ("/backoffice/dashboard", "/backoffice/queues?live=0"):
            page = (await http.get(url)).text
            assert "need attention" not in page and "In doubt" not in page, url
        assert 'id="queue-provider"' not in (await http.get("/backoffice/queues?live=0")).text

        # every other page of the back office: refused, or nothing of the provider side either
        for method, path in sorted(app_routes(create_app(env.hub))):
            if (
                method != "GET"
                or not path.startswith("/backoffice")
                or ("{" in path and "payment_id" not in path)
            ):
                continue
            r = await http.get(path.replace("{payment_id}", str(done[0]["id"])))
            assert r.status_code in (200, 303, 403, 404), (path, r.status_code)
            assert not leaks(texts(r), secrets), (path, leaks(texts(r), secrets))
        for path in (
            "/backoffice/balances",
            "/backoffice/audit",
            "/backoffice/catalog/providers",
            "/backoffice/routing",
        ):
            assert (await http.get(path)).status_code == 403, path
    finally:
        await http.aclose()

    auth = await token_of(env, username)
    async with httpx.AsyncClient(base_url=env.base, timeout=30) as api:
        for url in agent_api(done):
            r = await api.get(url, headers=auth)
            assert r.status_code == 200, (url, r.text)
            assert not leaks(texts(r), secrets), (url, leaks(texts(r), secrets))
        items = (await api.get("/api/v1/admin/payments", headers=auth)).json()["items"]
        assert sorted(p["id"] for p in items) == mine
        assert set(items[0]) == {
            "id", "external_id", "status", "service", "channel", "account", "currency", "amount", "fee",
            "total", "commission", "fields", "created_at", "final_at",
        }  # fmt: skip
        one = (await api.get(f"/api/v1/admin/payments/{done[0]['id']}", headers=auth)).json()
        assert {x["account"] for x in one["postings"]} == {
            "channel_collected:term",
            "channel_commission:term",
        }
        for hidden in (f"provider={PROVIDER}", "needs_attention=true"):
            r = await api.get(f"/api/v1/admin/payments?{hidden}", headers=auth)
            assert r.status_code == 422 and "agent users cannot" in r.json()["detail"], r.text
        for url in (
            "/api/v1/admin/balances",
            "/api/v1/admin/providers",
            f"/api/v1/admin/providers/{PROVIDER}/balance",
        ):
            assert (await api.get(url, headers=auth)).status_code == 403, url


async def test_the_operators_staff_still_see_the_provider_side(world: dict[str, Any]) -> None:
    env, base, done, secrets = world["env"], world["base"], world["done"], world["secrets"]
    http = await signed_in(env, base, "sup")
    try:
        detail = (await http.get(f"/backoffice/payments/{done[0]['id']}")).text
        for s in (PROVIDER, SERVICE_CODE, REMUNERATION, secrets[5], secrets[6], "provider_deposit"):
            assert s in detail, s
        listing = await http.get("/backoffice/payments?export=xlsx")
        assert PROVIDER in texts(listing) and secrets[6] in texts(listing)
        queues = await http.get("/backoffice/queues?live=0")
        assert 'id="queue-provider"' in queues.text and PROVIDER in queues.text
        assert "1 payments need attention" in queues.text and "In doubt" in queues.text
        assert "1 payments need attention" in (await http.get("/backoffice/dashboard")).text
    finally:
        await http.aclose()
    auth = await token_of(env, "op")
    async with httpx.AsyncClient(base_url=env.base, timeout=30) as api:
        one = (await api.get(f"/api/v1/admin/payments/{done[0]['id']}", headers=auth)).json()
        assert one["provider"] == PROVIDER and one["remuneration"] == REMUNERATION and one["attempts"]
        assert any(a.startswith("provider_deposit:") for a in (x["account"] for x in one["postings"]))


@needs_chromium
async def test_an_agent_in_chromium_sees_its_payments_without_the_provider_side(
    world: dict[str, Any],
) -> None:
    base, done, secrets = world["base"], world["done"], world["secrets"]
    async with chromium() as browser:
        page = await browser.new_page()
        await browser_login(page, base, "dealer.kim")
        menu = await page.text_content("nav.menu") or ""
        assert "Payments" in menu and "Balances" not in menu and "Audit" not in menu
        await page.click("nav.menu >> text=Payments")
        await page.wait_for_url("**/backoffice/payments")
        assert await page.locator("#payments tbody tr").count() == 3
        headers = [h.strip() for h in await page.locator("#payments thead th").all_text_contents()]
        assert "Provider" not in headers and "Provider txn ID" not in headers and "Amount" in headers
        assert await page.locator("select[name=provider]").count() == 0
        assert not leaks(await page.content(), secrets)
        await page.click(f"a.payment-link >> text={done[0]['id']}")
        await page.wait_for_url(f"**/backoffice/payments/{done[0]['id']}")
        assert (await page.text_content("#external-id") or "").strip() == done[0]["external_id"]
        assert (
            await page.locator("#route-reason").count() == 0 and await page.locator(".attempt").count() == 0
        )
        assert await page.locator("#postings tbody tr").count() == 2  # its channel's collected and commission
        assert not leaks(await page.content(), secrets)
        await screenshot(page, "agent-payment-details")
        for path in (
            "/backoffice/dashboard",
            "/backoffice/queues?live=0",
            "/backoffice/reports?group_by=service",
        ):
            await page.goto(base + path)
            assert not leaks(await page.content(), secrets), path
        await screenshot(page, "agent-report")
        await page.context.clear_cookies()

        await browser_login(page, base, "sup")
        await page.goto(f"{base}/backoffice/payments/{done[0]['id']}")
        assert PROVIDER in (await page.text_content("#provider") or "")
        assert REMUNERATION in (await page.text_content("#remuneration") or "")
        assert await page.locator(".attempt").count() == 1
        await screenshot(page, "operator-payment-details")
