"""Users: list, create, edit, enable/disable, unlock, set password, reset second factor, end sessions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import false, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.api.params import Count, Id, parse_id
from paymux.auth import permissions as P
from paymux.auth.access import AccessRuleError
from paymux.auth.grants import (
    check_give_role,
    check_manage_user,
    check_organization,
    may_give,
    may_manage_user,
)
from paymux.auth.passwords import PasswordPolicyError
from paymux.auth.principal import Principal
from paymux.auth.tokens import revoke
from paymux.auth.user_models import ApiToken, Organization, Role, User, UserSession
from paymux.auth.users import (
    UserError,
    create_user,
    end_user_sessions,
    set_enabled,
    set_password,
    user_state,
)
from paymux.backoffice.forms import WEEKDAYS, access_rules, timezones, valid_timezone
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
from paymux.backoffice.i18n import LANGUAGES
from paymux.backoffice.listing import Column, Filter, ListSpec, respond
from paymux.db.base import utcnow

router = section_router()
register(
    Section(
        "users",
        router,
        menu=(MenuEntry("Users", "/backoffice/users", P.USERS_READ, 10, area=ADMINISTRATION),),
        permissions=(P.USERS_READ, P.USERS_WRITE, P.SESSIONS_END),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.USERS_READ))]
Writer = Annotated[Principal, Depends(require(P.USERS_WRITE))]
SessionEnder = Annotated[Principal, Depends(require(P.SESSIONS_END))]


def _bool_filter(column: Any) -> Any:
    return lambda q, v: q.where(column.is_(v == "yes"))


async def _spec(session: AsyncSession) -> ListSpec:
    roles = (await session.execute(select(Role.id, Role.name).order_by(Role.name))).all()
    orgs = (
        await session.execute(select(Organization.id, Organization.name).order_by(Organization.name))
    ).all()
    return ListSpec(
        query=select(User, Role.name.label("role"), Organization.name.label("org"))
        .join(Role, Role.id == User.role_id)
        .join(Organization, Organization.id == User.organization_id),
        columns=[
            Column("username", "User name", User.username, lambda r: r[0].username),
            Column("full_name", "Full name", User.full_name, lambda r: r[0].full_name),
            Column("role", "Role", Role.name, lambda r: r.role),
            Column("org", "Organization", Organization.name, lambda r: r.org),
            Column("enabled", "Enabled", User.enabled, lambda r: r[0].enabled),
            Column("second_factor", "Second factor", User.second_factor, lambda r: r[0].second_factor),
            Column("last_login_at", "Last login", User.last_login_at, lambda r: r[0].last_login_at),
            Column("locked_until", "Locked until", User.locked_until, lambda r: r[0].locked_until),
        ],
        search=[User.username, User.full_name, User.email],
        filters=[
            Filter(
                "role",
                "Role",
                lambda q, v: q.where(User.role_id == parse_id(v) if parse_id(v) else false()),
                [(str(i), n) for i, n in roles],
            ),
            Filter(
                "org",
                "Organization",
                lambda q, v: q.where(User.organization_id == parse_id(v) if parse_id(v) else false()),
                [(str(i), n) for i, n in orgs],
            ),
            Filter("enabled", "Enabled", _bool_filter(User.enabled), [("yes", "yes"), ("no", "no")]),
        ],
        default_sort="username",
        default_desc=False,
        sheet="users",
    )


@router.get("/users")
async def users_list(request: Request, session: ReadDbDep, _: Reader) -> Response:
    spec = await _spec(session)
    return respond(request, await spec.run(session, request), "users/list.html")


async def _choices(session: AsyncSession, me: Principal) -> dict[str, Any]:
    """The roles and organizations ``me`` may give a user (the rest are refused if posted anyway)."""
    roles = (await session.scalars(select(Role).order_by(Role.name))).all()
    orgs = (await session.scalars(select(Organization).order_by(Organization.name))).all()
    return {
        "roles": [r for r in roles if may_give(me, r)],
        "orgs": [o for o in orgs if not me.agent_scoped or o.id == me.organization_id],
        "timezones": timezones(),
        "weekdays": WEEKDAYS,
    }


async def _check_manage(session: AsyncSession, me: Principal, user: User) -> None:
    """``me`` may change ``user``: the user holds nothing ``me`` could not give (else GrantRefused)."""
    check_manage_user(
        me, await session.get(Role, user.role_id), await session.get(Organization, user.organization_id)
    )


def _rules(user: User | None) -> dict[str, Any]:
    return {
        "networks": list(user.allowed_networks or []) if user else [],
        "hours": user.working_hours if user else None,
    }


@router.get("/users/new")
async def user_new(request: Request, session: DbDep, me: Writer) -> Response:
    return render(request, "users/new.html", error="", form=_blank_form(), **await _choices(session, me))


def _blank_form() -> dict[str, Any]:
    return dict.fromkeys(("username", "full_name", "email", "phone", "role_id", "organization_id"), "") | {
        "timezone": "UTC",
        "language": "en",
    }


@router.post("/users")
async def user_create(
    request: Request,
    session: DbDep,
    me: Writer,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    full_name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    role_id: Annotated[Count, Form()] = 0,
    organization_id: Annotated[Count, Form()] = 0,
    timezone: Annotated[str, Form()] = "UTC",
    language: Annotated[str, Form()] = "en",
) -> Response:
    role = await session.get(Role, role_id)
    org = await session.get(Organization, organization_id)
    form = {
        "username": username,
        "full_name": full_name,
        "email": email,
        "phone": phone,
        "role_id": role_id,
        "organization_id": organization_id,
        "timezone": timezone,
        "language": language,
    }
    try:
        if role is None or org is None:
            raise UserError("Choose a role and an organization.")
        check_give_role(me, role)
        check_organization(me, org)
        if not valid_timezone(timezone) or language not in LANGUAGES:
            raise UserError("Unknown timezone or language.")
        user = await create_user(
            session,
            username=username,
            password=password,
            role=role,
            organization=org,
            full_name=full_name,
            email=email,
            phone=phone,
            timezone=timezone,
            language=language,
        )
    except (UserError, PasswordPolicyError) as e:
        await session.rollback()
        return render(request, "users/new.html", 422, error=str(e), form=form, **await _choices(session, me))
    await audit.record(session, me, "user.create", f"user:{user.username}", None, user_state(user))
    await session.commit()
    return redirect(f"/backoffice/users/{user.id}", "The user was created.")


async def _user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise PageNotFound()
    return user


async def _detail(
    request: Request,
    session: AsyncSession,
    me: Principal,
    user: User,
    error: str = "",
    status: int = 200,
) -> Response:
    sessions = (
        await session.scalars(
            select(UserSession)
            .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
            .order_by(UserSession.created_at.desc())
        )
    ).all()
    tokens = (
        await session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
        )
    ).all()
    return render(
        request,
        "users/detail.html",
        status,
        u=user,
        sessions=sessions,
        tokens=tokens,
        now=utcnow(),
        error=error,
        rules=_rules(user),
        languages_all=LANGUAGES,
        manageable=may_manage_user(
            me, await session.get(Role, user.role_id), await session.get(Organization, user.organization_id)
        ),
        **await _choices(session, me),
    )


@router.get("/users/{user_id}")
async def user_detail(request: Request, user_id: Id, session: ReadDbDep, me: Reader) -> Response:
    return await _detail(request, session, me, await _user(session, user_id))


@router.post("/users/{user_id}")
async def user_update(
    request: Request,
    user_id: Id,
    session: DbDep,
    me: Writer,
    full_name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    phone: Annotated[str, Form()] = "",
    role_id: Annotated[Count, Form()] = 0,
    organization_id: Annotated[Count, Form()] = 0,
    timezone: Annotated[str, Form()] = "UTC",
    language: Annotated[str, Form()] = "en",
    cert_subject: Annotated[str, Form()] = "",
) -> Response:
    user = await _user(session, user_id)
    await _check_manage(session, me, user)
    before = user_state(user)
    try:
        role, org = await session.get(Role, role_id), await session.get(Organization, organization_id)
        if role is None or org is None:
            raise UserError("Choose a role and an organization.")
        check_give_role(me, role)
        check_organization(me, org)
        if not valid_timezone(timezone) or language not in LANGUAGES:
            raise UserError("Unknown timezone or language.")
        networks, hours = await access_rules(request)
        cert = cert_subject.strip() or None
        if cert and await session.scalar(
            select(User.id).where(User.cert_subject == cert, User.id != user.id)
        ):
            raise UserError("This certificate subject belongs to another user.")
    except (UserError, AccessRuleError) as e:
        return await _detail(request, session, me, user, str(e), 422)
    role_changed = user.role_id != role_id or user.organization_id != organization_id
    user.full_name, user.email, user.phone = full_name, email or None, phone or None
    user.role_id, user.organization_id, user.timezone, user.language = (
        role_id,
        organization_id,
        timezone,
        language,
    )
    user.cert_subject, user.allowed_networks, user.working_hours = cert, networks, hours
    if role_changed:  # rights changed: the user logs in again
        await end_user_sessions(session, user.id, "rights changed")
    await session.flush()
    await audit.record(session, me, "user.update", f"user:{user.username}", before, user_state(user))
    await session.commit()
    return redirect(f"/backoffice/users/{user.id}", "Saved.")


async def _action(session: AsyncSession, me: Principal, user: User, action: str, change: Any) -> Response:
    await _check_manage(session, me, user)
    before = user_state(user)
    await change()
    await session.flush()
    await audit.record(session, me, action, f"user:{user.username}", before, user_state(user))
    await session.commit()
    return redirect(f"/backoffice/users/{user.id}", "Saved.")


@router.post("/users/{user_id}/disable")
async def user_disable(user_id: Id, session: DbDep, me: Writer) -> Response:
    user = await _user(session, user_id)
    if user.id == me.user_id:
        return redirect(f"/backoffice/users/{user.id}", "You cannot disable yourself.")
    return await _action(session, me, user, "user.disable", lambda: set_enabled(session, user, False))


@router.post("/users/{user_id}/enable")
async def user_enable(user_id: Id, session: DbDep, me: Writer) -> Response:
    user = await _user(session, user_id)
    return await _action(session, me, user, "user.enable", lambda: set_enabled(session, user, True))


@router.post("/users/{user_id}/unlock")
async def user_unlock(user_id: Id, session: DbDep, me: Writer) -> Response:
    user = await _user(session, user_id)

    async def unlock() -> None:
        user.locked_until, user.failed_logins = None, 0

    return await _action(session, me, user, "user.unlock", unlock)


@router.post("/users/{user_id}/password")
async def user_password(
    request: Request, user_id: Id, session: DbDep, me: Writer, password: Annotated[str, Form()] = ""
) -> Response:
    user = await _user(session, user_id)
    await _check_manage(session, me, user)
    before = user_state(user)
    try:
        await set_password(session, user, password)
    except PasswordPolicyError as e:
        return await _detail(request, session, me, user, str(e), 422)
    await end_user_sessions(session, user.id, "password set")
    await audit.record(session, me, "user.password", f"user:{user.username}", before, user_state(user))
    await session.commit()
    return redirect(f"/backoffice/users/{user.id}", "The password was set; the user's sessions were ended.")


@router.post("/users/{user_id}/reset-second-factor")
async def user_reset_second_factor(user_id: Id, session: DbDep, me: Writer) -> Response:
    user = await _user(session, user_id)

    async def reset() -> None:
        user.second_factor, user.totp_secret, user.totp_last_step = "none", None, None
        await end_user_sessions(session, user.id, "second factor reset")

    return await _action(session, me, user, "user.second_factor_reset", reset)


@router.post("/users/{user_id}/end-sessions")
async def user_end_sessions(user_id: Id, session: DbDep, me: SessionEnder) -> Response:
    user = await _user(session, user_id)
    ended = await end_user_sessions(session, user.id, "ended by administrator")
    await audit.record(session, me, "user.sessions_end", f"user:{user.username}", None, {"ended": ended})
    await session.commit()
    return redirect(f"/backoffice/users/{user.id}", "The user's sessions were ended.")


async def _token(session: AsyncSession, me: Principal, user_id: int, token_id: int) -> tuple[User, ApiToken]:
    """The user's personal API token, if ``me`` may manage the user (else GrantRefused)."""
    user = await _user(session, user_id)
    token = await session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise PageNotFound()
    await _check_manage(session, me, user)
    return user, token


