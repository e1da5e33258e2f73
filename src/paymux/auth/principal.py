"""Who is acting: a back-office user (session or API token) or a legacy admin token."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.keys import admin_for_token
from paymux.auth.permissions import AGENT_PERMISSIONS, PERMISSIONS, role_permissions
from paymux.auth.tokens import PREFIX, user_for_token
from paymux.auth.user_models import Organization, Role, User
from paymux.catalog.models import Channel


@dataclass
class Principal:
    kind: str  # "user" or "admin_token"
    name: str
    permissions: frozenset[str]
    user_id: int | None = None
    organization_id: int | None = None
    # set when the user belongs to an agent's organization: everything is scoped to its channels
    agent_id: int | None = None
    agent_scoped: bool = False
    ip: str = ""
    timezone: str = "UTC"
    language: str = "en"
    via: str = ""  # "session", "token <prefix>", "admin token"
    role_code: str = ""  # the user's predefined role ("" for a custom role): its delegations apply
    extra: dict[str, object] = field(default_factory=dict)

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def audit_name(self) -> str:
        if self.kind == "admin_token":
            return f"admin:{self.name}"
        return f"user:{self.name}" + (f" ({self.via})" if self.via.startswith("token") else "")


def permissions_of(role: Role) -> frozenset[str]:
    """A built-in role's permissions come from code; a custom role's from its row (known ones only)."""
    if role.builtin:
        return role_permissions(role.code)
    return frozenset(p for p in role.permissions if p in PERMISSIONS)


async def principal_for_user(session: AsyncSession, user: User, *, ip: str, via: str) -> Principal:
    role = await session.get(Role, user.role_id)
    org = await session.get(Organization, user.organization_id)
    scoped = org is not None and org.kind == "agent"
    permissions = permissions_of(role) if role else frozenset()
    if scoped:  # an agent's user holds no more than an agent may, whatever role it was given
        permissions &= AGENT_PERMISSIONS
    return Principal(
        kind="user",
        name=user.username,
        permissions=permissions,
        user_id=user.id,
        organization_id=user.organization_id,
        agent_id=org.agent_id if org else None,
        agent_scoped=scoped,
        ip=ip,
        timezone=user.timezone,
        language=user.language,
        via=via,
        role_code=role.code if role is not None and role.builtin else "",
    )


async def principal_for_token(session: AsyncSession, raw: str, *, ip: str = "") -> Principal | None:
    """Who an admin API token stands for: a personal token's user, or a legacy admin token (every
    permission); None for a token that is unknown, expired or revoked, or whose user is disabled.

    The caller applies what depends on how the token came (the admin API checks the user's networks).
    """
    if raw.startswith(PREFIX + "_"):
        found = await user_for_token(session, raw)
        if found is None:
            return None
        row, user = found
        return await principal_for_user(session, user, ip=ip, via=f"token {row.prefix}")
    admin = await admin_for_token(session, raw)
    return legacy_admin(admin.name, ip) if admin is not None else None


def legacy_admin(name: str, ip: str = "") -> Principal:
    """A pre-back-office admin token: every permission, unscoped."""
    return Principal(
        kind="admin_token", name=name, permissions=frozenset(PERMISSIONS), ip=ip, via="admin token"
    )


async def channel_scope(session: AsyncSession, principal: Principal) -> set[int] | None:
    """Channel ids the principal may see; None means every channel (the operator's own staff)."""
    if not principal.agent_scoped:
        return None
    if principal.agent_id is None:
        return set()
    return set(
        (await session.scalars(select(Channel.id).where(Channel.agent_id == principal.agent_id))).all()
    )
