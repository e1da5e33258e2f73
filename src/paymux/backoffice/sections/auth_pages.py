"""Login (password or client certificate), the second factor and its enrolment, logout, language."""

from __future__ import annotations

from importlib.resources import files
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.auth import second_factor as sf
from paymux.auth import sessions as sess
from paymux.auth import totp
from paymux.auth.login import (
    WRONG_CREDENTIALS,
    LoginOutcome,
    certificate_login,
    is_locked,
    password_login,
    register_failure,
)
from paymux.auth.proxy import certificate_identity
from paymux.auth.senders import CodeSender, SendError, senders_for
from paymux.auth.throttle import AuthThrottle
from paymux.auth.user_models import User, UserSession
from paymux.backoffice.framework import (
    LANG_COOKIE,
    PREFIX,
    DbDep,
    OpenSessionDep,
    Section,
    SettingsDep,
    bo_settings,
    ip_of,
    redirect,
    register,
    render,
    safe_next,
    section_router,
    set_cookie,
)
from paymux.backoffice.i18n import LANGUAGES
from paymux.db.base import utcnow

router = section_router()
register(Section("login", router))

NEXT_COOKIE = "pmx_next"
TOO_MANY_FAILURES = "Too many failed attempts. Try again later."


def senders_of(request: Request) -> dict[str, CodeSender]:
    """The code senders: ``app.state.backoffice_senders`` if set (tests, plug-ins), else from settings."""
    custom = getattr(request.app.state, "backoffice_senders", None)
    return dict(custom) if custom is not None else senders_for(bo_settings(request))


# the back office's own files (no login needed); the icons are drawn for paymux (static/icon.svg)
STATIC_FILES = {"bo.css": "text/css", "icon.svg": "image/svg+xml", "favicon.ico": "image/x-icon"}


def static_file(name: str) -> Response:
    """A file of ``backoffice/static``, cacheable by browsers for a day (the style sheet for an hour)."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return Response(status_code=404)
    body = files("paymux.backoffice").joinpath(f"static/{name}").read_bytes()
    max_age = 3600 if name == "bo.css" else 86400
    return Response(body, media_type=media_type, headers={"Cache-Control": f"public, max-age={max_age}"})


@router.get("/static/{name}")
async def static(name: str) -> Response:
    return static_file(name)


@router.get("/login")
async def login_page(
    request: Request, current: OpenSessionDep, settings: SettingsDep, next: str = ""
) -> Response:
    if current is not None and current[0].stage == "active":
        return redirect(safe_next(next))
    return render(
        request,
        "login.html",
        next=safe_next(next),
        error="",
        username="",
        certificate=bool(settings.cert_header),
    )


async def _start(
    request: Request, session: DbDep, outcome: LoginOutcome, method: str, next_path: str
) -> Response:
    """Open a new session (fresh id) for an admitted user and go to the next step."""
    old = await sess.find_open(session, request.cookies.get(sess.COOKIE))
    if old is not None:
        sess.end(old, "replaced")
    assert outcome.user is not None
    raw, row = await sess.create_session(
        session,
        outcome.user,
        stage=outcome.stage,
        ip=ip_of(request),
        user_agent=request.headers.get("user-agent", ""),
        method=method,
    )
    notice = ""
    if outcome.stage == "second_factor" and outcome.user.second_factor in ("email", "sms"):
        notice = await _send(request, row, outcome.user, outcome.user.second_factor)
    await session.commit()
    target = {"active": next_path, "second_factor": f"{PREFIX}/2fa", "enrol": f"{PREFIX}/2fa/enrol"}[
        outcome.stage
    ]
    response = redirect(target, notice or None)
    set_cookie(response, request, sess.COOKIE, raw)
    if outcome.stage != "active":
        set_cookie(response, request, NEXT_COOKIE, next_path)
    return response


async def enrolment_page(
    request: Request, session: AsyncSession, row: UserSession, user: User, action: str
) -> Response:
    """The second-factor enrolment form (QR code of a new TOTP secret kept on the session, or a code
    sent by e-mail or SMS), posting to ``action``: at login, and from the account settings."""
    if not row.pending_totp_secret:
        row.pending_totp_secret = totp.new_secret()
        await session.commit()
    uri = totp.provisioning_uri(row.pending_totp_secret, user.username, bo_settings(request).totp_issuer)
    return render(
        request,
        "enrol.html",
        secret=row.pending_totp_secret,
        qr=totp.qr_svg(uri),
        error="",
        email=user.email,
        phone=user.phone,
        action=action,
        sent=row.otp_hash is not None,
    )


def confirm_enrolment(request: Request, row: UserSession, user: User, method: str, code: str) -> bool:
    """Check the enrolment code; when it is right, ``method`` becomes the user's second factor."""
    now = utcnow()
    if method == "totp":
        ok = bool(row.pending_totp_secret) and sf.confirm_totp(user, row.pending_totp_secret or "", code, now)
    elif method in ("email", "sms"):
        ok = sf.check_sent_code(row, code, bo_settings(request), now)
        if ok:  # a sent code replaces an authenticator app
            user.second_factor, user.totp_secret, user.totp_last_step = method, None, None
    else:
        ok = False
    if ok:
        row.pending_totp_secret = None
    return ok


