"""Request dependencies: the hub, a database session per request, channel and admin identity."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.keys import admin_for_token, channel_for_key, digest
from paymux.auth.models import AdminToken
from paymux.auth.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify
from paymux.catalog.snapshot import ChannelView
from paymux.errors import Problem
from paymux.runtime import Hub

KEY_CACHE_NS = 5_000_000_000


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(get_hub)]


async def get_session(hub: HubDep) -> AsyncIterator[AsyncSession]:
    """A session for this request; the endpoint commits what it changes."""
    async with hub.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401, "unauthorized", "Authentication required", "send the key as 'Authorization: Bearer <key>'"
        )
    return token.strip()


async def current_channel(request: Request, hub: HubDep) -> ChannelView:
    """The channel whose API key made this request, after checking its signature if needed."""
    key = _bearer(request)
    h = digest(key)
    now = time.monotonic_ns()
    cached = hub.channel_keys.get(h)
    if cached is not None and cached[1] > now:
        channel_id: int | None = cached[0]
    else:
        async with hub.read_sessions() as session:
            channel_id = await channel_for_key(session, key)
        if channel_id is not None:
            hub.channel_keys[h] = (channel_id, now + KEY_CACHE_NS)
    if channel_id is None:
        raise Problem(401, "unauthorized", "Invalid API key", "the API key is unknown or revoked")
    snap = await hub.catalog.get()
    channel = snap.channels.get(channel_id)
    if channel is None:
        hub.catalog_changed()
        channel = (await hub.catalog.get()).channels.get(channel_id)
    if channel is None:
        raise Problem(401, "unauthorized", "Invalid API key", "the key's channel no longer exists")
    if not channel.enabled:
        raise Problem(403, "channel-disabled", "Channel disabled", f"channel {channel.code} is disabled")
    signature = request.headers.get(SIGNATURE_HEADER)
    if channel.signing != "none" and (channel.signing_required or signature):
        body = await request.body()
        try:
            verify(
                channel.signing,
                timestamp=request.headers.get(TIMESTAMP_HEADER),
                signature=signature,
                body=body,
                hmac_secret=channel.hmac_secret,
                rsa_public_key=channel.rsa_public_key,
                max_skew=hub.settings.signature_max_skew_seconds,
            )
        except SignatureError as e:
            raise Problem(401, "bad-signature", "Request signature rejected", str(e)) from None
    return channel


ChannelDep = Annotated[ChannelView, Depends(current_channel)]


async def current_admin(request: Request, hub: HubDep) -> AdminToken:
    token = _bearer(request)
    async with hub.read_sessions() as session:
        row = await admin_for_token(session, token)
    if row is None:
        raise Problem(
            401, "unauthorized", "Invalid admin token", "the admin token is unknown, expired or revoked"
        )
    return row


AdminDep = Annotated[AdminToken, Depends(current_admin)]
