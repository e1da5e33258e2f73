"""Issuing and checking secrets: channel API keys and admin tokens (stored as SHA-256 only).

The secrets are 256-bit random values, so a fast hash is enough to store them safely.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.models import AdminToken, ChannelKey
from paymux.catalog.models import Channel
from paymux.db.base import utcnow


def new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class UnknownChannel(LookupError):
    pass


async def issue_channel_key(session: AsyncSession, channel_code: str) -> str:
    """A new API key for the channel; returned once, stored hashed. The caller commits."""
    channel = await session.scalar(select(Channel).where(Channel.code == channel_code))
    if channel is None:
        raise UnknownChannel(f"unknown channel {channel_code!r}")
    key = new_secret("pmx_ch")
    session.add(ChannelKey(channel_id=channel.id, key_hash=digest(key), prefix=key[:12]))
    await session.flush()
    return key


async def channel_for_key(session: AsyncSession, key: str) -> int | None:
    return await session.scalar(
        select(ChannelKey.channel_id).where(
            ChannelKey.key_hash == digest(key), ChannelKey.revoked_at.is_(None)
        )
    )


async def issue_admin_token(session: AsyncSession, name: str) -> str:
    token = new_secret("pmx_adm")
    session.add(AdminToken(name=name, token_hash=digest(token), prefix=token[:12]))
    await session.flush()
    return token


async def admin_for_token(session: AsyncSession, token: str) -> AdminToken | None:
    row = await session.scalar(
        select(AdminToken).where(AdminToken.token_hash == digest(token), AdminToken.revoked_at.is_(None))
    )
    if row is None or (row.expires_at is not None and row.expires_at <= utcnow()):
        return None
    return row
