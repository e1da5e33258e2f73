"""OAuth 2.0 client credentials (RFC 6749 §4.4): a channel trades its API key for an access token
and pays with it; the RFC's error answers; tampered, expired and revoked tokens are refused."""

from __future__ import annotations

import base64

import httpx

from harness import Env, hub_env
from paymux.auth.oauth import PREFIX, issue

TOKEN = "/api/v1/oauth/token"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(), **FORM}


async def get_token(env: Env, **headers: str) -> httpx.Response:
    return await env.http.post(
        TOKEN, content="grant_type=client_credentials", headers=headers or basic("term", env.keys["term"])
    )


async def test_channel_pays_with_an_access_token(db_url: str) -> None:
    async with hub_env(db_url) as env:
        r = await get_token(env)
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
        body = r.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 900
        assert body["access_token"].startswith(PREFIX) and env.keys["term"] not in body["access_token"]
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        paid = await env.http.post(
            "/api/v1/payments",
            json={
                "external_id": "oauth-1",
                "service": "topup",
                "account": "9001234567",
                "amount": "10.00",
                "currency": "RUB",
            },
            headers=bearer,
        )
        assert paid.status_code in (200, 201, 202), paid.text
        again = await env.http.get("/api/v1/payments/by-external-id/oauth-1", headers=env.headers("term"))
        assert again.status_code == 200 and again.json()["id"] == paid.json()["id"]
        # the secret in the form instead of HTTP Basic
        form = f"grant_type=client_credentials&client_id=term&client_secret={env.keys['term']}"
        assert (await env.http.post(TOKEN, content=form, headers=FORM)).status_code == 200


async def test_rfc_6749_errors(db_url: str) -> None:
    async with hub_env(db_url) as env:
        key = env.keys["term"]
        r = await get_token(env, **basic("term", "pmx_ch_wrong"))
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        assert r.headers["www-authenticate"].startswith("Basic")
        r = await get_token(env, **basic("web", key))  # another channel's code with term's key
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        r = await env.http.post(TOKEN, content="grant_type=password", headers=basic("term", key))
        assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
        r = await env.http.post(TOKEN, content="scope=x", headers=basic("term", key))
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
        r = await env.http.post(TOKEN, json={"grant_type": "client_credentials"})
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"
        r = await env.http.post(TOKEN, content="grant_type=client_credentials", headers=FORM)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_tampered_expired_and_revoked_tokens_are_refused(db_url: str) -> None:
    async with hub_env(db_url) as env:
        access = (await get_token(env)).json()["access_token"]
        ok = await env.http.get(
            "/api/v1/payments/by-external-id/none", headers={"Authorization": f"Bearer {access}"}
        )
        assert ok.status_code == 404  # authenticated: the payment just does not exist
        head, _, mac = access.rpartition(".")
        forged = head + "." + ("0" if mac[0] != "0" else "1") + mac[1:]
        r = await env.http.get(
            "/api/v1/payments/by-external-id/none", headers={"Authorization": f"Bearer {forged}"}
        )
        assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
        key_id = int(access[len(PREFIX) :].split(".")[0])
        expired, _ = await issue(env.hub, key_id, 60, now=1_000_000)
        r = await env.http.get(
            "/api/v1/payments/by-external-id/none", headers={"Authorization": f"Bearer {expired}"}
        )
        assert r.status_code == 401 and "expired" in r.json()["detail"]
        for junk in ("pmxo.", "pmxo.1.2", "pmxo.x.y.z", "pmxo." + "9" * 30 + ".1.ab"):
            r = await env.http.get(
                "/api/v1/payments/by-external-id/none", headers={"Authorization": f"Bearer {junk}"}
            )
            assert r.status_code == 401, junk
        # revoking the API key refuses the tokens issued for it
        r = await env.http.post(
            f"/api/v1/admin/channels/term/keys/{env.keys['term'][:12]}/revoke", headers=env.admin
        )
        assert r.status_code == 200, r.text
        r = await env.http.get(
            "/api/v1/payments/by-external-id/none", headers={"Authorization": f"Bearer {access}"}
        )
        assert r.status_code == 401 and "revoked" in r.json()["detail"]
