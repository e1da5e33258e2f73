"""Password login, lockout, sessions (ids, idle timeout, logout), cookies, CSRF, headers, access rules."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from paymux.audit.models import AuditEvent
from paymux.auth import passwords
from paymux.auth.sessions import COOKIE, session_hash
from paymux.auth.user_models import User, UserSession
from test_backoffice_support import PASSWORD, bo_app, form_token, login, post_form


async def _audit(hub, action: str = "login") -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    async with hub.read_sessions() as s:
        return list(
            (
                await s.scalars(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
                )
            ).all()
        )


async def test_login_success_sets_a_fresh_secure_session_and_audits(db_url: str) -> None:
    async with bo_app(db_url, cookie_secure=True) as bo:
        await bo.user("alice")
        http = bo.client("https://testserver")  # Secure cookies travel over https only
        http.cookies.set(COOKIE, "attacker-chosen-id", domain="testserver.local", path="/backoffice")
        r = await login(http, "alice")
        await http.aclose()
        assert r.status_code == 303 and r.headers["location"] == "/backoffice/"
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(COOKIE + "="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" in cookie
        raw = cookie.split(";")[0].split("=", 1)[1]
        assert raw != "attacker-chosen-id" and len(raw) >= 22  # 128 bits, url-safe base64
        async with bo.hub.read_sessions() as s:
            row = await s.scalar(select(UserSession).where(UserSession.id_hash == session_hash(raw)))
            assert row is not None and row.stage == "active"
            assert (
                await s.scalar(select(UserSession.id).where(UserSession.id_hash == raw)) is None
            )  # hash only
        events = await _audit(bo.hub)
        assert [(e.actor, e.outcome, e.ip) for e in events] == [("user:alice", "ok", "127.0.0.1")]


async def test_security_headers_and_plain_http_cookie_setting(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        r = await bo.http.get("/backoffice/login")
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in r.headers  # cookie_secure=False: plain-http development
        assert "Secure" not in r.headers["set-cookie"]


class _CountingHasher:
    """The real Argon2 hasher, counting what it is asked to do and on which thread."""

    def __init__(self) -> None:
        self.real = PasswordHasher()
        self.calls: list[tuple[str, str, bool]] = []  # (method, hash parameters, on the loop's thread)

    def _note(self, method: str, stored: str) -> None:
        params = stored.split("$")[3] if stored.count("$") >= 4 else stored
        self.calls.append((method, params, threading.current_thread() is threading.main_thread()))

    def hash(self, password: str) -> str:
        out = self.real.hash(password)
        self._note("hash", out)
        return out

    def verify(self, stored: str, password: str) -> bool:
        self._note("verify", stored)
        return self.real.verify(stored, password)

    def check_needs_rehash(self, stored: str) -> bool:
        return self.real.check_needs_rehash(stored)


async def test_wrong_password_unknown_user_and_locked_get_the_same_answer(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = _CountingHasher()
    monkeypatch.setattr(passwords, "hasher", lambda: counting)
    passwords.dummy_hash.cache_clear()
    async with bo_app(db_url) as bo, bo.app.router.lifespan_context(bo.app):
        bob = await bo.user("bob")
        params = bob.password_hash.split("$")[3]
        counting.calls.clear()  # start-up made the dummy hash; bob's hash was made above
        unknown = await login(bo.http, "nobody", "whatever-password-1")
        assert counting.calls == [("verify", params, False)]
        counting.calls.clear()
        wrong = await login(bo.http, "bob", "whatever-password-1")
        # each spends one Argon2 verification with the same cost (none on the event loop's thread)
        assert counting.calls == [("verify", params, False)]
        assert unknown.status_code == wrong.status_code == 401
        assert "Wrong user name or password." in unknown.text and "Wrong user name or password." in wrong.text
        events = await _audit(bo.hub)
        assert [(e.target, e.outcome, e.after["reason"]) for e in events] == [
            ("user:nobody", "failed", "unknown user"),
            ("user:bob", "failed", "wrong password"),
        ]
    passwords.dummy_hash.cache_clear()  # the next test's hasher is the real one again


async def test_lockout_after_ten_failures_for_thirty_minutes(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("carol")
        for _ in range(10):
            r = await login(bo.http, "carol", "not-the-password-at-all")
            assert r.status_code == 401
        user = await bo.db_user("carol")
        assert user.locked_until is not None
        left = user.locked_until - dt.datetime.now(dt.UTC)
        assert dt.timedelta(minutes=29) < left <= dt.timedelta(minutes=30)
        r = await login(bo.http, "carol")  # right password, still locked
        assert r.status_code == 401 and "Wrong user name or password." in r.text
        assert (await _audit(bo.hub, "user.locked"))[0].target == "user:carol"
        async with bo.hub.sessions() as s:  # the lock expires
            await s.execute(
                update(User)
                .where(User.username == "carol")
                .values(locked_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
            )
            await s.commit()
        assert (await login(bo.http, "carol")).status_code == 303


async def test_csrf_token_is_required_on_every_post(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("dave")
        await bo.http.get("/backoffice/login")
        r = await bo.http.post("/backoffice/login", data={"username": "dave", "password": PASSWORD})
        assert r.status_code == 403 and "The form has expired" in r.text
        r = await bo.http.post(
            "/backoffice/login", data={"username": "dave", "password": PASSWORD, "csrf_token": "forged"}
        )
        assert r.status_code == 403
        assert (await login(bo.http, "dave")).status_code == 303
        # signed in: the session's own token is needed, the pre-login cookie token no longer counts
        pre = bo.http.cookies.get("pmx_csrf")
        r = await bo.http.post("/backoffice/logout", data={"csrf_token": pre})
        assert r.status_code == 403
        page = await bo.http.get("/backoffice/account")
        r = await bo.http.post("/backoffice/logout", data={"csrf_token": form_token(page.text)})
        assert r.status_code == 303
        assert (await bo.http.get("/backoffice/account")).status_code == 303  # logged out
        assert [e.action for e in await _audit(bo.hub, "logout")] == ["logout"]


async def test_idle_timeout_ends_the_session(db_url: str) -> None:
    async with bo_app(db_url, session_idle_minutes=15) as bo:
        await bo.user("erin")
        await login(bo.http, "erin")
        assert (await bo.http.get("/backoffice/account")).status_code == 200
        async with bo.hub.sessions() as s:
            await s.execute(
                update(UserSession).values(last_seen_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16))
            )
            await s.commit()
        r = await bo.http.get("/backoffice/account")
        assert r.status_code == 303 and r.headers["location"].startswith("/backoffice/login")
        async with bo.hub.read_sessions() as s:
            assert (await s.scalars(select(UserSession.end_reason))).all() == ["idle"]


async def test_disabling_a_user_and_ending_sessions_log_them_out(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("admin")
        await bo.user("frank", "support")
        await login(bo.http, "admin")
        async with bo.client() as frank:
            await login(frank, "frank")
            assert (await frank.get("/backoffice/account")).status_code == 200
            uid = (await bo.db_user("frank")).id
            r = await post_form(
                bo.http, f"/backoffice/users/{uid}", f"/backoffice/users/{uid}/end-sessions", {}
            )
            assert r.status_code == 303
            assert (await frank.get("/backoffice/account")).status_code == 303
            await login(frank, "frank")
            assert (await frank.get("/backoffice/account")).status_code == 200
            r = await post_form(bo.http, f"/backoffice/users/{uid}", f"/backoffice/users/{uid}/disable", {})
            assert r.status_code == 303
            assert (await frank.get("/backoffice/account")).status_code == 303
            assert (await login(frank, "frank")).status_code == 401
        actions = [e.action for e in await _audit(bo.hub, "user.disable")]
        assert actions == ["user.disable"]


async def test_ip_ranges_and_working_hours_refuse_and_audit(db_url: str) -> None:
    async with bo_app(db_url, trusted_proxies=["127.0.0.1/32"]) as bo:
        await bo.user("gina", allowed_networks=["10.1.0.0/16"])
        r = await login(bo.http, "gina")
        assert r.status_code == 401 and "not allowed from this address" in r.text
        bo.http.headers["X-Forwarded-For"] = "203.0.113.9, 10.1.2.3"  # the trusted proxy saw 10.1.2.3
        assert (await login(bo.http, "gina")).status_code == 303
        del bo.http.headers["X-Forwarded-For"]
        # working hours: a window that excludes now, in the user's timezone
        now_local = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=3)))
        closed_day = (now_local.weekday() + 1) % 7
        await bo.user(
            "hank",
            timezone="Europe/Moscow",
            working_hours={"days": [closed_day], "start": "00:00", "end": "23:59"},
        )
        async with bo.client() as other:
            r = await login(other, "hank")
            assert r.status_code == 401
        refused = [(e.target, e.after["reason"]) for e in await _audit(bo.hub) if e.outcome == "refused"]
        assert refused == [("user:gina", "outside allowed network"), ("user:hank", "outside allowed hours")]


async def test_client_certificate_login_only_through_a_trusted_proxy(db_url: str) -> None:
    header = "X-SSL-Client-S-DN"
    async with bo_app(db_url, cert_header=header, trusted_proxies=["127.0.0.1/32"]) as bo:
        await bo.user("ivan", cert_subject="CN=ivan,O=Operator")
        page = await bo.http.get("/backoffice/login")
        assert "Log in with a client certificate" in page.text
        r = await bo.http.post(
            "/backoffice/login/certificate",
            data={"csrf_token": form_token(page.text)},
            headers={header: "CN=ivan,O=Operator"},
        )
        assert r.status_code == 303 and r.headers["location"] == "/backoffice/"
        assert (await bo.http.get("/backoffice/account")).status_code == 200
        async with bo.client() as other:
            page = await other.get("/backoffice/login")
            r = await other.post(
                "/backoffice/login/certificate",
                data={"csrf_token": form_token(page.text)},
                headers={header: "CN=mallory"},
            )
            assert r.status_code == 401
    # the same header from an untrusted peer is ignored
    async with bo_app(db_url, cert_header=header, trusted_proxies=["10.9.9.9/32"]) as bo:
        page = await bo.http.get("/backoffice/login")
        r = await bo.http.post(
            "/backoffice/login/certificate",
            data={"csrf_token": form_token(page.text)},
            headers={header: "CN=ivan,O=Operator"},
        )
        assert r.status_code == 401 and "No client certificate" in r.text
        methods = [(e.outcome, e.after.get("method"), e.after.get("reason")) for e in await _audit(bo.hub)]
        assert methods == [
            ("ok", "certificate", None),
            ("failed", "certificate", "unknown certificate"),
            ("failed", "certificate", "no certificate from a trusted proxy"),
        ]
