"""Back-office screens: users and roles through their forms, lists (search, filters, sort, pages, Excel),
the audit viewer, language and timezone, the message catalogs, the CLI."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

from openpyxl import load_workbook
from sqlalchemy import select, update

from paymux.audit.models import AuditEvent
from paymux.auth.permissions import PERMISSIONS, PREDEFINED_ROLES
from paymux.auth.user_models import Organization, Role, User
from paymux.backoffice.framework import SECTIONS
from paymux.reports.turnover import TITLES as REPORT_TITLES
from test_backoffice_support import PASSWORD, bo_app, form_token, login, post_form


async def _ids(bo, model, **by):  # type: ignore[no-untyped-def]
    async with bo.hub.read_sessions() as s:
        row = await s.scalar(select(model).filter_by(**by))
        return row.id


async def test_admin_creates_a_user_who_can_then_log_in(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("root")
        await login(bo.http, "root")
        role_id = await _ids(bo, Role, code="support")
        org_id = await _ids(bo, Organization, code="operator")
        data = {
            "username": "Sam",
            "password": "short",
            "full_name": "Sam Support",
            "email": "sam@x.test",
            "role_id": role_id,
            "organization_id": org_id,
            "timezone": "Europe/Chisinau",
            "language": "ro",
        }
        r = await post_form(bo.http, "/backoffice/users/new", "/backoffice/users", data)
        assert r.status_code == 422 and "at least 12 characters" in r.text
        r = await post_form(
            bo.http, "/backoffice/users/new", "/backoffice/users", {**data, "password": "password1234"}
        )
        assert r.status_code == 422 and "too common" in r.text
        r = await post_form(
            bo.http, "/backoffice/users/new", "/backoffice/users", {**data, "password": PASSWORD}
        )
        assert r.status_code == 303
        user = await bo.db_user("sam")
        assert user.password_hash and user.password_hash.startswith("$argon2id$")
        async with bo.client() as sam:
            await login(sam, "sam")
            home = await sam.get("/backoffice/")
            assert "Bun venit, sam" in home.text  # Romanian, chosen for the user
            assert (await sam.get("/backoffice/users")).status_code == 403
        # edit: access rules, certificate subject; audit has before and after
        r = await post_form(
            bo.http,
            f"/backoffice/users/{user.id}",
            f"/backoffice/users/{user.id}",
            {
                "full_name": "Sam S.",
                "role_id": role_id,
                "organization_id": org_id,
                "timezone": "UTC",
                "language": "en",
                "cert_subject": "CN=sam",
                "networks": "10.0.0.0/8, 192.168.1.7",
                "days": ["0", "1", "2", "3", "4"],
                "start": "08:00",
                "end": "18:30",
            },
        )
        assert r.status_code == 303
        user = await bo.db_user("sam")
        assert user.allowed_networks == ["10.0.0.0/8", "192.168.1.7/32"]
        assert user.working_hours == {"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "18:30"}
        r = await post_form(
            bo.http,
            f"/backoffice/users/{user.id}",
            f"/backoffice/users/{user.id}",
            {"role_id": role_id, "organization_id": org_id, "networks": "not-an-ip"},
        )
        assert r.status_code == 422 and "not an IP range" in r.text
        async with bo.hub.read_sessions() as s:
            ev = await s.scalar(select(AuditEvent).where(AuditEvent.action == "user.update"))
        assert ev is not None and ev.actor == "user:root"
        assert ev.before["full_name"] == "Sam Support" and ev.after["full_name"] == "Sam S."


async def test_custom_role_from_permissions_grants_exactly_those(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("root")
        await login(bo.http, "root")
        r = await post_form(
            bo.http,
            "/backoffice/roles/new",
            "/backoffice/roles",
            {
                "code": "auditor",
                "name": "Auditor",
                "permissions": ["audit.read", "users.read", "no.such"],
                "require_second_factor": "true",
            },
        )
        assert r.status_code == 303
        async with bo.hub.read_sessions() as s:
            role = await s.scalar(select(Role).where(Role.code == "auditor"))
        assert (
            role is not None
            and role.permissions == ["audit.read", "users.read"]
            and role.require_second_factor
        )
        async with bo.hub.sessions() as s:
            await s.execute(update(Role).where(Role.code == "auditor").values(require_second_factor=False))
            await s.commit()
        await bo.user("aud", "auditor")
        async with bo.client() as aud:
            await login(aud, "aud")
            assert (await aud.get("/backoffice/audit")).status_code == 200
            assert (await aud.get("/backoffice/users")).status_code == 200
            assert (await aud.get("/backoffice/roles")).status_code == 403
            assert (await aud.get("/backoffice/users/new")).status_code == 403
        # predefined roles keep their permissions from code
        admin_role = await _ids(bo, Role, code="cfo")
        r = await post_form(
            bo.http,
            f"/backoffice/roles/{admin_role}",
            f"/backoffice/roles/{admin_role}",
            {"permissions": ["users.write"]},
        )
        async with bo.hub.read_sessions() as s:
            cfo = await s.get(Role, admin_role)
            assert cfo is not None and cfo.permissions == []


async def test_lists_search_filter_sort_paginate_and_export(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("root")
        for i in range(30):
            await bo.user(f"clerk{i:02d}", "accountant" if i % 2 else "cashier", full_name=f"Clerk {i}")
        await login(bo.http, "root")
        r = await bo.http.get("/backoffice/users?sort=username&dir=asc")
        names = re.findall(r'/backoffice/users/\d+">([^<]+)<', r.text)
        assert names == sorted(names) and len(names) == 25 and "31 found" in r.text
        r = await bo.http.get("/backoffice/users?sort=username&dir=asc&page=2")
        assert len(re.findall(r'/backoffice/users/\d+">', r.text)) == 6
        r = await bo.http.get("/backoffice/users?sort=username&dir=desc")
        assert re.findall(r'/backoffice/users/\d+">([^<]+)<', r.text)[0] == "root"
        role = await _ids(bo, Role, code="cashier")
        r = await bo.http.get(f"/backoffice/users?role={role}&q=clerk1")
        assert sorted(re.findall(r'/backoffice/users/\d+">([^<]+)<', r.text)) == [
            "clerk10",
            "clerk12",
            "clerk14",
            "clerk16",
            "clerk18",
        ]
        x = await bo.http.get(f"/backoffice/users?role={role}&sort=username&dir=asc&export=xlsx")
        assert x.headers["content-type"].startswith("application/vnd.openxmlformats")
        ws = load_workbook(io.BytesIO(x.content)).active
        rows = list(ws.iter_rows(values_only=True))
        assert rows[0][:3] == ("User name", "Full name", "Role")
        assert [r[0] for r in rows[1:]] == [f"clerk{i:02d}" for i in range(0, 30, 2)]
        assert all(r[2] == "Cashier" for r in rows[1:])


async def test_audit_viewer_filters_and_shows_times_in_the_users_timezone(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("root", timezone="Asia/Tokyo")
        await login(bo.http, "nobody", "wrong-password-123")
        await login(bo.http, "root")
        r = await bo.http.get("/backoffice/audit?outcome=failed")
        assert "user:nobody" in r.text and ">user:root<" not in r.text
        async with bo.hub.read_sessions() as s:
            ev = await s.scalar(select(AuditEvent).where(AuditEvent.outcome == "failed"))
        assert ev is not None
        tokyo = ev.at.astimezone(dt.timezone(dt.timedelta(hours=9))).strftime("%Y-%m-%d %H:%M:%S")
        assert tokyo in r.text  # shown in the user's timezone
        page = await bo.http.get(f"/backoffice/audit/{ev.id}")
        assert ev.at.isoformat() in page.text and "unknown user" in page.text
        today = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=9))).date()
        r = await bo.http.get(f"/backoffice/audit?from={today + dt.timedelta(days=1)}")
        assert "0 found" in r.text
        r = await bo.http.get(f"/backoffice/audit?from={today}&to={today}&action=login")
        assert "2 found" in r.text
        x = await bo.http.get("/backoffice/audit?export=xlsx")
        rows = list(load_workbook(io.BytesIO(x.content)).active.iter_rows(values_only=True))
        assert rows[0][:5] == ("#", "When", "Who", "From", "What") and len(rows) == 3


async def test_language_choice_before_login_is_remembered_in_a_cookie(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        r = await post_form(
            bo.http,
            "/backoffice/login",
            "/backoffice/language",
            {"language": "ru", "next": "/backoffice/login"},
        )
        assert r.status_code == 303 and "pmx_lang=ru" in r.headers["set-cookie"]
        page = await bo.http.get("/backoffice/login")
        assert "Имя пользователя" in page.text and '<html lang="ru">' in page.text
        async with bo.client() as other:
            page = await other.get("/backoffice/login", headers={"Accept-Language": "ro-MD,ro;q=0.9"})
            assert "Nume de utilizator" in page.text


def test_every_message_is_translated() -> None:
    from paymux.backoffice.sections import load

    load()
    msgids: set[str] = set(PREDEFINED_ROLES.values()) | {p.title for p in PERMISSIONS.values()}
    msgids |= {m.title for s in SECTIONS.values() for m in s.menu}
    msgids |= set(REPORT_TITLES.values())  # column heads the reports' templates and workbooks translate
    root = Path(str(files("paymux.backoffice").joinpath("templates")))
    for path in root.rglob("*.html"):
        msgids |= set(re.findall(r'_\("((?:[^"\\]|\\.)*)"', path.read_text("utf-8")))
    for lang in ("ru", "ro"):
        catalog = json.loads(files("paymux.backoffice").joinpath(f"locales/{lang}.json").read_text("utf-8"))
        missing = sorted(msgids - set(catalog))
        assert not missing, f"{lang}: {missing}"
        for k, v in catalog.items():  # placeholders survive translation
            assert set(re.findall(r"\{\w+\}", k)) == set(re.findall(r"\{\w+\}", v)), (lang, k)


def test_cli_create_admin(db_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")}
    env["PAYMUX_DATABASE_URL"] = db_url
    cmd = [sys.executable, "-c", "from paymux.cli import main; main()", "users", "create-admin", "boss"]
    weak = subprocess.run(
        cmd, env={**env, "PAYMUX_ADMIN_PASSWORD": "qwertyuiop123"}, capture_output=True, text=True, timeout=60
    )
    assert weak.returncode == 1 and "too common" in weak.stderr
    ok = subprocess.run(
        cmd, env={**env, "PAYMUX_ADMIN_PASSWORD": PASSWORD}, capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    again = subprocess.run(
        cmd, env={**env, "PAYMUX_ADMIN_PASSWORD": PASSWORD}, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 1 and "taken" in again.stderr


async def test_cli_admin_can_log_in(db_url: str) -> None:
    test_cli_create_admin(db_url)
    async with bo_app(db_url) as bo:
        assert (await login(bo.http, "boss")).status_code == 303
        assert (await bo.http.get("/backoffice/roles")).status_code == 200
        user = await bo.db_user("boss")
        async with bo.hub.read_sessions() as s:
            org = await s.get(Organization, user.organization_id)
            assert org is not None and org.kind == "operator"
            assert await s.scalar(select(User.id).where(User.username == "boss")) == user.id


async def test_sessions_screen_lists_and_ends_a_session(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        await bo.user("root")
        await bo.user("kim", "support")
        await login(bo.http, "root")
        async with bo.client() as kim:
            await login(kim, "kim")
            r = await bo.http.get("/backoffice/sessions?state=open&q=kim")
            ids = re.findall(r'/backoffice/sessions/(\d+)/end"', r.text)
            assert len(ids) == 1 and "1 found" in r.text
            r = await bo.http.post(
                f"/backoffice/sessions/{ids[0]}/end", data={"csrf_token": form_token(r.text)}
            )
            assert r.status_code == 303
            assert (await kim.get("/backoffice/account")).status_code == 303
            r = await bo.http.get("/backoffice/sessions?state=ended")
            assert "ended by administrator" in r.text


async def test_demo_users_one_per_role_log_in_with_their_printed_passwords(db_url: str) -> None:
    from paymux.auth.demo_users import seed_demo_users
    from paymux.catalog.models import Agent

    async with bo_app(db_url) as bo:
        async with bo.hub.sessions() as s:
            s.add(Agent(code="dealer-north", name="North Dealer", enabled=True))
            await s.commit()
        async with bo.hub.sessions() as s:
            first = await seed_demo_users(s)
            await s.commit()
        async with bo.hub.sessions() as s:
            creds = await seed_demo_users(s)  # a second run resets the passwords
            await s.commit()
        assert set(creds) == set(first) and len(creds) == len(PREDEFINED_ROLES)
        assert all(creds[n] != first[n] for n in creds)
        for name, password in creds.items():
            async with bo.client() as http:
                assert (await login(http, name, password)).status_code == 303, name
        agent = await bo.db_user("demo-agent")
        async with bo.hub.read_sessions() as s:
            org = await s.get(Organization, agent.organization_id)
            assert org is not None and org.kind == "agent" and org.code == "dealer-north"
