"""The audit log viewer: filters by actor, action, target, outcome and period (in the user's timezone)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import Select, false, select

from paymux.api.params import Id
from paymux.audit.models import AuditEvent
from paymux.auth import permissions as P
from paymux.auth.access import zone
from paymux.auth.principal import Principal
from paymux.backoffice.framework import (
    ADMINISTRATION,
    MenuEntry,
    PageNotFound,
    ReadDbDep,
    Section,
    register,
    render,
    require_before_reading,
    section_router,
)
from paymux.backoffice.listing import Column, Filter, ListSpec, respond
from paymux.masking import mask_secrets

router = section_router()
register(
    Section(
        "audit",
        router,
        menu=(MenuEntry("Audit log", "/backoffice/audit", P.AUDIT_READ, 14, area=ADMINISTRATION),),
        permissions=(P.AUDIT_READ,),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.AUDIT_READ))]


def _day_filter(tz: str, *, end: bool) -> Any:
    def apply(q: Select[Any], v: str) -> Select[Any]:
        try:
            day = dt.date.fromisoformat(v)
        except ValueError:
            return q.where(false())
        start = dt.datetime.combine(day + dt.timedelta(days=1 if end else 0), dt.time(), zone(tz))
        return q.where(AuditEvent.at < start) if end else q.where(AuditEvent.at >= start)

    return apply


def _json(value: Any) -> str:
    """A before/after state as the list and its export show it (masked again: rows written before a
    secret's name was known stay hidden too)."""
    return "" if value is None else json.dumps(mask_secrets(value), ensure_ascii=False, sort_keys=True)


@router.get("/audit")
async def audit_list(request: Request, session: ReadDbDep, me: Reader) -> Response:
    spec = ListSpec(
        query=select(AuditEvent),
        columns=[
            Column("seq", "#", AuditEvent.seq),
            Column("at", "When", AuditEvent.at),
            Column("actor", "Who", AuditEvent.actor),
            Column("ip", "From", AuditEvent.ip),
            Column("action", "What", AuditEvent.action),
            Column("target", "Target", AuditEvent.target),
            Column("outcome", "Outcome", AuditEvent.outcome),
            Column("before", "Before", None, lambda r: _json(r.before)),
            Column("after", "After", None, lambda r: _json(r.after)),
        ],
        search=[AuditEvent.actor, AuditEvent.target, AuditEvent.action, AuditEvent.ip],
        filters=[
            Filter("actor", "Who", lambda q, v: q.where(AuditEvent.actor.ilike(f"%{v}%"))),
            Filter("action", "What", lambda q, v: q.where(AuditEvent.action.ilike(f"{v}%"))),
            Filter("target", "Target", lambda q, v: q.where(AuditEvent.target.ilike(f"%{v}%"))),
            Filter(
                "outcome",
                "Outcome",
                lambda q, v: q.where(AuditEvent.outcome == v),
                [("ok", "ok"), ("failed", "failed"), ("refused", "refused")],
            ),
            Filter("from", "From (date)", _day_filter(me.timezone, end=False), kind="date"),
            Filter("to", "To (date)", _day_filter(me.timezone, end=True), kind="date"),
        ],
        default_sort="seq",
        page_size=50,
        sheet="audit",
    )
    return respond(request, await spec.run(session, request), "audit/list.html")


@router.get("/audit/{event_id}")
async def audit_event(request: Request, event_id: Id, session: ReadDbDep, _: Reader) -> Response:
    row = await session.get(AuditEvent, event_id)
    if row is None:
        raise PageNotFound()
    pretty = {
        k: json.dumps(mask_secrets(getattr(row, k)), ensure_ascii=False, sort_keys=True, indent=2)
        for k in ("before", "after")
    }
    return render(request, "audit/event.html", e=row, pretty=pretty)