async def _send(request: Request, row: UserSession, user: User, kind: str) -> str:
    sender = senders_of(request).get(kind)
    if sender is None:
        return "Sending codes is not configured; ask an administrator."
    try:
        await sf.send_code(row, user, kind, sender, bo_settings(request), utcnow())
    except (SendError, ValueError):
        return "The code could not be sent; try again later."
    return ""


@router.post("/login")
async def login(
    request: Request,
    session: DbDep,
    settings: SettingsDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    # wrong passwords count per address (auth/throttle.py); per user the account lockout applies
    ip = ip_of(request)
    throttle: AuthThrottle = request.app.state.hub.auth_throttle
    refusal = throttle.refusal(ip, "")
    if refusal is not None:  # refused unchecked: no password hashing, nothing stored
        page = render(
            request,
            "login.html",
            429,
            next=safe_next(next),
            error=TOO_MANY_FAILURES,
            username=username,
            certificate=bool(settings.cert_header),
        )
        page.headers["Retry-After"] = str(refusal.seconds)
        return page
    outcome = await password_login(session, settings, username, password, ip=ip, now=utcnow())
    if not outcome.ok:
        if outcome.error == WRONG_CREDENTIALS:
            throttle.failed(ip, "")
        await session.commit()  # the failure is counted and audited
        return render(
            request,
            "login.html",
            401,
            next=safe_next(next),
            error=outcome.error,
            username=username,
            certificate=bool(settings.cert_header),
        )
    return await _start(request, session, outcome, "password", safe_next(next))


@router.post("/login/certificate")
async def login_certificate(
    request: Request, session: DbDep, settings: SettingsDep, next: Annotated[str, Form()] = ""
) -> Response:
    identity = certificate_identity(request, settings)
    if identity is None:
        await audit.record(
            session,
            "anonymous",
            "login",
            "cert:",
            None,
            {"method": "certificate", "reason": "no certificate from a trusted proxy"},
            outcome="failed",
            ip=ip_of(request),
        )
        await session.commit()
        return render(
            request,
            "login.html",
            401,
            next=safe_next(next),
            username="",
            error="No client certificate was presented.",
            certificate=bool(settings.cert_header),
        )
    outcome = await certificate_login(session, identity, ip=ip_of(request), now=utcnow())
    if not outcome.ok:
        await session.commit()
        return render(
            request,
            "login.html",
            401,
            next=safe_next(next),
            error=outcome.error,
            username="",
            certificate=bool(settings.cert_header),
        )
    return await _start(request, session, outcome, "certificate", safe_next(next))


def _pending(current: tuple[UserSession, User] | None, stage: str) -> tuple[UserSession, User] | None:
    if current is None or current[0].stage != stage:
        return None
    return current


def _where(current: tuple[UserSession, User] | None) -> Response:
    if current is None:
        return redirect(f"{PREFIX}/login")
    stage = current[0].stage
    return redirect(
        f"{PREFIX}/" if stage == "active" else f"{PREFIX}/2fa" + ("/enrol" if stage == "enrol" else "")
    )


async def _complete(request: Request, session: DbDep, row: UserSession, user: User) -> Response:
    """The second factor is done: a new session id, now active."""
    raw, _ = await sess.rotate(session, row, stage="active")
    user.last_login_at = utcnow()
    user.failed_logins = 0
    await audit.record(
        session,
        f"user:{user.username}",
        "login",
        f"user:{user.username}",
        None,
        {"method": row.method, "second_factor": user.second_factor},
        ip=ip_of(request),
    )
    await session.commit()
    response = redirect(safe_next(request.cookies.get(NEXT_COOKIE)))
    set_cookie(response, request, sess.COOKIE, raw)
    response.delete_cookie(NEXT_COOKIE, path=PREFIX)
    return response


async def _failed_step(request: Request, session: DbDep, row: UserSession, user: User, reason: str) -> bool:
    """Count and audit a wrong code; True when the account got locked (the session then ends)."""
    now = utcnow()
    await register_failure(session, user, bo_settings(request), now, ip_of(request))
    await audit.record(
        session,
        f"user:{user.username}",
        "login",
        f"user:{user.username}",
        None,
        {"method": row.method, "reason": reason},
        outcome="failed",
        ip=ip_of(request),
    )
    locked = is_locked(user, now)
    if locked:
        sess.end(row, "locked")
    await session.commit()
    return locked


@router.get("/2fa")
async def second_factor_page(request: Request, current: OpenSessionDep) -> Response:
    pending = _pending(current, "second_factor")
    if pending is None:
        return _where(current)
    return render(request, "second_factor.html", kind=pending[1].second_factor, error="")


@router.post("/2fa")
async def second_factor_check(
    request: Request, session: DbDep, current: OpenSessionDep, code: Annotated[str, Form()] = ""
) -> Response:
    pending = _pending(current, "second_factor")
    if pending is None:
        return _where(current)
    row, user = pending
    now = utcnow()
    if user.second_factor == "totp":
        ok = sf.check_totp(user, code, now)
    else:
        ok = sf.check_sent_code(row, code, bo_settings(request), now)
    if ok:
        return await _complete(request, session, row, user)
    if await _failed_step(request, session, row, user, "wrong second-factor code"):
        return redirect(f"{PREFIX}/login", "Wrong user name or password.")
    return render(request, "second_factor.html", 401, kind=user.second_factor, error="Wrong or expired code.")


@router.post("/2fa/resend")
async def second_factor_resend(request: Request, session: DbDep, current: OpenSessionDep) -> Response:
    pending = _pending(current, "second_factor")
    if pending is None or pending[1].second_factor not in ("email", "sms"):
        return _where(current)
    notice = await _send(request, pending[0], pending[1], pending[1].second_factor)
    await session.commit()
    return redirect(f"{PREFIX}/2fa", notice or "A new code was sent.")


@router.get("/2fa/enrol")
async def enrol_page(request: Request, session: DbDep, current: OpenSessionDep) -> Response:
    pending = _pending(current, "enrol")
    if pending is None:
        return _where(current)
    row, user = pending
    return await enrolment_page(request, session, row, user, f"{PREFIX}/2fa/enrol")


@router.post("/2fa/enrol")
async def enrol(
    request: Request,
    session: DbDep,
    current: OpenSessionDep,
    method: Annotated[str, Form()] = "totp",
    code: Annotated[str, Form()] = "",
) -> Response:
    pending = _pending(current, "enrol")
    if pending is None:
        return _where(current)
    row, user = pending
    before = user.second_factor
    if confirm_enrolment(request, row, user, method, code):
        await audit.record(
            session,
            f"user:{user.username}",
            "user.second_factor",
            f"user:{user.username}",
            {"second_factor": before},
            {"second_factor": user.second_factor},
            ip=ip_of(request),
        )
        return await _complete(request, session, row, user)
    if await _failed_step(request, session, row, user, "wrong enrolment code"):
        return redirect(f"{PREFIX}/login", "Wrong user name or password.")
    return redirect(f"{PREFIX}/2fa/enrol", "Wrong or expired code.")


@router.post("/2fa/enrol/send")
async def enrol_send(
    request: Request, session: DbDep, current: OpenSessionDep, method: Annotated[str, Form()] = "email"
) -> Response:
    pending = _pending(current, "enrol")
    if pending is None or method not in ("email", "sms"):
        return _where(current)
    notice = await _send(request, pending[0], pending[1], method)
    await session.commit()
    return redirect(f"{PREFIX}/2fa/enrol?method={method}", notice or "A code was sent.")


@router.post("/logout")
async def logout(request: Request, session: DbDep, current: OpenSessionDep) -> Response:
    if current is not None:
        row, user = current
        sess.end(row, "logout")
        await audit.record(
            session, f"user:{user.username}", "logout", f"user:{user.username}", ip=ip_of(request)
        )
        await session.commit()
    response = redirect(f"{PREFIX}/login", "You are logged out.")
    response.delete_cookie(sess.COOKIE, path=PREFIX)
    return response


@router.post("/language")
async def language(
    request: Request,
    session: DbDep,
    current: OpenSessionDep,
    language: Annotated[str, Form()] = "en",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Choose the interface language: remembered on the account when signed in, else in a cookie."""
    if language not in LANGUAGES:
        language = "en"
    if current is not None and current[0].stage == "active":
        user = current[1]
        if user.language != language:
            await audit.record(
                session,
                f"user:{user.username}",
                "user.settings",
                f"user:{user.username}",
                {"language": user.language},
                {"language": language},
                ip=ip_of(request),
            )
            user.language = language
            await session.commit()
    response = redirect(safe_next(next))
    set_cookie(response, request, LANG_COOKIE, language, max_age=365 * 86400)
    return response
