"""Sessions of all users: who is signed in, from where; end one."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import select

from paymux import audit
from paymux.api.params import Id
from paymux.auth import permissions as P
from paymux.auth import sessions as sess
from paymux.auth.principal import Principal
from paymux.auth.user_models import User, UserSession
from paymux.backoffice.framework import (
    ADMINISTRATION,
    DbDep,
    MenuEntry,
    PageNotFound,
    Section,
    redirect,
    register,
    require,
    section_router,
)
from paymux.backoffice.listing import Column, Filter, ListSpec, respond

router = section_router()
register(
    Section(
        "sessions",
        router,
        menu=(MenuEntry("Sessions", "/backoffice/sessions", P.SESSIONS_READ, 13, area=ADMINISTRATION),),
        permissions=(P.SESSIONS_READ, P.SESSIONS_END),
    )
)


def _state(q, v):  # type: ignore[no-untyped-def]
    return q.where(UserSession.ended_at.is_(None) if v == "open" else UserSession.ended_at.is_not(None))


@router.get("/sessions")
async def sessions_list(
    request: Request, session: DbDep, _: Annotated[Principal, Depends(require(P.SESSIONS_READ))]
) -> Response:
    spec = ListSpec(
        query=select(UserSession, User.username.label("username")).join(User, User.id == UserSession.user_id),
        columns=[
            Column("username", "User name", User.username, lambda r: r.username),
            Column("stage", "Stage", UserSession.stage, lambda r: r[0].stage),
            Column("method", "Method", UserSession.method, lambda r: r[0].method),
            Column("ip", "Address", UserSession.ip, lambda r: r[0].ip),
            Column("created_at", "Started", UserSession.created_at, lambda r: r[0].created_at),
            Column("last_seen_at", "Last request", UserSession.last_seen_at, lambda r: r[0].last_seen_at),
            Column("ended_at", "Ended", UserSession.ended_at, lambda r: r[0].ended_at),
            Column("end_reason", "Why", UserSession.end_reason, lambda r: r[0].end_reason),
        ],
        search=[User.username, UserSession.ip, UserSession.user_agent],
        filters=[Filter("state", "State", _state, [("open", "open"), ("ended", "ended")])],
        default_sort="last_seen_at",
        sheet="sessions",
    )
    return respond(request, await spec.run(session, request), "sessions/list.html")


@router.post("/sessions/{session_id}/end")
async def session_end(
    session_id: Id, session: DbDep, me: Annotated[Principal, Depends(require(P.SESSIONS_END))]
) -> Response:
    row = await session.get(UserSession, session_id)
    if row is None:
        raise PageNotFound()
    user = await session.get(User, row.user_id)
    if row.ended_at is None:
        sess.end(row, "ended by administrator")
        await audit.record(
            session,
            me,
            "session.end",
            f"user:{user.username if user else row.user_id}",
            {"session": row.id, "ip": row.ip},
            {"ended": True},
        )
        await session.commit()
    return redirect("/backoffice/sessions?state=open", "The session was ended.")
