"""Login checks: credentials, lockout, IP ranges and working hours, whether a second factor is due.

Every attempt is audited. Unknown users, wrong passwords, locked and disabled accounts all get the
same answer after the same Argon2 work, so the answer does not tell which accounts exist.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.auth.access import ip_allowed, within_hours
from paymux.auth.passwords import hash_password_off_loop, needs_rehash, verify_password_off_loop
from paymux.auth.user_models import Role, User
from paymux.auth.users import user_by_name
from paymux.backoffice.settings import BackofficeSettings

WRONG_CREDENTIALS = "Wrong user name or password."
NOT_ALLOWED_NOW = "Login is not allowed from this address or at this time."


@dataclass
class LoginOutcome:
    ok: bool
    user: User | None = None
    stage: str = "active"  # "active", "second_factor" or "enrol"
    error: str = ""  # a msgid for the login page


def _actor(username: str) -> str:
    return f"user:{username[:100]}"


async def access_refusal(session: AsyncSession, user: User, ip: str, now: dt.datetime) -> str | None:
    """Why the user may not log in from ``ip`` at ``now`` ("network", "hours"), or None."""
    role = await session.get(Role, user.role_id)
    networks = [list(user.allowed_networks or []), list(role.allowed_networks or []) if role else []]
    if not all(ip_allowed(ip, n) for n in networks):
        return "network"
    for rule in (user.working_hours, role.working_hours if role else None):
        if not within_hours(rule, user.timezone, now):
            return "hours"
    return None


async def second_factor_stage(session: AsyncSession, user: User) -> str:
    if user.second_factor != "none":
        return "second_factor"
    role = await session.get(Role, user.role_id)
    return "enrol" if role is not None and role.require_second_factor else "active"


async def register_failure(
    session: AsyncSession, user: User, settings: BackofficeSettings, now: dt.datetime, ip: str
) -> None:
    """Count a failed attempt; lock the account at the limit."""
    user.failed_logins = (user.failed_logins or 0) + 1
    if user.failed_logins >= settings.lockout_failures:
        user.locked_until = now + dt.timedelta(minutes=settings.lockout_minutes)
        user.failed_logins = 0
        await audit.record(
            session,
            "system",
            "user.locked",
            f"user:{user.username}",
            None,
            {"locked_until": user.locked_until},
            ip=ip,
        )


async def _login_refused(
    session: AsyncSession, actor: str, target: str, method: str, reason: str, ip: str, outcome: str = "failed"
) -> None:
    """Audit a login attempt that did not get in (the caller answers it)."""
    await audit.record(
        session, actor, "login", target, None, {"method": method, "reason": reason}, outcome=outcome, ip=ip
    )


def is_locked(user: User, now: dt.datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


async def password_login(
    session: AsyncSession,
    settings: BackofficeSettings,
    username: str,
    password: str,
    *,
    ip: str,
    now: dt.datetime,
) -> LoginOutcome:
    """Check a user name and password (the caller commits, also after a failure: it is audited)."""
    user = await user_by_name(session, username) if username.strip() else None
    good = await verify_password_off_loop(user.password_hash if user is not None else None, password)
    target = f"user:{username.strip()[:100]}"
    if user is None:
        await _login_refused(session, _actor(username), target, "password", "unknown user", ip)
        return LoginOutcome(False, error=WRONG_CREDENTIALS)
    if is_locked(user, now):
        await _login_refused(session, _actor(user.username), target, "password", "locked", ip)
        return LoginOutcome(False, error=WRONG_CREDENTIALS)
    if not good:
        await register_failure(session, user, settings, now, ip)
        await _login_refused(session, _actor(user.username), target, "password", "wrong password", ip)
        return LoginOutcome(False, error=WRONG_CREDENTIALS)
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = await hash_password_off_loop(password)
    return await _admitted(session, user, "password", ip=ip, now=now)


async def certificate_login(
    session: AsyncSession, identity: str, *, ip: str, now: dt.datetime
) -> LoginOutcome:
    """Log in the user mapped to a client-certificate identity vouched for by the trusted proxy."""
    user = await session.scalar(select(User).where(User.cert_subject == identity))
    if user is None:
        await _login_refused(
            session, "anonymous", f"cert:{identity[:200]}", "certificate", "unknown certificate", ip
        )
        return LoginOutcome(False, error="This certificate is not linked to a user.")
    if is_locked(user, now):
        await _login_refused(
            session, _actor(user.username), f"user:{user.username}", "certificate", "locked", ip
        )
        return LoginOutcome(False, error=WRONG_CREDENTIALS)
    return await _admitted(session, user, "certificate", ip=ip, now=now)


async def _admitted(
    session: AsyncSession, user: User, method: str, *, ip: str, now: dt.datetime
) -> LoginOutcome:
    """Credentials are good: check the account and the access rules, say which step comes next."""
    target = f"user:{user.username}"
    if not user.enabled:
        await _login_refused(session, _actor(user.username), target, method, "disabled", ip)
        return LoginOutcome(False, error=WRONG_CREDENTIALS)
    refusal = await access_refusal(session, user, ip, now)
    if refusal is not None:
        await _login_refused(
            session,
            _actor(user.username),
            target,
            method,
            f"outside allowed {refusal}",
            ip,
            outcome="refused",
        )
        return LoginOutcome(False, user=user, error=NOT_ALLOWED_NOW)
    user.failed_logins = 0
    stage = await second_factor_stage(session, user)
    if stage == "active":
        user.last_login_at = now
        await audit.record(session, _actor(user.username), "login", target, None, {"method": method}, ip=ip)
    else:
        await audit.record(
            session,
            _actor(user.username),
            "login.first_step",
            target,
            None,
            {"method": method, "next": stage},
            ip=ip,
        )
    return LoginOutcome(True, user=user, stage=stage)
