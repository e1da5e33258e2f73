"""OAuth 2.0 client credentials for channels (RFC 6749 §4.4): a channel trades its API key for a
short-lived access token and calls the channel API (payments, the wallet customer API) with it.

``POST /api/v1/oauth/token`` with ``grant_type=client_credentials``; the client is the channel:
``client_id`` its code, ``client_secret`` one of its API keys, sent by HTTP Basic (preferred) or in the
form. The answer is ``{"access_token", "token_type": "Bearer", "expires_in"}`` with
``Cache-Control: no-store``; errors follow RFC 6749 §5.2 (``{"error", "error_description"}``, 400, or
401 with ``WWW-Authenticate: Basic`` for a client that did not authenticate), not problem+json, as
OAuth clients expect.

A token is ``pmxo.<key id>.<expiry, Unix seconds>.<HMAC-SHA256>`` over ``oauth.<key id>.<expiry>`` with
the hub's token secret (``PAYMUX_WALLETS_TOKEN_SECRET``, else a random one kept in the database). It
names the API key it was issued for: revoking that key refuses its tokens as soon as the key's cached
verdict expires (the same time as the key itself), and a token never outlives ``expires_in``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import select

from paymux.api.deps import HubDep, channel_for_headers
from paymux.auth.keys import digest
from paymux.auth.models import ChannelKey
from paymux.auth.proxy import client_ip, proxy_settings
from paymux.errors import Problem, unauthorized
from paymux.gateways.registry import basic_credentials
from paymux.runtime import Hub

PREFIX = "pmxo."
router = APIRouter(prefix="/api/v1/oauth", tags=["oauth"])


class OAuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMUX_OAUTH_", extra="ignore")

    token_ttl_seconds: int = Field(
        default=900, ge=60, le=86_400, description="how long an access token lives"
    )


async def _secret(hub: Hub) -> bytes:
    from paymux.wallets.tokens import WalletSettings, signing_key  # the hub's one token secret

    return await signing_key(hub, WalletSettings())


def _mac(secret: bytes, key_id: int, expires: int) -> str:
    return hmac.new(secret, f"oauth.{key_id}.{expires}".encode(), hashlib.sha256).hexdigest()


async def issue(hub: Hub, key_id: int, ttl: int, now: int | None = None) -> tuple[str, int]:
    expires = (int(time.time()) if now is None else now) + ttl
    return f"{PREFIX}{key_id}.{expires}.{_mac(await _secret(hub), key_id, expires)}", expires


async def channel_of_token(hub: Hub, token: str) -> int:
    """The channel a valid access token acts for; a 401 problem otherwise."""
    parts = token[len(PREFIX) :].split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or len(parts[0]) > 18:
        raise unauthorized("Invalid access token", "the access token is malformed")
    key_id, expires = int(parts[0]), int(parts[1])
    if not hmac.compare_digest(_mac(await _secret(hub), key_id, expires), parts[2]):
        raise unauthorized("Invalid access token", "the access token is not valid")
    if expires < time.time():
        raise unauthorized("Access token expired", "the access token has expired: ask for a new one")

    async def read() -> int | None:
        async with hub.read_sessions() as session:
            return await session.scalar(
                select(ChannelKey.channel_id).where(ChannelKey.id == key_id, ChannelKey.revoked_at.is_(None))
            )

    channel_id = await hub.channel_keys.get(f"oauth-key:{key_id}", read)
    if channel_id is None:
        raise unauthorized("Invalid access token", "the API key the token was issued for is revoked")
    return int(channel_id)


def _error(status: int, error: str, description: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache", **headers},
    )


def _basic(header: str | None) -> tuple[str, str] | None:
    """HTTP Basic client credentials; RFC 6749 §2.3.1 form-encodes both before encoding the pair."""
    creds = basic_credentials(header)
    return None if creds is None else (urllib.parse.unquote(creds[0]), urllib.parse.unquote(creds[1]))


@router.post(
    "/token",
    summary="An access token for a channel (OAuth 2.0 client credentials)",
    responses={
        200: {"description": '{"access_token", "token_type": "Bearer", "expires_in"}'},
        400: {"description": "RFC 6749 error: invalid_request, unsupported_grant_type"},
        401: {"description": "RFC 6749 error: invalid_client"},
    },
)
async def token(request: Request, hub: HubDep) -> JSONResponse:
    """Trade the channel's API key (``client_secret``; ``client_id`` the channel's code) for a
    short-lived bearer token accepted wherever the channel's API key is."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return _error(400, "invalid_request", "send application/x-www-form-urlencoded")
    body = await request.body()
    try:
        form = dict(
            urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        )
    except (UnicodeDecodeError, ValueError):
        return _error(400, "invalid_request", "the form is not UTF-8")
    if form.get("grant_type") != "client_credentials":
        if not form.get("grant_type"):
            return _error(400, "invalid_request", "grant_type is required")
        return _error(400, "unsupported_grant_type", "only client_credentials is supported")
    basic = _basic(request.headers.get("authorization"))
    if basic is not None and ("client_secret" in form or "client_id" in form):
        return _error(400, "invalid_request", "authenticate the client one way only (HTTP Basic or the form)")
    client_id, secret = (
        basic if basic is not None else (form.get("client_id", ""), form.get("client_secret", ""))
    )
    challenge = {"WWW-Authenticate": 'Basic realm="paymux"'}
    if not client_id or not secret or len(secret) > 200 or len(client_id) > 64:
        return _error(401, "invalid_client", "client_id and client_secret are required", **challenge)

    def address() -> str:
        return client_ip(request, proxy_settings(request.app))

    try:
        channel = await channel_for_headers(hub, {"authorization": f"Bearer {secret}"}, None, address)
    except Problem as e:
        if e.status == 429:  # failed authentications are throttled as for the API keys themselves
            return _error(429, "invalid_client", str(e.detail or e.title), **e.headers)
        return _error(401, "invalid_client", str(e.detail or "unknown client"), **challenge)
    if channel.code != client_id:
        return _error(401, "invalid_client", "the client secret is not a key of this client", **challenge)
    async with hub.read_sessions() as session:
        key_id = await session.scalar(
            select(ChannelKey.id).where(
                ChannelKey.key_hash == digest(secret), ChannelKey.revoked_at.is_(None)
            )
        )
    if key_id is None:
        return _error(401, "invalid_client", "the client secret is revoked", **challenge)
    ttl = OAuthSettings().token_ttl_seconds
    access, _ = await issue(hub, int(key_id), ttl)
    answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": ttl}
    return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
