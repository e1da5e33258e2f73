"""The signed-in user's own account: timezone, language, password, second factor, API tokens."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import select

from paymux import audit
from paymux.api.params import Id, Int64
from paymux.auth import permissions as P
from paymux.auth.passwords import PasswordPolicyError, verify_password_off_loop
from paymux.auth.principal import Principal
from paymux.auth.tokens import issue_token, revoke
from paymux.auth.user_models import ApiToken, Role, User, UserSession
from paymux.auth.users import end_user_sessions, set_password, user_state
from paymux.backoffice.forms import timezones, valid_timezone
from paymux.backoffice.framework import (
    DbDep,
    MenuEntry,
    PageNotFound,
    PrincipalDep,
    Section,
    redirect,
    register,
    render,
    require,
    section_router,
)
from paymux.backoffice.i18n import LANGUAGES
from paymux.backoffice.sections.auth_pages import _send, confirm_enrolment, enrolment_page
from paymux.db.base import utcnow

router = section_router()
register(Section("account", router, menu=(MenuEntry("My account", "/backoffice/account", None, 90),)))

TokenUser = Annotated[Principal, Depends(require(P.API_TOKENS))]
HOME = "/backoffice/account"


async def _me(session: DbDep, me: Principal) -> User:
    user = await session.get(User, me.user_id)
    assert user is not None
    return user


async def _page(
    request: Request,
    session: DbDep,
    me: Principal,
    *,
    error: str = "",
    new_token: str = "",
    status: int = 200,
) -> Response:
    user = await _me(session, me)
    role = await session.get(Role, user.role_id)
    tokens = (
        await session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
        )
    ).all()
    return render(
        request,
        "account/index.html",
        status,
        u=user,
        role=role,
        tokens=tokens,
        error=error,
        new_token=new_token,
        timezones=timezones(),
        now=utcnow(),
    )


@router.get("/account")
async def account(request: Request, session: DbDep, me: PrincipalDep) -> Response:
    return await _page(request, session, me)


@router.post("/account/settings")
async def account_settings(
    request: Request,
    session: DbDep,
    me: PrincipalDep,
    timezone: Annotated[str, Form()] = "UTC",
    language: Annotated[str, Form()] = "en",
) -> Response:
    user = await _me(session, me)
    if not valid_timezone(timezone) or language not in LANGUAGES:
        return await _page(request, session, me, error="Unknown timezone or language.", status=422)
    before = user_state(user)
    user.timezone, user.language = timezone, language
    await audit.record(session, me, "user.settings", f"user:{user.username}", before, user_state(user))
    await session.commit()
    return redirect(HOME, "Saved.")


@router.post("/account/password")
async def account_password(
    request: Request,
    session: DbDep,
    me: PrincipalDep,
    current: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    user = await _me(session, me)
    if not await verify_password_off_loop(user.password_hash, current):
        return await _page(request, session, me, error="The current password is wrong.", status=422)
    try:
        await set_password(session, user, password)
    except PasswordPolicyError as e:
        return await _page(request, session, me, error=str(e), status=422)
    row: UserSession = request.state.bo_session
    ended = await end_user_sessions(session, user.id, "password changed", except_id=row.id)
    await audit.record(
        session, me, "user.password", f"user:{user.username}", None, {"other_sessions_ended": ended}
    )
    await session.commit()
    return redirect(HOME, "Your password was changed; your other sessions were ended.")


@router.get("/account/2fa")
async def account_2fa(request: Request, session: DbDep, me: PrincipalDep) -> Response:
    row: UserSession = request.state.bo_session
    return await enrolment_page(request, session, row, await _me(session, me), f"{HOME}/2fa")


@router.post("/account/2fa")
async def account_2fa_confirm(
    request: Request,
    session: DbDep,
    me: PrincipalDep,
    method: Annotated[str, Form()] = "totp",
    code: Annotated[str, Form()] = "",
) -> Response:
    user = await _me(session, me)
    row: UserSession = request.state.bo_session
    before = user_state(user)
    if not confirm_enrolment(request, row, user, method, code):
        await session.commit()  # attempts on a sent code are counted
        return redirect(f"{HOME}/2fa", "Wrong or expired code.")
    await audit.record(session, me, "user.second_factor", f"user:{user.username}", before, user_state(user))
    await session.commit()
    return redirect(HOME, "The second factor is set up.")


@router.post("/account/2fa/send")
async def account_2fa_send(
    request: Request, session: DbDep, me: PrincipalDep, method: Annotated[str, Form()] = "email"
) -> Response:
    if method not in ("email", "sms"):
        return redirect(f"{HOME}/2fa")
    notice = await _send(request, request.state.bo_session, await _me(session, me), method)
    await session.commit()
    return redirect(f"{HOME}/2fa", notice or "A code was sent.")


@router.post("/account/2fa/disable")
async def account_2fa_disable(request: Request, session: DbDep, me: PrincipalDep) -> Response:
    user = await _me(session, me)
    role = await session.get(Role, user.role_id)
    if role is not None and role.require_second_factor:
        return await _page(request, session, me, error="Your role requires a second factor.", status=422)
    before = user_state(user)
    user.second_factor, user.totp_secret, user.totp_last_step = "none", None, None
    await audit.record(session, me, "user.second_factor", f"user:{user.username}", before, user_state(user))
    await session.commit()
    return redirect(HOME, "The second factor is turned off.")


@router.post("/account/tokens")
async def token_create(
    request: Request,
    session: DbDep,
    me: TokenUser,
    name: Annotated[str, Form()] = "",
    days: Annotated[Int64, Form()] = 90,
) -> Response:
    user = await _me(session, me)
    if not 1 <= days <= 3650 or not name.strip():
        return await _page(
            request, session, me, error="Give the token a name and 1 to 3650 days.", status=422
        )
    raw, row = await issue_token(session, user, name.strip(), utcnow() + dt.timedelta(days=days))
    await audit.record(
        session,
        me,
        "token.create",
        f"user:{user.username}",
        None,
        {"token": row.prefix, "name": row.name, "expires_at": row.expires_at},
    )
    await session.commit()
    return await _page(request, session, me, new_token=raw)


@router.post("/account/tokens/{token_id}/revoke")
async def token_revoke(token_id: Id, session: DbDep, me: TokenUser) -> Response:
    row = await session.get(ApiToken, token_id)
    if row is None or row.user_id != me.user_id:
        raise PageNotFound()
    revoke(row)
    await audit.record(session, me, "token.revoke", f"user:{me.name}", None, {"token": row.prefix})
    await session.commit()
    return redirect(HOME, "The token was revoked.")
