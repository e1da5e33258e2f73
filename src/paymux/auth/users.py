"""Users, roles and organizations: the service the back office, the CLI and the demo call."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.passwords import check_policy, hash_password_off_loop
from paymux.auth.permissions import PREDEFINED_ROLES
from paymux.auth.user_models import ApiToken, Organization, Role, User, UserSession
from paymux.db.base import utcnow

OPERATOR_ORG = "operator"


class UserError(ValueError):
    """A readable reason a user/role/organization change is refused."""


async def ensure_builtin_roles(session: AsyncSession) -> dict[str, Role]:
    """Create the predefined roles that are missing; returns every predefined role by code."""
    existing = {r.code: r for r in (await session.scalars(select(Role).where(Role.builtin.is_(True)))).all()}
    for code, name in PREDEFINED_ROLES.items():
        if code not in existing:
            role = Role(code=code, name=name, builtin=True, permissions=[], allowed_networks=[])
            session.add(role)
            existing[code] = role
    await session.flush()
    return existing


async def ensure_operator_org(session: AsyncSession, name: str = "Operator") -> Organization:
    org = await session.scalar(select(Organization).where(Organization.code == OPERATOR_ORG))
    if org is None:
        org = Organization(code=OPERATOR_ORG, name=name, kind="operator")
        session.add(org)
        await session.flush()
    return org


async def user_by_name(session: AsyncSession, username: str) -> User | None:
    return await session.scalar(select(User).where(func.lower(User.username) == username.strip().lower()))


def normalize_username(username: str) -> str:
    name = username.strip().lower()
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-@" for c in name):
        raise UserError("A user name has 1 to 64 letters, digits, dots, dashes, underscores or @.")
    return name


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str | None,
    role: Role,
    organization: Organization,
    full_name: str = "",
    email: str | None = None,
    phone: str | None = None,
    timezone: str = "UTC",
    language: str = "en",
) -> User:
    """A new user (password checked against the policy). The caller audits and commits."""
    name = normalize_username(username)
    if await user_by_name(session, name) is not None:
        raise UserError(f"The user name {name} is taken.")
    if password is not None:
        check_policy(password, username=name)
    user = User(
        username=name,
        full_name=full_name,
        email=email or None,
        phone=phone or None,
        role_id=role.id,
        organization_id=organization.id,
        password_hash=await hash_password_off_loop(password) if password is not None else None,
        password_changed_at=utcnow() if password is not None else None,
        timezone=timezone,
        language=language,
        allowed_networks=[],
        enabled=True,
        failed_logins=0,
        second_factor="none",
    )
    session.add(user)
    await session.flush()
    return user


async def set_password(session: AsyncSession, user: User, password: str) -> None:
    check_policy(password, username=user.username)
    user.password_hash = await hash_password_off_loop(password)
    user.password_changed_at = utcnow()
    user.failed_logins = 0
    user.locked_until = None
    await session.flush()


async def end_user_sessions(
    session: AsyncSession, user_id: int, reason: str, *, except_id: int | None = None
) -> int:
    """End every open session of the user; returns how many."""
    q = update(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
    if except_id is not None:
        q = q.where(UserSession.id != except_id)
    result = await session.execute(q.values(ended_at=utcnow(), end_reason=reason))
    return int(getattr(result, "rowcount", 0) or 0)


async def set_enabled(session: AsyncSession, user: User, enabled: bool) -> None:
    """Enable or disable an account; disabling ends its sessions and revokes nothing else."""
    user.enabled = enabled
    if not enabled:
        await end_user_sessions(session, user.id, "disabled")
    await session.flush()


def user_state(user: User) -> dict[str, Any]:
    """What the audit log records of a user (never the password hash or the TOTP secret)."""
    return {
        "username": user.username,
        "full_name": user.full_name,
        "email": user.email,
        "phone": user.phone,
        "organization_id": user.organization_id,
        "role_id": user.role_id,
        "enabled": user.enabled,
        "timezone": user.timezone,
        "language": user.language,
        "second_factor": user.second_factor,
        "cert_subject": user.cert_subject,
        "allowed_networks": list(user.allowed_networks or []),
        "working_hours": user.working_hours,
        "locked_until": user.locked_until,
        "password_changed_at": user.password_changed_at,
    }


def role_state(role: Role) -> dict[str, Any]:
    from paymux.auth.principal import permissions_of

    return {
        "code": role.code,
        "name": role.name,
        "builtin": role.builtin,
        "permissions": sorted(permissions_of(role)),
        "require_second_factor": role.require_second_factor,
        "allowed_networks": list(role.allowed_networks or []),
        "working_hours": role.working_hours,
    }


def org_state(org: Organization) -> dict[str, Any]:
    return {"code": org.code, "name": org.name, "kind": org.kind, "agent_id": org.agent_id}


async def count_active_tokens(session: AsyncSession, user_id: int) -> int:
    q = (
        select(func.count())
        .select_from(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    )
    return int(await session.scalar(q) or 0)
