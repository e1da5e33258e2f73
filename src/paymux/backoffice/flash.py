"""Messages shown once on the next back-office page ("Saved.", "Wrong or expired code.").

An action answers with ``framework.redirect(path, msg)`` (or ``error=``); the route class keeps the
message in the ``backoffice_flashes`` table and gives the browser the row's random id in a cookie.
The next page rendered with that cookie shows the message, and the row and the cookie are dropped:
a reload shows nothing. A page that redirects again (a login step) leaves the message for the page
after it. Nothing in the address is ever shown as a message (``?msg=`` means nothing).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.sessions import new_session_id, session_hash
from paymux.auth.user_models import FlashMessage
from paymux.db.base import utcnow

COOKIE = "pmx_flash"
KINDS = ("info", "error")
FRESH = dt.timedelta(minutes=10)  # a message not shown by then is dropped (a tab closed on the way)
MAX_LENGTH = 1000


async def put(session: AsyncSession, kind: str, message: str) -> str:
    """Keep ``message`` for the next page; the id the browser carries (the caller commits)."""
    now = utcnow()
    await session.execute(delete(FlashMessage).where(FlashMessage.created_at < now - FRESH))
    raw = new_session_id()
    session.add(
        FlashMessage(
            id_hash=session_hash(raw),
            kind=kind if kind in KINDS else "info",
            message=message[:MAX_LENGTH],
            created_at=now,
        )
    )
    await session.flush()
    return raw


async def peek(session: AsyncSession, raw: str | None) -> tuple[str, str] | None:
    """(kind, message) kept under id ``raw``, if it is still fresh."""
    if not raw or len(raw) > 64:
        return None
    row = await session.scalar(select(FlashMessage).where(FlashMessage.id_hash == session_hash(raw)))
    if row is None or row.created_at < utcnow() - FRESH:
        return None
    return row.kind, row.message


async def drop(session: AsyncSession, raw: str) -> None:
    """Forget the message kept under ``raw`` (it was shown; the caller commits)."""
    await session.execute(delete(FlashMessage).where(FlashMessage.id_hash == session_hash(raw)))
