"""No privilege escalation: a user gives (and changes) only what they hold themselves.

Creating or editing users (their role, organization, password, state) and creating or editing roles
(their permissions) are refused with a 403 page when they would give more than the acting user holds;
Compliance creates and manages Customer support and Anti-fraud users (its documented delegation).
"""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from sqlalchemy import func, select

from paymux.audit.models import AuditEvent
from paymux.auth.permissions import ANTI_FRAUD, COMPLIANCE, SUPPORT, role_permissions
from paymux.auth.tokens import issue_token
from paymux.auth.user_models import ApiToken, Organization, Role, User
from paymux.catalog.models import Agent
from test_backoffice_support import PASSWORD, Bo, bo_app, flash_of, follow, form_token, login, post_form

NEW_PASSWORD = "Correct-Horse-Battery-42"


async def custom_role(bo: Bo, code: str, permissions: list[str]) -> int:
    async with bo.hub.sessions() as s:
        role = Role(code=code, name=code.title(), builtin=False, permissions=permissions, allowed_networks=[])
        s.add(role)
        await s.commit()
        return role.id


async def role_id(bo: Bo, code: str) -> int:
    async with bo.hub.read_sessions() as s:
        found = await s.scalar(select(Role.id).where(Role.code == code))
        assert found is not None, code
        return int(found)


async def org_id(bo: Bo, code: str = "operator") -> int:
    async with bo.hub.read_sessions() as s:
        found = await s.scalar(select(Organization.id).where(Organization.code == code))
        assert found is not None, code
        return int(found)


async def create(http: httpx.AsyncClient, bo: Bo, username: str, role: str, org: str = "operator") -> Any:
    return await post_form(
        http,
        "/backoffice/users/new",
        "/backoffice/users",
        {
            "username": username,
            "password": PASSWORD,
            "role_id": await role_id(bo, role),
            "organization_id": await org_id(bo, org),
            "timezone": "UTC",
            "language": "en",
        },
    )


async def edit(http: httpx.AsyncClient, bo: Bo, user: User, role: str, org: str = "operator") -> Any:
    page = f"/backoffice/users/{user.id}"
    return await post_form(
        http,
        page,
        page,
        {"role_id": await role_id(bo, role), "organization_id": await org_id(bo, org), "timezone": "UTC"},
    )


async def exists(bo: Bo, username: str) -> bool:
    async with bo.hub.read_sessions() as s:
        return bool(await s.scalar(select(func.count()).where(User.username == username)))


def role_options(html: str) -> set[int]:
    """The role ids the user form offers."""
    m = re.search(r'<select name="role_id"[^>]*>(.*?)</select>', html, re.S)
    assert m, "no role field"
    return {int(v) for v in re.findall(r'value="(\d+)"', m.group(1))}


def refused(r: httpx.Response, message: str) -> None:
    assert r.status_code == 403, (r.status_code, r.text[:300])
    assert message in html.unescape(r.text), r.text[:2000]


USER_BEYOND = "This user holds permissions you do not: you cannot change the user."
ROLE_BEYOND = "You can only give a role whose permissions you hold yourself."