@router.get("/users/{user_id}/tokens/{token_id}/revoke")
async def user_token_revoke_confirm(
    request: Request, user_id: Id, token_id: Id, session: DbDep, me: Writer
) -> Response:
    user, token = await _token(session, me, user_id, token_id)
    return render(
        request,
        "credentials/revoke.html",
        what="API token of {owner}",
        owner=user.username,
        label="Token",
        item={
            "id": token.id,
            "prefix": token.prefix,
            "created_at": token.created_at,
            "revoked_at": token.revoked_at,
            "state": "expired" if token.expires_at and token.expires_at <= utcnow() else "active",
        },
        action=f"/backoffice/users/{user.id}/tokens/{token.id}/revoke",
        back=f"/backoffice/users/{user.id}",
        note="Requests with this token are refused at once.",
        seconds="0",
    )


@router.post("/users/{user_id}/tokens/{token_id}/revoke")
async def user_token_revoke(user_id: Id, token_id: Id, session: DbDep, me: Writer) -> Response:
    user, token = await _token(session, me, user_id, token_id)
    if token.revoked_at is not None:
        return redirect(f"/backoffice/users/{user.id}", "It was revoked already.")
    revoke(token)
    await audit.record(
        session,
        me,
        "token.revoke",
        f"user:{user.username}",
        {"id": token.id, "prefix": token.prefix, "revoked_at": None},
        {"id": token.id, "prefix": token.prefix, "revoked_at": token.revoked_at},
    )
    await session.commit()
    return redirect(f"/backoffice/users/{user.id}", "The token was revoked.")
