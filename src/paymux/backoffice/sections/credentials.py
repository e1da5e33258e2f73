"""Revoking credentials: a channel's API keys (listed on the channel's page) and the admin tokens.

Each revocation asks for confirmation on a page of its own (the back office runs no scripts), is
audited, and takes effect at once in this process (other processes: within
``PAYMUX_CHANNEL_KEY_CACHE_SECONDS`` for channel keys, at once for admin tokens).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.api.params import Id
from paymux.auth import credentials as creds
from paymux.auth import permissions as P
from paymux.auth.models import AdminToken, ChannelKey
from paymux.auth.principal import Principal, channel_scope
from paymux.backoffice.framework import (
    ADMINISTRATION,
    DbDep,
    MenuEntry,
    PageNotFound,
    ReadDbDep,
    Section,
    redirect,
    register,
    render,
    require,
    require_before_reading,
    section_router,
)
from paymux.catalog.models import Channel
from paymux.runtime import Hub

router = section_router()
register(
    Section(
        "credentials",
        router,
        menu=(
            MenuEntry("Admin tokens", "/backoffice/admin-tokens", P.ADMIN_TOKENS, 14, area=ADMINISTRATION),
        ),
        permissions=(P.CHANNEL_KEYS, P.ADMIN_TOKENS),
    )
)

KeyReader = Annotated[Principal, Depends(require_before_reading(P.CHANNEL_KEYS))]
KeyWriter = Annotated[Principal, Depends(require(P.CHANNEL_KEYS))]
TokenReader = Annotated[Principal, Depends(require_before_reading(P.ADMIN_TOKENS))]
TokenWriter = Annotated[Principal, Depends(require(P.ADMIN_TOKENS))]


def channel_page(code: str) -> str:
    return f"/backoffice/catalog/channels/{quote(code, safe='')}"


async def keys_of_channel(session: AsyncSession, me: Principal, code: str) -> list[dict[str, Any]]:
    """The channel's keys for its page (empty unless ``me`` may manage them)."""
    if not me.can(P.CHANNEL_KEYS):
        return []
    channel = await session.get(Channel, await _channel_id(session, code))
    if channel is None or not await _in_scope(session, me, channel.id):
        return []
    return [creds.key_view(k, code) for k in await creds.channel_keys(session, channel)]


async def _channel_id(session: AsyncSession, code: str) -> int:
    try:
        return (await creds.channel_by_code(session, code)).id
    except LookupError:
        raise PageNotFound() from None


async def _in_scope(session: AsyncSession, me: Principal, channel_id: int) -> bool:
    scope = await channel_scope(session, me)
    return scope is None or channel_id in scope


async def _key(session: AsyncSession, me: Principal, key_id: int) -> tuple[ChannelKey, Channel]:
    row = await session.get(ChannelKey, key_id)
    channel = await session.get(Channel, row.channel_id) if row is not None else None
    if row is None or channel is None or not await _in_scope(session, me, channel.id):
        raise PageNotFound()
    return row, channel


@router.get("/channel-keys/{key_id}/revoke")
async def key_revoke_confirm(request: Request, key_id: Id, session: ReadDbDep, me: KeyReader) -> Response:
    row, channel = await _key(session, me, key_id)
    return render(
        request,
        "credentials/revoke.html",
        what="API key of channel {owner}",
        label="Key",
        owner=channel.code,
        item=creds.key_view(row, channel.code),
        action=f"/backoffice/channel-keys/{row.id}/revoke",
        back=channel_page(channel.code),
        note="Requests with this key are refused at once here, and within {seconds} s on the other nodes.",
        seconds=_bound(request),
    )


@router.post("/channel-keys/{key_id}/revoke")
async def key_revoke(request: Request, key_id: Id, session: DbDep, me: KeyWriter) -> Response:
    row, channel = await _key(session, me, key_id)
    changed = await _revoke(session, me, row, "channel.key_revoke", f"channel:{channel.code}")
    hub: Hub = request.app.state.hub
    hub.channel_keys_changed()
    return redirect(
        channel_page(channel.code), "The key was revoked." if changed else "It was revoked already."
    )


@router.get("/admin-tokens")
async def tokens_list(request: Request, session: ReadDbDep, _: TokenReader) -> Response:
    return render(
        request,
        "credentials/tokens.html",
        tokens=[creds.token_view(t) for t in await creds.admin_tokens(session)],
    )


async def _token(session: AsyncSession, token_id: int) -> AdminToken:
    row = await session.get(AdminToken, token_id)
    if row is None:
        raise PageNotFound()
    return row


@router.get("/admin-tokens/{token_id}/revoke")
async def token_revoke_confirm(
    request: Request, token_id: Id, session: ReadDbDep, _: TokenReader
) -> Response:
    row = await _token(session, token_id)
    return render(
        request,
        "credentials/revoke.html",
        what="Admin token {owner}",
        label="Token",
        owner=row.name,
        item=creds.token_view(row),
        action=f"/backoffice/admin-tokens/{row.id}/revoke",
        back="/backoffice/admin-tokens",
        note="Requests with this token are refused at once.",
        seconds="0",
    )


@router.post("/admin-tokens/{token_id}/revoke")
async def token_revoke(token_id: Id, session: DbDep, me: TokenWriter) -> Response:
    row = await _token(session, token_id)
    changed = await _revoke(session, me, row, "admin_token.revoke", f"admin_token:{row.name}")
    return redirect(
        "/backoffice/admin-tokens", "The token was revoked." if changed else "It was revoked already."
    )


async def _revoke(
    session: AsyncSession, me: Principal, row: ChannelKey | AdminToken, action: str, target: str
) -> bool:
    """Revoke ``row`` (audited, committed); False when it was revoked already."""
    changed = creds.revoke(row)
    if changed:
        before, after = creds.revocation(row)
        await audit.record(session, me, action, target, before, after)
        await session.commit()
    return changed


def _bound(request: Request) -> str:
    hub: Hub = request.app.state.hub
    return f"{hub.settings.channel_key_cache_seconds:g}"
