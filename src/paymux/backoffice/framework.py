"""The back-office framework: sections and their menu, ``require(permission)``, rendering, CSRF, headers.

A section is a module under ``paymux.backoffice.sections`` that builds a router with ``section_router()``,
protects every page with ``require(PERMISSION)`` and registers itself with ``register(Section(...))``
(see docs/backoffice.md).
"""

from __future__ import annotations

import datetime as dt
import hmac
import html
import re
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import Match

from paymux.auth import sessions as sess
from paymux.auth.access import zone
from paymux.auth.grants import GrantRefused
from paymux.auth.principal import Principal, principal_for_user
from paymux.auth.proxy import client_ip
from paymux.auth.user_models import User, UserSession
from paymux.backoffice import flash
from paymux.backoffice.i18n import LANGUAGES, negotiate, translator, use_overrides
from paymux.backoffice.settings import BackofficeSettings, get_backoffice_settings
from paymux.db.base import utcnow
from paymux.texts.service import overrides_for as texts_overrides

PREFIX = "/backoffice"
LANG_COOKIE = "pmx_lang"
CSRF_COOKIE = "pmx_csrf"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    pass


class SecondFactorPending(Exception):
    pass


class Forbidden(Exception):
    def __init__(self, permission: str) -> None:
        super().__init__(permission)
        self.permission = permission


class CsrfFailed(Exception):
    pass


class PageNotFound(Exception):
    pass


# --- sections and the menu ---------------------------------------------------------------------------------


# The menu's areas, in their order (English msgids). An entry without an area (the home page, one's own
# account) stands above them.
OPERATIONS, FINANCE, PROVIDERS, ADMINISTRATION = "Operations", "Finance", "Providers", "Administration"
COLLECTIONS = "Collections"  # invoice collection: billers, invoices, the collections dashboard
EMONEY = "E-money"  # issuers, wallet customers and their wallets, contracts, cashback, anti-fraud
CUSTOMERS = "Customers"  # wallet customers: identification, support
CASH = "Cash"  # cash desks: cash days, cashiers' and system operations, redeem requests
AREAS = (OPERATIONS, CUSTOMERS, COLLECTIONS, EMONEY, CASH, FINANCE, PROVIDERS, ADMINISTRATION)


@dataclass(frozen=True)
class MenuEntry:
    title: str  # English msgid
    path: str
    permission: str | None  # None: every signed-in user
    order: int = 100
    area: str = ""  # one of AREAS, or "" (above the areas)

    def __post_init__(self) -> None:
        if self.area and self.area not in AREAS:
            raise ValueError(f"menu entry {self.title!r}: unknown area {self.area!r} (one of {AREAS})")


@dataclass
class Section:
    key: str
    router: APIRouter
    menu: tuple[MenuEntry, ...] = ()
    permissions: tuple[str, ...] = field(default_factory=tuple)  # declared for docs and the roles screen


SECTIONS: dict[str, Section] = {}


def register(section: Section) -> Section:
    if section.key in SECTIONS and SECTIONS[section.key] is not section:
        raise ValueError(f"back-office section {section.key!r} is registered twice")
    SECTIONS[section.key] = section
    return section


def menu_for(principal: Principal | None) -> list[MenuEntry]:
    if principal is None:
        return []
    entries = [
        m for s in SECTIONS.values() for m in s.menu if m.permission is None or principal.can(m.permission)
    ]
    return sorted(entries, key=lambda m: (m.order, m.title))


def menu_groups(entries: list[MenuEntry]) -> list[tuple[str, list[MenuEntry]]]:
    """``entries`` by area: those without one first (area ""), then each area that has any, in order."""
    return [
        (area, [m for m in entries if m.area == area])
        for area in ("", *AREAS)
        if any(m.area == area for m in entries)
    ]


# --- settings, database, identity --------------------------------------------------------------------------


def bo_settings(request: Request) -> BackofficeSettings:
    s = getattr(request.app.state, "backoffice_settings", None)
    return s if isinstance(s, BackofficeSettings) else get_backoffice_settings()


SettingsDep = Annotated[BackofficeSettings, Depends(bo_settings)]


async def db(request: Request) -> AsyncIterator[AsyncSession]:
    """One writable session per back-office request (the page commits what it changes)."""
    async with request.app.state.hub.sessions() as session:
        request.state.bo_db = session  # the route class keeps a page's message with it (flash)
        try:
            yield session
        finally:
            request.state.bo_db = None


DbDep = Annotated[AsyncSession, Depends(db)]


def ip_of(request: Request) -> str:
    return client_ip(request, bo_settings(request))


