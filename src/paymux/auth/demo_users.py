"""Demo users: one per predefined role, with fresh random passwords printed by ``paymux demo``."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.auth.permissions import AGENT, PREDEFINED_ROLES
from paymux.auth.user_models import Organization, User
from paymux.auth.users import (
    create_user,
    ensure_builtin_roles,
    ensure_operator_org,
    set_password,
    user_by_name,
)
from paymux.catalog.models import Agent

DEMO_AGENT = "dealer-north"


async def seed_demo_users(session: AsyncSession) -> dict[str, str]:
    """Create (or reset the password of) user ``demo-<role>`` for every predefined role; returns passwords.

    The Agent's user belongs to the organization of the demo agent ``dealer-north`` (scoped to its
    channels). The caller commits.
    """
    roles = await ensure_builtin_roles(session)
    operator = await ensure_operator_org(session)
    agent_org = operator
    agent = await session.scalar(select(Agent).where(Agent.code == DEMO_AGENT))
    if agent is not None:
        org = await session.scalar(select(Organization).where(Organization.agent_id == agent.id))
        if org is None:
            org = Organization(code=DEMO_AGENT, name=agent.name, kind="agent", agent_id=agent.id)
            session.add(org)
            await session.flush()
        agent_org = org
    out: dict[str, str] = {}
    for code in PREDEFINED_ROLES:
        name = f"demo-{code.replace('_', '-')}"
        password = secrets.token_urlsafe(12)
        user: User | None = await user_by_name(session, name)
        if user is None:
            user = await create_user(
                session,
                username=name,
                password=password,
                role=roles[code],
                organization=agent_org if code == AGENT else operator,
                full_name=f"Demo {PREDEFINED_ROLES[code]}",
            )
            await audit.record(session, "demo", "user.create", f"user:{name}", None, {"role": code})
        else:
            await set_password(session, user, password)
            user.enabled = True
        out[name] = password
    return out
