"""Listing and revoking channel API keys and admin tokens, named by id or prefix (never the secret).

Revoking stamps ``revoked_at``; the row stays, shown as revoked. The caller audits (``revocation``
gives the before and after states), commits, and then drops the process's cache of channel keys
(``Hub.channel_keys_changed``): other processes refuse a revoked key within
``PAYMUX_CHANNEL_KEY_CACHE_SECONDS``. Admin tokens are read on every request: refused at once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from sqlalchemy import false, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.api.params import parse_id
from paymux.auth.keys import UnknownChannel
from paymux.auth.models import AdminToken, ChannelKey
from paymux.catalog.models import Channel
from paymux.db.base import utcnow

R = TypeVar("R", ChannelKey, AdminToken)


class UnknownCredential(LookupError):
    """No key or token by that id or prefix (or it belongs to another channel)."""


class AmbiguousPrefix(ValueError):
    """A prefix shared by several keys or tokens: name it by its id."""


def state(row: ChannelKey | AdminToken, now: dt.datetime | None = None) -> str:
    """``active``, ``revoked`` or (admin tokens) ``expired``."""
    if row.revoked_at is not None:
        return "revoked"
    expires = getattr(row, "expires_at", None)
    if expires is not None and expires <= (now or utcnow()):
        return "expired"
    return "active"


def key_view(row: ChannelKey, channel: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "channel": channel,
        "prefix": row.prefix,
        "created_at": row.created_at,
        "revoked_at": row.revoked_at,
        "state": state(row),
    }


def token_view(row: AdminToken) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "state": state(row),
    }


def revocation(row: ChannelKey | AdminToken) -> tuple[dict[str, Any], dict[str, Any]]:
    """The audit log's before and after states of a revocation just made."""
    after = {"id": row.id, "prefix": row.prefix, "revoked_at": row.revoked_at}
    return after | {"revoked_at": None}, after


async def channel_by_code(session: AsyncSession, code: str) -> Channel:
    channel = await session.scalar(select(Channel).where(Channel.code == code))
    if channel is None:
        raise UnknownChannel(f"unknown channel {code!r}")
    return channel


async def channel_keys(session: AsyncSession, channel: Channel) -> list[ChannelKey]:
    """The channel's keys, newest first, revoked ones included."""
    q = select(ChannelKey).where(ChannelKey.channel_id == channel.id).order_by(ChannelKey.id.desc())
    return list((await session.scalars(q)).all())


def _one(rows: list[R], ref: str, what: str) -> R:
    if not rows:
        raise UnknownCredential(f"no {what} {ref!r}")
    if len(rows) > 1:
        raise AmbiguousPrefix(f"{len(rows)} {what}s start with {ref!r}: name it by its id")
    return rows[0]


def _by_id_or_prefix(model: Any, ref: str) -> Any:
    """``model`` rows named by ``ref``: a number is an id, anything else the 12-character prefix."""
    ref = ref.strip().rstrip(".…")
    if ref.isascii() and ref.isdigit():
        return model.id == parse_id(ref) if parse_id(ref) else false()
    return model.prefix == ref


async def find_channel_key(session: AsyncSession, channel: Channel, ref: str) -> ChannelKey:
    q = select(ChannelKey).where(ChannelKey.channel_id == channel.id, _by_id_or_prefix(ChannelKey, ref))
    return _one(list((await session.scalars(q)).all()), ref, f"key of channel {channel.code}")


async def revoke_channel_key(session: AsyncSession, channel: Channel, ref: str) -> tuple[ChannelKey, bool]:
    """Revoke the channel's key ``ref`` (id or prefix); False when it was revoked already."""
    row = await find_channel_key(session, channel, ref)
    return row, revoke(row)


async def admin_tokens(session: AsyncSession) -> list[AdminToken]:
    """Every admin token, newest first, revoked and expired ones included."""
    return list((await session.scalars(select(AdminToken).order_by(AdminToken.id.desc()))).all())


async def find_admin_token(session: AsyncSession, ref: str) -> AdminToken:
    q = select(AdminToken).where(_by_id_or_prefix(AdminToken, ref))
    return _one(list((await session.scalars(q)).all()), ref, "admin token")


async def revoke_admin_token(session: AsyncSession, ref: str) -> tuple[AdminToken, bool]:
    """Revoke the admin token ``ref`` (id or prefix); False when it was revoked already."""
    row = await find_admin_token(session, ref)
    return row, revoke(row)


def revoke(row: ChannelKey | AdminToken) -> bool:
    """Stamp ``row`` revoked now; False when it was revoked already."""
    if row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True