async def open_session(request: Request, session: DbDep) -> tuple[UserSession, User] | None:
    """The request's open, unexpired session and its enabled user (any login stage), or None."""
    settings = bo_settings(request)
    row = await sess.find_open(session, request.cookies.get(sess.COOKIE))
    if row is None:
        return None
    now = utcnow()
    reason = sess.expired(
        row,
        idle=dt.timedelta(minutes=settings.session_idle_minutes),
        max_age=dt.timedelta(hours=settings.session_max_hours),
        now=now,
    )
    user = await session.get(User, row.user_id)
    if reason is None and (user is None or not user.enabled):
        reason = "disabled"
    if reason is not None or user is None:
        sess.end(row, reason or "disabled")
        await session.commit()
        return None
    if sess.touch(row, now):
        await session.commit()
    request.state.bo_session = row
    request.state.bo_user = user
    # plain copies for rendering (the ORM rows may be expired by a rollback by then)
    request.state.bo_csrf = row.csrf_token
    request.state.bo_prefs = (user.language, user.timezone)
    return row, user


OpenSessionDep = Annotated[tuple[UserSession, User] | None, Depends(open_session)]


async def authenticated(request: Request, session: DbDep, current: OpenSessionDep) -> Principal:
    """The signed-in user, with the second factor done; otherwise the login page."""
    if current is None:
        raise LoginRequired()
    row, user = current
    if row.stage != "active":
        raise SecondFactorPending()
    principal = await principal_for_user(session, user, ip=ip_of(request), via="session")
    request.state.principal = principal
    return principal


# the permission each ``require``/``require_before_reading`` dependency checks (None: a signed-in user)
PERMISSION_OF: dict[Callable[..., Any], str | None] = {}


def require(permission: str | None) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency: the signed-in user, who must hold ``permission`` (None: any signed-in user).

    Every back-office page and action declares one; the check is on the server, deny by default.
    """

    async def dependency(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        if permission is not None and not principal.can(permission):
            raise Forbidden(permission)
        return principal

    dependency.__name__ = f"require_{permission or 'login'}".replace(".", "_")
    PERMISSION_OF[dependency] = permission
    return dependency


def require_before_reading(permission: str | None) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """Like ``require``, but the writable session it signs the user in with is closed before the page
    runs: for pages that only read, for long (reports), through ``ReadDbDep``. On SQLite a writable
    session holds the process's writer turn, which payments are waiting for. Never together with
    ``DbDep`` on one page: that session would hold the turn this one waits for (a test checks).
    ``permission`` None: any signed-in user."""

    async def dependency(request: Request) -> Principal:
        async with request.app.state.hub.sessions() as session:
            principal = await authenticated(request, session, await open_session(request, session))
        if permission is not None and not principal.can(permission):
            raise Forbidden(permission)
        return principal

    dependency.__name__ = f"require_before_reading_{permission or 'login'}".replace(".", "_")
    PERMISSION_OF[dependency] = permission
    return dependency


async def read_db(request: Request) -> AsyncIterator[AsyncSession]:
    """A read-only session (committed data; on SQLite it reads beside the writer)."""
    async with request.app.state.hub.read_sessions() as session:
        yield session


ReadDbDep = Annotated[AsyncSession, Depends(read_db)]


# --- which pages a user may open (links) -------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """What opening a back-office page takes: a signed-in user (``login``) holding ``permissions``."""

    login: bool
    permissions: frozenset[str]


def _gate_of(dependant: Dependant) -> Gate:
    login, permissions = False, set()
    todo = [dependant]
    while todo:
        d = todo.pop()
        if d.call in PERMISSION_OF:
            login = True
            needed = PERMISSION_OF[d.call]
            if needed is not None:
                permissions.add(needed)
        todo.extend(d.dependencies)
    return Gate(login, frozenset(permissions))


@lru_cache(maxsize=4096)
def gate(path: str) -> Gate | None:
    """What ``GET path`` takes, read from the ``require`` dependencies of the page that answers it
    (None: no back-office page answers it)."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": ""}
    for section in SECTIONS.values():
        for route in section.router.routes:
            if isinstance(route, APIRoute) and route.matches(scope)[0] == Match.FULL:
                return _gate_of(route.dependant)
    return None


