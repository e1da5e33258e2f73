"""Revoking channel API keys and admin tokens through the admin API and the CLI.

A running hub over HTTP on loopback: the credential works, is revoked (by id or prefix, never the
secret), and is refused with 401 from then on: at once in the process that revoked it, within
``PAYMUX_CHANNEL_KEY_CACHE_SECONDS`` in another (the CLI is another process). Each revocation is
audited; lists show revoked credentials as revoked.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from harness import Env, hub_env
from paymux.audit.models import AuditEvent
from paymux.auth.keys import digest, issue_admin_token
from paymux.auth.models import ChannelKey
from paymux.auth.tokens import issue_token
from paymux.auth.user_models import Organization, Role, User
from paymux.catalog.models import Agent, Channel
from test_backoffice_support import add_user

PAYMUX = Path(sys.executable).parent / "paymux"
A = "/api/v1/admin"


async def works(env: Env, key: str) -> int:
    """The status of a channel request authenticated by ``key`` (404: authenticated, no such payment)."""
    r = await env.http.get("/api/v1/payments/999999", headers={"Authorization": f"Bearer {key}"})
    return r.status_code


async def admin_works(env: Env, token: str) -> int:
    r = await env.http.get(f"{A}/channels", headers={"Authorization": f"Bearer {token}"})
    return r.status_code


async def audit_events(env: Env, action: str) -> list[AuditEvent]:
    async with env.hub.read_sessions() as s:
        return list((await s.scalars(select(AuditEvent).where(AuditEvent.action == action))).all())


def problem(r: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["type"].endswith("/" + slug), body
    return body


async def test_admin_api_revokes_a_channel_key_refused_at_once(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        key = env.keys["term"]
        assert await works(env, key) == 404  # authenticated (and now cached for 5 s)
        listed = (await env.http.get(f"{A}/channels/term/keys", headers=env.admin)).json()["items"]
        assert [(k["prefix"], k["state"], k["revoked_at"]) for k in listed] == [(key[:12], "active", None)]
        assert key not in str(listed)

        r = await env.http.post(f"{A}/channels/term/keys/{key[:12]}/revoke", headers=env.admin)
        assert r.status_code == 200, r.text
        assert r.json()["changed"] is True and r.json()["state"] == "revoked"
        # refused at once by the process that revoked it, though the key was cached a moment ago
        assert await works(env, key) == 401
        r = await env.http.get("/api/v1/payments/999999", headers={"Authorization": f"Bearer {key}"})
        assert "revoked" in problem(r, 401, "unauthorized")["detail"]
        assert await works(env, env.keys["web"]) == 404  # the other channel's key still works

        listed = (await env.http.get(f"{A}/channels/term/keys", headers=env.admin)).json()["items"]
        assert listed[0]["state"] == "revoked" and listed[0]["revoked_at"]

        # again: nothing changes, nothing more is audited
        r = await env.http.post(f"{A}/channels/term/keys/{listed[0]['id']}/revoke", headers=env.admin)
        assert r.status_code == 200 and r.json()["changed"] is False
        events = await audit_events(env, "channel.key_revoke")
        assert len(events) == 1
        assert events[0].actor == "admin:test" and events[0].target == "channel:term"
        assert events[0].before["revoked_at"] is None and events[0].after["revoked_at"]
        assert events[0].after["prefix"] == key[:12]

        # unknown keys and channels; a key named under another channel is not found there
        problem(
            await env.http.post(f"{A}/channels/term/keys/pmx_ch_zzzzz/revoke", headers=env.admin),
            404,
            "not-found",
        )
        problem(await env.http.post(f"{A}/channels/nope/keys/1/revoke", headers=env.admin), 404, "not-found")
        problem(await env.http.get(f"{A}/channels/nope/keys", headers=env.admin), 404, "not-found")
        web_id = (await env.http.get(f"{A}/channels/web/keys", headers=env.admin)).json()["items"][0]["id"]
        problem(
            await env.http.post(f"{A}/channels/term/keys/{web_id}/revoke", headers=env.admin),
            404,
            "not-found",
        )
        assert await works(env, env.keys["web"]) == 404

        # a prefix two keys share is refused: name the key by its id
        web = await _channel_id(env, "web")
        async with env.hub.sessions() as s:
            for i in range(2):
                s.add(ChannelKey(channel_id=web, key_hash=digest(f"x{i}"), prefix="pmx_ch_same"))
            await s.commit()
        problem(
            await env.http.post(f"{A}/channels/web/keys/pmx_ch_same/revoke", headers=env.admin),
            422,
            "ambiguous-prefix",
        )


async def _channel_id(env: Env, code: str) -> int:
    async with env.hub.read_sessions() as s:
        found = await s.scalar(select(Channel.id).where(Channel.code == code))
        assert found is not None
        return int(found)


async def test_admin_api_revokes_an_admin_token(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        async with env.hub.sessions() as s:
            ops = await issue_admin_token(s, "ops")
            await s.commit()
        assert await admin_works(env, ops) == 200
        listed = (await env.http.get(f"{A}/admin-tokens", headers=env.admin)).json()["items"]
        row = next(t for t in listed if t["name"] == "ops")
        assert row["prefix"] == ops[:12] and row["state"] == "active" and ops not in str(listed)

        r = await env.http.post(f"{A}/admin-tokens/{row['id']}/revoke", headers=env.admin)
        assert r.status_code == 200 and r.json()["changed"] is True
        assert await admin_works(env, ops) == 401
        assert await admin_works(env, env.admin_token) == 200
        listed = (await env.http.get(f"{A}/admin-tokens", headers=env.admin)).json()["items"]
        assert next(t for t in listed if t["name"] == "ops")["state"] == "revoked"
        events = await audit_events(env, "admin_token.revoke")
        assert [(e.actor, e.target, e.after["prefix"]) for e in events] == [
            ("admin:test", "admin_token:ops", ops[:12])
        ]
        problem(await env.http.post(f"{A}/admin-tokens/999/revoke", headers=env.admin), 404, "not-found")

        # a token may revoke itself; an Operator's personal token may not touch admin tokens
        await add_user(env.hub, "op", "operator")
        async with env.hub.sessions() as s:
            user = await s.scalar(select(User).where(User.username == "op"))
            assert user is not None
            personal, _ = await issue_token(s, user, "t", None)
            await s.commit()
        mine = {"Authorization": f"Bearer {personal}"}
        problem(
            await env.http.post(f"{A}/admin-tokens/{env.admin_token[:12]}/revoke", headers=mine),
            403,
            "forbidden",
        )
        r = await env.http.post(f"{A}/admin-tokens/{env.admin_token[:12]}/revoke", headers=env.admin)
        assert r.status_code == 200 and await admin_works(env, env.admin_token) == 401


async def test_keys_of_channels_outside_an_agents_scope_are_not_found(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        async with env.hub.sessions() as s:
            agent = await s.scalar(select(Agent).where(Agent.code == "dealer"))
            assert agent is not None
            s.add(Organization(code="dealer", name="Dealer", kind="agent", agent_id=agent.id))
            s.add(
                Role(
                    code="dealer_keys",
                    name="Keys",
                    builtin=False,
                    permissions=["channels.keys"],
                    allowed_networks=[],
                )
            )
            await s.commit()
        user = await add_user(env.hub, "dk", "dealer_keys", org="dealer")
        async with env.hub.sessions() as s:
            u = await s.get(User, user.id)
            assert u is not None
            raw, _ = await issue_token(s, u, "t", None)
            await s.commit()
        mine = {"Authorization": f"Bearer {raw}"}
        # term is the dealer's channel, web is not
        assert (await env.http.get(f"{A}/channels/term/keys", headers=mine)).status_code == 200
        problem(await env.http.get(f"{A}/channels/web/keys", headers=mine), 404, "not-found")
        problem(await env.http.post(f"{A}/channels/web/keys/1/revoke", headers=mine), 404, "not-found")
        problem(await env.http.post(f"{A}/channels/web/keys", headers=mine), 404, "not-found")
        assert await works(env, env.keys["web"]) == 404


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")}
    env |= {
        "PAYMUX_DATABASE_URL": db_url,
        "PAYMUX_LOG_LEVEL": "warning",
        "PAYMUX_CHANNEL_KEY_CACHE_SECONDS": "2",
    }
    return subprocess.run([str(PAYMUX), *args], env=env, capture_output=True, text=True, timeout=60)


async def cli_async(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli, db_url, *args)


async def test_cli_revokes_a_key_refused_within_the_cache_time(db_url: str) -> None:
    bound = 2.0  # PAYMUX_CHANNEL_KEY_CACHE_SECONDS of the running hub (another process than the CLI's)
    async with hub_env(db_url, run_workers=False, channel_key_cache_seconds=bound) as env:
        key = env.keys["term"]
        assert await works(env, key) == 404
        listed = await cli_async(db_url, "channels", "keys", "term")
        assert listed.returncode == 0, listed.stderr
        assert key[:12] in listed.stdout and "active" in listed.stdout and key not in listed.stdout

        r = await cli_async(db_url, "channels", "revoke-key", "term", key[:12])
        assert r.returncode == 0, r.stderr
        assert "revoked; running hubs refuse it within 2 s" in r.stdout
        revoked_at = time.monotonic()
        # the hub keeps serving the key from its cache for at most the cache time, then refuses it
        while await works(env, key) != 401:
            assert time.monotonic() - revoked_at < bound + 0.5, "the revoked key still works"
            await asyncio.sleep(0.05)
        for _ in range(5):  # and keeps refusing it
            assert await works(env, key) == 401
        assert await works(env, env.keys["web"]) == 404

        listed = await cli_async(db_url, "channels", "keys", "term")
        assert "revoked at" in listed.stdout
        again = await cli_async(db_url, "channels", "revoke-key", "term", key[:12])
        assert again.returncode == 0 and "already revoked" in again.stdout
        events = await audit_events(env, "channel.key_revoke")
        assert [(e.actor, e.target, e.after["prefix"]) for e in events] == [("cli", "channel:term", key[:12])]

        bad = await cli_async(db_url, "channels", "revoke-key", "term", "pmx_ch_nope0")
        assert bad.returncode == 1 and bad.stderr.strip() == "error: no key of channel term 'pmx_ch_nope0'"
        bad = await cli_async(db_url, "channels", "revoke-key", "nope", "1")
        assert bad.returncode == 1 and "unknown channel 'nope'" in bad.stderr


async def test_cli_revokes_an_admin_token_refused_at_once(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        issued = await cli_async(db_url, "admin", "issue-token", "--name", "ops")
        ops = issued.stdout.strip().splitlines()[-1]
        assert await admin_works(env, ops) == 200
        listed = await cli_async(db_url, "admin", "tokens")
        line = next(x for x in listed.stdout.splitlines() if "\tops\t" in x)
        token_id = line.split("\t")[0]
        assert ops[:12] in line and "active" in line and ops not in listed.stdout

        r = await cli_async(db_url, "admin", "revoke-token", token_id)
        assert r.returncode == 0 and "revoked" in r.stdout, r.stderr
        assert await admin_works(env, ops) == 401
        assert await admin_works(env, env.admin_token) == 200
        listed = await cli_async(db_url, "admin", "tokens")
        assert "revoked at" in next(x for x in listed.stdout.splitlines() if "\tops\t" in x)
        assert [e.actor for e in await audit_events(env, "admin_token.revoke")] == ["cli"]
        assert [e.after for e in await audit_events(env, "admin_token.issue")] == [{"prefix": ops[:12]}]
        bad = await cli_async(db_url, "admin", "revoke-token", "pmx_adm_none")
        assert bad.returncode == 1 and "no admin token 'pmx_adm_none'" in bad.stderr
