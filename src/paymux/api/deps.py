"""Request dependencies: the hub, a database session per request, channel and admin identity."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.admin_api import admin_principal
from paymux.auth.keys import channel_for_key, digest
from paymux.auth.principal import Principal
from paymux.auth.proxy import client_ip, proxy_settings
from paymux.auth.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify
from paymux.auth.throttle import key_prefix
from paymux.catalog.snapshot import ChannelView
from paymux.errors import Problem, unauthorized
from paymux.runtime import Hub


async def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


async def get_session(hub: HubDep) -> AsyncIterator[AsyncSession]:
    """A session for this request; the endpoint commits what it changes."""
    async with hub.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_read_session(hub: HubDep) -> AsyncIterator[AsyncSession]:
    """A read-only session: on SQLite it reads beside the writer instead of queueing for it."""
    async with hub.read_sessions() as session:
        yield session


ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]


def bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized(
            "Authentication required", "send the key as 'Authorization: Bearer <key>'", presented=False
        )
    return token.strip()


async def current_channel(request: Request, hub: HubDep) -> ChannelView:
    """The channel whose API key made this request, after checking its signature if needed."""
    signed = request.headers.get(SIGNATURE_HEADER) is not None

    def address() -> str:
        return client_ip(request, proxy_settings(request.app))

    channel = await channel_for_headers(hub, request.headers, None, address)
    if channel.signing != "none" and (channel.signing_required or signed):
        await channel_for_headers(hub, request.headers, await request.body(), address)
    return channel


async def channel_for_headers(
    hub: Hub, headers: Mapping[str, str], body: bytes | None, address: Callable[[], str]
) -> ChannelView:
    """Authenticate a channel request from its headers; with ``body`` also check its signature.

    ``body`` None: the signature is not checked here (the caller checks it once it has the body).
    ``address`` gives the client's address, asked for only while failures are being throttled
    (``auth/throttle.py``): a refused key or signature counts against it and the key's prefix, and
    while either is throttled only keys this process verified within the last seconds (its cache of
    keys) are served, so one client with a wrong key behind a shared address does not lock the
    others out.
    """
    key = bearer_token(headers.get("authorization"))
    throttle = hub.auth_throttle
    if not throttle.idle:
        refusal = throttle.refusal(address(), key_prefix(key))
        if refusal is not None and hub.channel_keys.fresh(digest(key)) is None:
            raise refusal.problem()
    try:
        return await _channel_for_key(hub, key, headers, body)
    except Problem as e:
        if e.status == 401:
            throttle.failed(address(), key_prefix(key))
        raise


async def _channel_for_key(hub: Hub, key: str, headers: Mapping[str, str], body: bytes | None) -> ChannelView:
    if key.startswith("pmxo."):  # an OAuth 2.0 access token for the channel (auth/oauth.py)
        from paymux.auth.oauth import channel_of_token

        channel_id: int | None = await channel_of_token(hub, key)
    else:
        h = digest(key)

        async def read() -> int | None:
            async with hub.read_sessions() as session:
                return await channel_for_key(session, key)

        channel_id = await hub.channel_keys.get(h, read)
    if channel_id is None:
        raise unauthorized("Invalid API key", "the API key is unknown or revoked")
    snap = await hub.catalog.get()
    channel = snap.channels.get(channel_id)
    if channel is None:
        hub.catalog_changed()
        channel = (await hub.catalog.get()).channels.get(channel_id)
    if channel is None:
        raise unauthorized("Invalid API key", "the key's channel no longer exists")
    if not channel.enabled:
        raise Problem(403, "channel-disabled", "Channel disabled", f"channel {channel.code} is disabled")
    signature = headers.get(SIGNATURE_HEADER)
    if body is not None and channel.signing != "none" and (channel.signing_required or signature):
        try:
            verify(
                channel.signing,
                timestamp=headers.get(TIMESTAMP_HEADER),
                signature=signature,
                body=body,
                hmac_secret=channel.hmac_secret,
                rsa_public_key=channel.rsa_public_key,
                max_skew=hub.settings.signature_max_skew_seconds,
            )
        except SignatureError as e:
            raise unauthorized("Request signature rejected", str(e), slug="bad-signature") from None
    return channel


ChannelDep = Annotated[ChannelView, Depends(current_channel)]


async def current_admin(request: Request) -> Principal:
    """The caller (personal API token or admin token) holding the permission this route needs."""
    return await admin_principal(request)


AdminDep = Annotated[Principal, Depends(current_admin)]