def may_open(principal: Principal | None, url: str) -> bool:
    """Whether ``principal`` (None: nobody signed in) may open ``url``: what every link checks before
    it is shown (a page the user cannot open is not linked). Other sites' and non-back-office
    addresses, and relative ones (the page itself, with other parameters), are left to the page."""
    parts = urlsplit(html.unescape(url))
    if parts.scheme or parts.netloc or not parts.path.startswith(PREFIX + "/"):
        return True
    needed = gate(parts.path)
    if needed is None or not needed.login:
        return True
    return principal is not None and all(principal.can(p) for p in needed.permissions)


_LINK = re.compile(r'<a\b(?P<attrs>[^>]*?)\bhref="(?P<href>[^"]*)"(?P<rest>[^>]*)>(?P<text>.*?)</a>', re.S)


def unlink_forbidden(page: str, principal: Principal | None) -> str:
    """``page`` with every link to a page ``principal`` may not open taken out: a button-like link (an
    action) goes, any other keeps its text without the link. The safety net under every template."""

    def check(m: re.Match[str]) -> str:
        if may_open(principal, m["href"]):
            return m[0]
        if re.search(r'class="[^"]*\bbutton\b', m["attrs"] + m["rest"]):
            return ""
        return f'<span class="unlinked">{m["text"]}</span>'

    return _LINK.sub(check, page)


