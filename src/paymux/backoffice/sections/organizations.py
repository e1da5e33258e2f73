"""Organizations: the operator and the agents/dealers (linked to catalog agents) whose users are scoped."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from paymux import audit
from paymux.api.params import Id
from paymux.auth import permissions as P
from paymux.auth.grants import check_change_organizations
from paymux.auth.principal import Principal
from paymux.auth.user_models import ORG_KINDS, Organization, User
from paymux.auth.users import org_state
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
from paymux.backoffice.listing import Column, Filter, ListSpec, respond
from paymux.catalog.models import Agent

router = section_router()
register(
    Section(
        "organizations",
        router,
        menu=(MenuEntry("Organizations", "/backoffice/organizations", P.ORGS_READ, 12, area=ADMINISTRATION),),
        permissions=(P.ORGS_READ, P.ORGS_WRITE),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.ORGS_READ))]
Writer = Annotated[Principal, Depends(require(P.ORGS_WRITE))]


@router.get("/organizations")
async def organizations(request: Request, session: ReadDbDep, _: Reader) -> Response:
    spec = ListSpec(
        query=select(Organization, Agent.code.label("agent")).outerjoin(
            Agent, Agent.id == Organization.agent_id
        ),
        columns=[
            Column("code", "Code", Organization.code, lambda r: r[0].code),
            Column("name", "Name", Organization.name, lambda r: r[0].name),
            Column("kind", "Kind", Organization.kind, lambda r: r[0].kind),
            Column("agent", "Agent", Agent.code, lambda r: r.agent),
            Column("created_at", "Created", Organization.created_at, lambda r: r[0].created_at),
        ],
        search=[Organization.code, Organization.name],
        filters=[
            Filter("kind", "Kind", lambda q, v: q.where(Organization.kind == v), [(k, k) for k in ORG_KINDS])
        ],
        default_sort="name",
        default_desc=False,
        sheet="organizations",
    )
    agents = (await session.scalars(select(Agent).order_by(Agent.code))).all()
    return respond(request, await spec.run(session, request), "orgs/list.html", agents=agents, error="")


@router.post("/organizations")
async def organization_save(
    session: DbDep,
    me: Writer,
    code: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "agent",
    agent: Annotated[str, Form()] = "",
) -> Response:
    """Create an organization, or rename/relink the one with this code."""
    check_change_organizations(me)
    code = code.strip().lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", code) or not name.strip() or kind not in ORG_KINDS:
        return redirect("/backoffice/organizations", "Give a code, a name and a kind.")
    agent_row = await session.scalar(select(Agent).where(Agent.code == agent)) if agent else None
    if kind == "agent" and agent_row is None:
        return redirect(
            "/backoffice/organizations", "An agent's organization must be linked to a catalog agent."
        )
    org = await session.scalar(select(Organization).where(Organization.code == code))
    before = org_state(org) if org else None
    if org is None:
        org = Organization(code=code, name=name.strip(), kind=kind)
        session.add(org)
    org.name, org.kind = name.strip(), kind
    org.agent_id = agent_row.id if agent_row and kind == "agent" else None
    other = (
        await session.scalar(
            select(Organization.id).where(Organization.agent_id == org.agent_id, Organization.code != code)
        )
        if org.agent_id
        else None
    )
    if other:
        await session.rollback()
        return redirect("/backoffice/organizations", "This agent already has an organization.")
    await session.flush()
    await audit.record(
        session, me, "org.update" if before else "org.create", f"org:{code}", before, org_state(org)
    )
    await session.commit()
    return redirect("/backoffice/organizations", "Saved.")


@router.get("/organizations/{org_id}")
async def organization_detail(request: Request, org_id: Id, session: ReadDbDep, _: Reader) -> Response:
    """The organization, and how many users it has (their list is linked for whoever may see users)."""
    org = await session.get(Organization, org_id)
    if org is None:
        raise PageNotFound()
    agent = await session.get(Agent, org.agent_id) if org.agent_id else None
    users = await session.scalar(select(func.count()).select_from(User).where(User.organization_id == org.id))
    return render(request, "orgs/detail.html", org=org, agent=agent, users=int(users or 0))
