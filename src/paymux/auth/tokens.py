"""Personal API tokens: carry their user's permissions on the admin API; shown once, stored hashed."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.keys import digest, new_secret
from paymux.auth.user_models import ApiToken, User
from paymux.db.base import utcnow

PREFIX = "pmx_usr"


async def issue_token(
    session: AsyncSession, user: User, name: str, expires_at: dt.datetime | None
) -> tuple[str, ApiToken]:
    """A new token (returned once) and its row. The caller audits and commits."""
    raw = new_secret(PREFIX)
    row = ApiToken(
        user_id=user.id,
        name=name[:100] or "token",
        token_hash=digest(raw),
        prefix=raw[:12],
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return raw, row


async def user_for_token(session: AsyncSession, raw: str) -> tuple[ApiToken, User] | None:
    """The live token and its enabled user, or None (unknown, revoked, expired, user disabled)."""
    if not raw.startswith(PREFIX + "_"):
        return None
    token = await session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(raw)))
    if token is None or token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= utcnow():
        return None
    user = await session.get(User, token.user_id)
    if user is None or not user.enabled:
        return None
    return token, user


def revoke(token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()