# --- rendering ---------------------------------------------------------------------------------------------

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("paymux.backoffice", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def language_of(request: Request) -> str:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None and principal.language in LANGUAGES:
        return principal.language
    prefs: tuple[str, str] | None = getattr(request.state, "bo_prefs", None)
    if prefs is not None and prefs[0] in LANGUAGES:
        return prefs[0]
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    return negotiate(request.headers.get("accept-language"), bo_settings(request).default_language)


def timezone_of(request: Request) -> str:
    principal: Principal | None = getattr(request.state, "principal", None)
    prefs: tuple[str, str] | None = getattr(request.state, "bo_prefs", None)
    if principal is not None:
        return principal.timezone
    if prefs is not None:
        return prefs[1]
    return bo_settings(request).default_timezone


def csrf_token(request: Request) -> str:
    """The token forms carry: the session's, or before login a random value mirrored in a cookie."""
    session_token: str | None = getattr(request.state, "bo_csrf", None)
    if session_token is not None:
        return session_token
    token = getattr(request.state, "new_csrf_cookie", None) or request.cookies.get(CSRF_COOKIE)
    if not token or len(token) > 64:
        token = secrets.token_urlsafe(32)
        request.state.new_csrf_cookie = token
    return str(token)


def format_dt(value: dt.datetime | None, tz: str, with_seconds: bool = False) -> str:
    if value is None:
        return ""
    local = value.astimezone(zone(tz))
    return local.strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page in the user's language and timezone, with the menu and the CSRF token."""
    lang = language_of(request)
    tz = timezone_of(request)
    principal: Principal | None = getattr(request.state, "principal", None)
    menu = menu_for(principal)
    kind, message = getattr(request.state, "flash_in", None) or ("", "")
    if message:
        request.state.flash_shown = True
    ctx = {
        "request": request,
        "_": translator(lang),
        "lang": lang,
        "languages": LANGUAGES,
        "tz": tz,
        "user": principal,
        "menu": menu,
        "menu_groups": menu_groups(menu),
        "csrf_token": csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "dt": lambda v, seconds=False: format_dt(v, tz, seconds),
        "path": request.url.path,
        "may_open": lambda url: may_open(principal, url),
        # a message the server kept for this page (never text from the address)
        "flash": message if kind == "info" else "",
        "flash_error": message if kind == "error" else "",
        **context,
    }
    page = _env.get_template(template).render(ctx)
    if principal is not None:
        page = unlink_forbidden(page, principal)
    return HTMLResponse(page, status_code=status_code)


class Redirect(RedirectResponse):
    """A 303 to a back-office page, with the message to show there once (``flash``)."""

    def __init__(self, path: str, flash: tuple[str, str] | None = None) -> None:
        super().__init__(path, status_code=303)
        self.flash = flash


def redirect(path: str, msg: str | None = None, *, error: str | None = None) -> RedirectResponse:
    """303 to ``path`` (a back-office path), with a message (a msgid) or an error to show there once.

    The route class keeps the message on the server (``paymux.backoffice.flash``), not in the address."""
    if error:
        return Redirect(path, ("error", error))
    return Redirect(path, ("info", msg) if msg else None)


def safe_next(value: str | None) -> str:
    """A post-login destination inside the back office only (no open redirects)."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX + "/"


# --- the route class: CSRF, auth redirects, security headers ------------------------------------------------


async def check_csrf(request: Request) -> None:
    """Every unsafe request must carry the token of its session (or, before login, of its cookie)."""
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    expected: str | None = None
    raw = request.cookies.get(sess.COOKIE)
    if raw:
        async with request.app.state.hub.read_sessions() as session:
            row = await sess.find_open(session, raw)
            expected = row.csrf_token if row is not None else None
    if expected is None:
        expected = request.cookies.get(CSRF_COOKIE)
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfFailed()


def set_cookie(
    response: Response, request: Request, name: str, value: str, *, max_age: int | None = None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        secure=bo_settings(request).cookie_secure,
        httponly=True,
        samesite="strict" if name != LANG_COOKIE else "lax",
    )


def _finish(request: Request, response: Response) -> Response:
    for k, v in SECURITY_HEADERS.items():
        response.headers.setdefault(k, v)
    if bo_settings(request).cookie_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    new_csrf = getattr(request.state, "new_csrf_cookie", None)
    if new_csrf:
        set_cookie(response, request, CSRF_COOKIE, new_csrf)
    return response


def error_page(request: Request, status: int, title: str, message: str, detail: str = "") -> Response:
    """The error page (``title`` and ``message`` are msgids), with the back office's headers."""
    return _finish(
        request, render(request, "error.html", status, title=title, message=message, detail=detail)
    )


async def _flash_in(request: Request) -> None:
    """Read the message kept for this browser's next page (shown if the page renders)."""
    raw = request.cookies.get(flash.COOKIE)
    if raw and request.method == "GET":
        async with request.app.state.hub.read_sessions() as session:
            request.state.flash_in = await flash.peek(session, raw)


async def _flash_out(request: Request, response: Response) -> None:
    """Drop the message a page showed, keep the one a redirect carries (and their cookie)."""
    raw = request.cookies.get(flash.COOKIE)
    shown = bool(getattr(request.state, "flash_shown", False))
    stale = raw is not None and request.method == "GET" and getattr(request.state, "flash_in", None) is None
    out = response.flash if isinstance(response, Redirect) else None
    if not (shown or out):
        if stale:
            response.delete_cookie(flash.COOKIE, path=PREFIX)
        return

    async def write(session: AsyncSession) -> str | None:
        await session.rollback()  # what the page did not commit stays undone, as at its end
        if shown and raw:
            await flash.drop(session, raw)
        new = await flash.put(session, *out) if out else None
        await session.commit()
        return new

    # on a page with a writable session, that one (on SQLite it holds this process's writer turn)
    current: AsyncSession | None = getattr(request.state, "bo_db", None)
    if current is not None:
        new = await write(current)
    else:
        async with request.app.state.hub.sessions() as session:
            new = await write(session)
    if new is not None:
        set_cookie(response, request, flash.COOKIE, new, max_age=int(flash.FRESH.total_seconds()))
    else:
        response.delete_cookie(flash.COOKIE, path=PREFIX)


class BackofficeRoute(APIRoute):
    """Checks CSRF on every unsafe request and turns auth failures into pages or redirects."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def wrapped(request: Request) -> Response:
            await _flash_in(request)
            # the texts edited in this installation, over the shipped translations (cached per node)
            use_overrides(await texts_overrides(request.app.state.hub))
            try:
                if request.method not in SAFE_METHODS:
                    await check_csrf(request)
                response = await handler(request)
            except LoginRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response = redirect(f"{PREFIX}/login?next={quote(target)}")
                response.delete_cookie(sess.COOKIE, path=PREFIX)
            except SecondFactorPending:
                response = redirect(f"{PREFIX}/2fa")
            except Forbidden as e:
                response = render(
                    request,
                    "error.html",
                    403,
                    title="Access denied",
                    message="You do not have the permission this page needs.",
                    detail=e.permission,
                )
            except GrantRefused as e:
                response = render(
                    request,
                    "error.html",
                    403,
                    title="Not allowed",
                    message=e.message,
                    detail=", ".join(e.missing),
                )
            except CsrfFailed:
                response = render(
                    request,
                    "error.html",
                    403,
                    title="The form has expired",
                    message="Reload the page and try again.",
                    detail="",
                )
            except PageNotFound:
                response = render(
                    request,
                    "error.html",
                    404,
                    title="Not found",
                    message="This page does not exist or was removed.",
                    detail="",
                )
            await _flash_out(request, response)
            return _finish(request, response)

        return wrapped


def section_router() -> APIRouter:
    """A router for a back-office section (pages under /backoffice, not in the API schema)."""
    return APIRouter(prefix=PREFIX, route_class=BackofficeRoute, include_in_schema=False)


PrincipalDep = Annotated[Principal, Depends(require(None))]