async def test_a_user_manager_cannot_create_or_become_an_administrator(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        root = await bo.user("root")
        await custom_role(bo, "helpdesk", ["users.read", "users.write", "roles.read"])
        await custom_role(bo, "viewer", ["users.read"])
        hd = await bo.user("hd", "helpdesk")
        await login(bo.http, "hd")

        # the form offers only the roles hd may give
        offered = role_options((await bo.http.get("/backoffice/users/new")).text)
        assert await role_id(bo, "viewer") in offered and await role_id(bo, "helpdesk") in offered
        assert await role_id(bo, "administrator") not in offered

        # a role hd holds (or less) is fine; an Administrator or a Compliance officer is not
        assert (await create(bo.http, bo, "view1", "viewer")).status_code == 303
        r = await create(bo.http, bo, "boss2", "administrator")
        refused(r, ROLE_BEYOND)
        assert "roles.write" in r.text  # what hd lacks is named
        refused(await create(bo.http, bo, "comp2", COMPLIANCE), ROLE_BEYOND)
        assert not await exists(bo, "boss2") and not await exists(bo, "comp2")

        # nor may hd make itself or the user it made an Administrator
        refused(await edit(bo.http, bo, hd, "administrator"), ROLE_BEYOND)
        view1 = await bo.db_user("view1")
        refused(await edit(bo.http, bo, view1, "administrator"), ROLE_BEYOND)
        assert (await bo.db_user("hd")).role_id == await role_id(bo, "helpdesk")
        assert (await bo.db_user("view1")).role_id == await role_id(bo, "viewer")

        # the Administrator holds more than hd: no password, role, state or second-factor change
        before = await bo.db_user("root")
        page = await bo.http.get(f"/backoffice/users/{root.id}")
        assert 'id="not-manageable"' in page.text and f"/backoffice/users/{root.id}/password" not in page.text
        token = form_token(page.text)
        for action, data in (
            ("password", {"password": NEW_PASSWORD}),
            ("disable", {}),
            ("unlock", {}),
            ("reset-second-factor", {}),
        ):
            r = await bo.http.post(
                f"/backoffice/users/{root.id}/{action}", data={"csrf_token": token, **data}
            )
            refused(r, USER_BEYOND)
        refused(await edit(bo.http, bo, root, "viewer"), USER_BEYOND)
        after = await bo.db_user("root")
        assert (after.password_hash, after.enabled, after.role_id) == (
            before.password_hash,
            before.enabled,
            before.role_id,
        )
        async with bo.client() as other:  # the Administrator's password still works
            assert (await login(other, "root")).headers["location"] == "/backoffice/"

        # what hd may change, it changes
        view1 = await bo.db_user("view1")
        r = await post_form(
            bo.http,
            f"/backoffice/users/{view1.id}",
            f"/backoffice/users/{view1.id}/password",
            {"password": NEW_PASSWORD},
        )
        assert r.status_code == 303


async def test_a_role_manager_gives_roles_only_permissions_it_holds(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        smith_role = await custom_role(bo, "rolesmith", ["roles.read", "roles.write", "catalog.read"])
        await bo.user("smith", "rolesmith")
        await login(bo.http, "smith")

        page = await bo.http.get("/backoffice/roles/new")
        assert 'value="catalog.read">' in page.text and 'value="users.write" disabled>' in page.text

        r = await post_form(
            bo.http,
            "/backoffice/roles/new",
            "/backoffice/roles",
            {"code": "mighty", "name": "Mighty", "permissions": ["catalog.read", "users.write"]},
        )
        refused(r, "You can only give a role permissions you hold yourself.")
        assert "users.write" in r.text
        r = await post_form(
            bo.http,
            "/backoffice/roles/new",
            "/backoffice/roles",
            {"code": "reader", "name": "Reader", "permissions": ["catalog.read"]},
        )
        assert r.status_code == 303

        # its own role cannot grow either
        page = f"/backoffice/roles/{smith_role}"
        r = await post_form(
            bo.http,
            page,
            page,
            {"name": "Rolesmith", "permissions": ["roles.read", "roles.write", "users.write"]},
        )
        refused(r, "You can only give a role permissions you hold yourself.")

        # a role holding more (the Administrator's) cannot be changed or deleted: no weaker rules
        admin_role = await role_id(bo, "administrator")
        async with bo.hub.sessions() as s:
            admin = await s.get(Role, admin_role)
            assert admin is not None
            admin.require_second_factor = True
            await s.commit()
        page = f"/backoffice/roles/{admin_role}"
        shown = await bo.http.get(page)
        assert 'id="not-changeable"' in shown.text
        r = await bo.http.post(page, data={"csrf_token": form_token(shown.text), "name": "x"})
        refused(r, "This role holds permissions you do not: you cannot change it.")
        mighty = await custom_role(bo, "mighty2", ["catalog.read", "users.write"])
        r = await bo.http.post(
            f"/backoffice/roles/{mighty}/delete", data={"csrf_token": form_token(shown.text)}
        )
        refused(r, "This role holds permissions you do not: you cannot change it.")
        async with bo.hub.read_sessions() as s:
            assert await s.scalar(select(Role.code).where(Role.code == "mighty")) is None
            kept = await s.get(Role, admin_role)
            assert kept is not None and kept.require_second_factor
            assert await s.get(Role, mighty) is not None
            smith = await s.get(Role, smith_role)
            assert smith is not None and "users.write" not in smith.permissions


async def test_compliance_creates_and_manages_support_and_anti_fraud_users_only(db_url: str) -> None:
    # the delegation gives Anti-fraud, which holds a permission Compliance does not
    assert not role_permissions(ANTI_FRAUD) <= role_permissions(COMPLIANCE)
    async with bo_app(db_url) as bo:
        root = await bo.user("root")
        await bo.user("cfo1", "cfo")
        await bo.user("comp", COMPLIANCE)
        await login(bo.http, "comp")

        offered = role_options((await bo.http.get("/backoffice/users/new")).text)
        for code in (SUPPORT, ANTI_FRAUD):
            assert await role_id(bo, code) in offered
        for code in ("administrator", "cfo", "operator", "agent"):
            assert await role_id(bo, code) not in offered

        assert (await create(bo.http, bo, "sup1", SUPPORT)).status_code == 303
        assert (await create(bo.http, bo, "af1", ANTI_FRAUD)).status_code == 303
        for name, code in (("adm9", "administrator"), ("cfo9", "cfo"), ("op9", "operator")):
            refused(await create(bo.http, bo, name, code), ROLE_BEYOND)
            assert not await exists(bo, name)

        # manages them: password, role between the two; not to a role beyond its own
        af1 = await bo.db_user("af1")
        r = await post_form(
            bo.http,
            f"/backoffice/users/{af1.id}",
            f"/backoffice/users/{af1.id}/password",
            {"password": NEW_PASSWORD},
        )
        assert r.status_code == 303
        assert (await edit(bo.http, bo, af1, SUPPORT)).status_code == 303
        refused(await edit(bo.http, bo, af1, "operator"), ROLE_BEYOND)
        assert (await bo.db_user("af1")).role_id == await role_id(bo, SUPPORT)

        # and nobody else: neither the Administrator nor the CFO
        for target in (root, await bo.db_user("cfo1")):
            refused(
                await post_form(
                    bo.http, f"/backoffice/users/{target.id}", f"/backoffice/users/{target.id}/disable", {}
                ),
                USER_BEYOND,
            )
            assert (await bo.db_user(target.username)).enabled


async def test_an_agents_user_manager_stays_in_its_organization(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        async with bo.hub.sessions() as s:
            agent = Agent(code="dealer", name="Dealer", enabled=True)
            s.add(agent)
            await s.flush()
            s.add(Organization(code="dealer", name="Dealer", kind="agent", agent_id=agent.id))
            await s.commit()
        await custom_role(bo, "dealer_admin", ["users.read", "users.write", "orgs.write", "payments.read"])
        await custom_role(bo, "dealer_clerk", ["payments.read"])
        await bo.user("da", "dealer_admin", org="dealer")
        await bo.user("root")
        await login(bo.http, "da")

        assert (await create(bo.http, bo, "clerk1", "dealer_clerk", org="dealer")).status_code == 303
        # a user of the operator sees every channel: not for an agent's user to create or move into
        refused(
            await create(bo.http, bo, "clerk2", "dealer_clerk"),
            "You can only manage users of your own organization.",
        )
        clerk1 = await bo.db_user("clerk1")
        refused(
            await edit(bo.http, bo, clerk1, "dealer_clerk"),
            "You can only manage users of your own organization.",
        )
        assert not await exists(bo, "clerk2")
        async with bo.hub.read_sessions() as s:
            moved = await s.get(User, clerk1.id)
            assert moved is not None and moved.organization_id == await org_id(bo, "dealer")
        # nor turn its organization into the operator's: an agent's users never hold orgs.write
        # (paymux.auth.permissions.AGENT_PERMISSIONS), whatever their role says
        r = await post_form(
            bo.http,
            "/backoffice/users",
            "/backoffice/organizations",
            {"code": "dealer", "name": "Dealer", "kind": "operator"},
        )
        assert r.status_code == 403 and "orgs.write" in html.unescape(r.text), r.text[:2000]
        async with bo.hub.read_sessions() as s:
            kind = await s.scalar(select(Organization.kind).where(Organization.code == "dealer"))
        assert kind == "agent"


async def test_a_users_api_token_is_revoked_on_the_user_page_by_who_may_manage_the_user(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        root_row = await bo.user("root")
        op = await bo.user("op", "operator")
        await custom_role(bo, "helpdesk", ["users.read", "users.write"])
        await bo.user("hd", "helpdesk")
        async with bo.hub.sessions() as s:
            op_row, root_user = await s.get(User, op.id), await s.get(User, root_row.id)
            assert op_row is not None and root_user is not None
            op_token, op_api = await issue_token(s, op_row, "ci", None)
            _, root_api = await issue_token(s, root_user, "ops", None)
            await s.commit()
        api = {"Authorization": f"Bearer {op_token}"}
        assert (await bo.http.get("/api/v1/admin/channels", headers=api)).status_code == 200

        # a user manager who holds less than the Administrator cannot revoke the Administrator's token
        async with bo.client() as hd:
            await login(hd, "hd")
            page = await hd.get(f"/backoffice/users/{root_row.id}")
            assert root_api.prefix in page.text and f"revoke-user-token-{root_api.id}" not in page.text
            refused(await hd.get(f"/backoffice/users/{root_row.id}/tokens/{root_api.id}/revoke"), USER_BEYOND)
            r = await hd.post(
                f"/backoffice/users/{root_row.id}/tokens/{root_api.id}/revoke",
                data={"csrf_token": form_token(page.text)},
            )
            refused(r, USER_BEYOND)

        await login(bo.http, "root")
        page = await bo.http.get(f"/backoffice/users/{op.id}")
        assert f'id="revoke-user-token-{op_api.id}"' in page.text
        confirm = await bo.http.get(f"/backoffice/users/{op.id}/tokens/{op_api.id}/revoke")
        assert confirm.status_code == 200 and op_api.prefix in confirm.text
        assert (await bo.http.get("/api/v1/admin/channels", headers=api)).status_code == 200
        r = await bo.http.post(
            f"/backoffice/users/{op.id}/tokens/{op_api.id}/revoke",
            data={"csrf_token": form_token(confirm.text)},
        )
        assert r.status_code == 303 and "revoked" in flash_of((await follow(bo.http, r)).text)
        assert (await bo.http.get("/api/v1/admin/channels", headers=api)).status_code == 401
        async with bo.hub.read_sessions() as s:
            revoked = await s.get(ApiToken, op_api.id)
            kept = await s.get(ApiToken, root_api.id)
            events = (await s.scalars(select(AuditEvent).where(AuditEvent.action == "token.revoke"))).all()
        assert revoked is not None and revoked.revoked_at is not None
        assert kept is not None and kept.revoked_at is None
        assert [(e.actor, e.target, e.after["prefix"]) for e in events] == [
            ("user:root", "user:op", op_api.prefix)
        ]
        page = await bo.http.get(f"/backoffice/users/{op.id}")
        assert f'id="revoke-user-token-{op_api.id}"' not in page.text
