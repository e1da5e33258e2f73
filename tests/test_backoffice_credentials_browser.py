"""Headless Chromium on the real server: revoking a channel's API key on the channel's page and an admin
token on the Admin tokens page, each through its confirmation page; refused (401) at once after."""

from __future__ import annotations

from sqlalchemy import select

from browser_support import backoffice_server, chromium, login, needs_chromium, screenshot
from harness import Env
from paymux.audit.models import AuditEvent
from paymux.auth.keys import digest
from paymux.auth.models import AdminToken, ChannelKey
from test_backoffice_support import add_user

pytestmark = needs_chromium


async def channel_status(env: Env, key: str) -> int:
    """404 for an authenticated channel request (no such payment), 401 for a refused key."""
    r = await env.http.get("/api/v1/payments/999999", headers={"Authorization": f"Bearer {key}"})
    return r.status_code


async def admin_status(env: Env, token: str) -> int:
    r = await env.http.get("/api/v1/admin/channels", headers={"Authorization": f"Bearer {token}"})
    return r.status_code


async def actors(env: Env, action: str) -> list[str]:
    async with env.hub.read_sessions() as s:
        return list((await s.scalars(select(AuditEvent.actor).where(AuditEvent.action == action))).all())


async def test_operator_revokes_a_channel_key_on_the_channel_page(db_url: str) -> None:
    async with backoffice_server(db_url) as (env, base):
        await add_user(env.hub, "op", "operator")
        key = env.keys["term"]
        async with env.hub.read_sessions() as s:
            key_id = await s.scalar(select(ChannelKey.id).where(ChannelKey.key_hash == digest(key)))
        assert await channel_status(env, key) == 404  # works (and is cached)
        async with chromium() as browser:
            page = await browser.new_page()
            await login(page, base, "op")
            await page.goto(f"{base}/backoffice/catalog/channels/term")
            row = page.locator("#channel-keys tbody tr")
            assert await row.count() == 1
            assert key[:12] in (await row.text_content() or "") and "active" in (
                await row.text_content() or ""
            )
            assert key not in await page.content()
            await page.click(f"#revoke-key-{key_id}")
            await page.wait_for_url(f"**/backoffice/channel-keys/{key_id}/revoke")
            assert "within 5 s on the other nodes" in (await page.text_content("main") or "")
            await screenshot(page, "credentials-revoke-key-confirmation")
            assert await channel_status(env, key) == 404  # nothing happens until confirmed
            await page.click("#confirm-revoke")
            await page.wait_for_url("**/backoffice/catalog/channels/term")
            assert "The key was revoked." in (await page.text_content(".flash") or "")
            assert "revoked" in (await page.locator("#channel-keys tbody tr").text_content() or "")
            assert await page.locator(f"#revoke-key-{key_id}").count() == 0
            await screenshot(page, "credentials-key-revoked")
        assert await channel_status(env, key) == 401  # at once: this process dropped its cached key
        assert await channel_status(env, env.keys["web"]) == 404
        assert await actors(env, "channel.key_revoke") == ["user:op"]


async def test_administrator_revokes_an_admin_token_on_the_tokens_page(db_url: str) -> None:
    async with backoffice_server(db_url) as (env, base):
        await add_user(env.hub, "root", "administrator")
        await add_user(env.hub, "op", "operator")
        async with env.hub.read_sessions() as s:
            token_id = await s.scalar(select(AdminToken.id).where(AdminToken.name == "test"))
        assert await admin_status(env, env.admin_token) == 200
        async with chromium() as browser:
            page = await browser.new_page()
            await login(page, base, "op")  # the Operator has no such page
            assert await page.locator("nav.menu >> text=Admin tokens").count() == 0
            response = await page.goto(f"{base}/backoffice/admin-tokens")
            assert response is not None and response.status == 403
            await page.context.clear_cookies()

            await login(page, base, "root")
            await page.click("nav.menu >> text=Admin tokens")
            await page.wait_for_url("**/backoffice/admin-tokens")
            row = page.locator("#admin-tokens tbody tr")
            assert await row.count() == 1 and env.admin_token[:12] in (await row.text_content() or "")
            await page.click(f"#revoke-token-{token_id}")
            await page.wait_for_url(f"**/backoffice/admin-tokens/{token_id}/revoke")
            await screenshot(page, "credentials-revoke-token-confirmation")
            assert await admin_status(env, env.admin_token) == 200
            await page.click("#confirm-revoke")
            await page.wait_for_url("**/backoffice/admin-tokens")
            assert "The token was revoked." in (await page.text_content(".flash") or "")
            assert "revoked" in (await row.text_content() or "")
            await screenshot(page, "credentials-token-revoked")
        assert await admin_status(env, env.admin_token) == 401
        assert await actors(env, "admin_token.revoke") == ["user:root"]
