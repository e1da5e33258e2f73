"""Admin API: listing and revoking channel API keys and admin tokens (by id or prefix)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.api.deps import HubDep, ReadSessionDep, SessionDep
from paymux.auth import credentials as creds
from paymux.auth import permissions as P
from paymux.auth.admin_api import require_api
from paymux.auth.keys import UnknownChannel
from paymux.auth.principal import Principal, channel_scope
from paymux.catalog.models import Channel
from paymux.errors import Problem, invalid, not_found

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

KeyManager = Annotated[Principal, Depends(require_api(P.CHANNEL_KEYS))]
TokenManager = Annotated[Principal, Depends(require_api(P.ADMIN_TOKENS))]


async def channel_in_scope(session: AsyncSession, principal: Principal, code: str) -> Channel:
    """The channel ``code``, if the principal may see it (a 404 problem otherwise)."""
    try:
        channel = await creds.channel_by_code(session, code)
    except UnknownChannel as e:
        raise not_found(str(e)) from None
    scope = await channel_scope(session, principal)
    if scope is not None and channel.id not in scope:
        raise not_found(f"unknown channel {code!r}")
    return channel


def _lookup_problem(e: Exception) -> Problem:
    if isinstance(e, creds.AmbiguousPrefix):
        return invalid("ambiguous-prefix", str(e))
    return not_found(str(e))


@router.get("/channels/{code}/keys")
async def list_channel_keys(code: str, me: KeyManager, session: ReadSessionDep) -> dict[str, Any]:
    """The channel's API keys (id, prefix, created, revoked), newest first; never the secrets."""
    channel = await channel_in_scope(session, me, code)
    return {"items": [creds.key_view(k, code) for k in await creds.channel_keys(session, channel)]}


@router.post("/channels/{code}/keys/{key}/revoke")
async def revoke_channel_key(
    code: str, key: str, me: KeyManager, hub: HubDep, session: SessionDep
) -> dict[str, Any]:
    """Revoke one key, named by its id or prefix. Refused (401) at once by this process, within
    `PAYMUX_CHANNEL_KEY_CACHE_SECONDS` by the others. Revoking a revoked key changes nothing."""
    channel = await channel_in_scope(session, me, code)
    try:
        row, changed = await creds.revoke_channel_key(session, channel, key)
    except (creds.UnknownCredential, creds.AmbiguousPrefix) as e:
        raise _lookup_problem(e) from None
    if changed:
        before, after = creds.revocation(row)
        await audit.record(session, me, "channel.key_revoke", f"channel:{code}", before, after)
    view = creds.key_view(row, code) | {"changed": changed}
    await session.commit()
    hub.channel_keys_changed()
    return view


@router.get("/admin-tokens")
async def list_admin_tokens(_: TokenManager, session: ReadSessionDep) -> dict[str, Any]:
    """Every admin token (id, name, prefix, created, expires, revoked), newest first."""
    return {"items": [creds.token_view(t) for t in await creds.admin_tokens(session)]}


@router.post("/admin-tokens/{token}/revoke")
async def revoke_admin_token(token: str, me: TokenManager, session: SessionDep) -> dict[str, Any]:
    """Revoke one admin token, named by its id or prefix; refused (401) at once by every process."""
    try:
        row, changed = await creds.revoke_admin_token(session, token)
    except (creds.UnknownCredential, creds.AmbiguousPrefix) as e:
        raise _lookup_problem(e) from None
    if changed:
        before, after = creds.revocation(row)
        await audit.record(session, me, "admin_token.revoke", f"admin_token:{row.name}", before, after)
    view = creds.token_view(row) | {"changed": changed}
    await session.commit()
    return view
