"""Server-side back-office sessions: the cookie holds a 128-bit random id, the table its SHA-256."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.user_models import User, UserSession
from paymux.db.base import utcnow

COOKIE = "pmx_session"
TOUCH_EVERY = dt.timedelta(seconds=10)


def session_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def new_session_id() -> str:
    return secrets.token_urlsafe(16)  # 128 bits


async def create_session(
    session: AsyncSession, user: User, *, stage: str, ip: str, user_agent: str, method: str
) -> tuple[str, UserSession]:
    """A new session with a fresh id (never reused across login steps); returns (cookie value, row)."""
    raw = new_session_id()
    now = utcnow()
    row = UserSession(
        id_hash=session_hash(raw),
        user_id=user.id,
        stage=stage,
        csrf_token=secrets.token_urlsafe(32),
        ip=ip[:64],
        user_agent=user_agent[:300],
        method=method,
        created_at=now,
        last_seen_at=now,
        otp_attempts=0,
    )
    session.add(row)
    await session.flush()
    return raw, row


async def rotate(session: AsyncSession, old: UserSession, *, stage: str) -> tuple[str, UserSession]:
    """End ``old`` and start a new session for the same user (a new id after each login step)."""
    end(old, "rotated")
    user = await session.get(User, old.user_id)
    assert user is not None
    raw, row = await create_session(
        session, user, stage=stage, ip=old.ip, user_agent=old.user_agent, method=old.method
    )
    row.pending_totp_secret = old.pending_totp_secret
    return raw, row


def end(row: UserSession, reason: str) -> None:
    if row.ended_at is None:
        row.ended_at = utcnow()
        row.end_reason = reason


async def find_open(session: AsyncSession, raw: str | None) -> UserSession | None:
    """The open session whose id is ``raw``, if any."""
    if not raw or len(raw) > 64:
        return None
    return await session.scalar(
        select(UserSession).where(UserSession.id_hash == session_hash(raw), UserSession.ended_at.is_(None))
    )


def expired(row: UserSession, *, idle: dt.timedelta, max_age: dt.timedelta, now: dt.datetime) -> str | None:
    """Why ``row`` is over ("idle" or "expired"), or None while it is alive."""
    if now - row.last_seen_at > idle:
        return "idle"
    if now - row.created_at > max_age:
        return "expired"
    return None


def touch(row: UserSession, now: dt.datetime) -> bool:
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        return True
    return False
