"""Roles: the predefined ones (permissions from code) and custom ones built from the permissions."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.api.params import Id
from paymux.auth import permissions as P
from paymux.auth.access import AccessRuleError
from paymux.auth.grants import check_change_role, check_role_permissions, may_change_role
from paymux.auth.principal import Principal, permissions_of
from paymux.auth.user_models import Role, User
from paymux.auth.users import end_user_sessions, role_state
from paymux.backoffice.forms import WEEKDAYS, access_rules
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
from paymux.backoffice.listing import Column, Filter, ListSpec, respond

router = section_router()
register(
    Section(
        "roles",
        router,
        menu=(MenuEntry("Roles", "/backoffice/roles", P.ROLES_READ, 11, area=ADMINISTRATION),),
        permissions=(P.ROLES_READ, P.ROLES_WRITE),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.ROLES_READ))]
Writer = Annotated[Principal, Depends(require(P.ROLES_WRITE))]

users_count = select(func.count()).where(User.role_id == Role.id).correlate(Role).scalar_subquery()


@router.get("/roles")
async def roles_list(request: Request, session: ReadDbDep, _: Reader) -> Response:
    spec = ListSpec(
        query=select(Role, users_count.label("users")),
        columns=[
            Column("code", "Code", Role.code, lambda r: r[0].code),
            Column("name", "Name", Role.name, lambda r: r[0].name),
            Column("builtin", "Predefined", Role.builtin, lambda r: r[0].builtin),
            Column(
                "require_second_factor",
                "Second factor required",
                Role.require_second_factor,
                lambda r: r[0].require_second_factor,
            ),
            Column("permissions", "Permissions", None, lambda r: sorted(permissions_of(r[0]))),
            Column("users", "Users", users_count, lambda r: r.users),
        ],
        search=[Role.code, Role.name],
        filters=[
            Filter(
                "builtin",
                "Predefined",
                lambda q, v: q.where(Role.builtin.is_(v == "yes")),
                [("yes", "yes"), ("no", "no")],
            )
        ],
        default_sort="name",
        default_desc=False,
        sheet="roles",
    )
    return respond(request, await spec.run(session, request), "roles/list.html")


def _form_context(me: Principal, role: Role | None) -> dict[str, Any]:
    return {
        "all_permissions": sorted(P.PERMISSIONS.values(), key=lambda p: p.code),
        "granted": permissions_of(role) if role else frozenset(),
        # what ``me`` may give a role, and whether ``me`` may change this one at all
        "givable": me.permissions,
        "changeable": role is None or may_change_role(me, role),
        "rules": {
            "networks": list(role.allowed_networks or []) if role else [],
            "hours": role.working_hours if role else None,
        },
        "weekdays": WEEKDAYS,
    }


@router.get("/roles/new")
async def role_new(request: Request, me: Writer) -> Response:
    return render(request, "roles/form.html", r=None, error="", **_form_context(me, None))


async def _role(session: AsyncSession, role_id: int) -> Role:
    role = await session.get(Role, role_id)
    if role is None:
        raise PageNotFound()
    return role


@router.get("/roles/{role_id}")
async def role_detail(request: Request, role_id: Id, session: ReadDbDep, me: Reader) -> Response:
    role = await _role(session, role_id)
    return render(request, "roles/form.html", r=role, error="", **_form_context(me, role))


async def _apply(request: Request, me: Principal, role: Role, name: str, require_2fa: bool) -> None:
    """Set the role from the form; refuses (GrantRefused) permissions ``me`` does not hold."""
    form = await request.form()
    chosen = sorted({str(p) for p in form.getlist("permissions")} & set(P.PERMISSIONS))
    if not role.builtin:
        check_role_permissions(me, chosen)
    role.allowed_networks, role.working_hours = await access_rules(request)
    role.require_second_factor = require_2fa
    if not role.builtin:
        if not name.strip():
            raise AccessRuleError("A role needs a name.")
        role.name = name.strip()[:200]
        role.permissions = chosen


@router.post("/roles")
async def role_create(
    request: Request,
    session: DbDep,
    me: Writer,
    code: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    require_second_factor: Annotated[bool, Form()] = False,
) -> Response:
    role = Role(code=code.strip().lower(), name=name, builtin=False, permissions=[], allowed_networks=[])
    try:
        if not re.fullmatch(r"[a-z][a-z0-9_]{1,63}", role.code):
            raise AccessRuleError("A role code has 2 to 64 small letters, digits or underscores.")
        if await session.scalar(select(Role.id).where(Role.code == role.code)):
            raise AccessRuleError("This role code is taken.")
        await _apply(request, me, role, name, require_second_factor)
    except AccessRuleError as e:
        return render(request, "roles/form.html", 422, r=None, error=str(e), **_form_context(me, None))
    session.add(role)
    await session.flush()
    await audit.record(session, me, "role.create", f"role:{role.code}", None, role_state(role))
    await session.commit()
    return redirect(f"/backoffice/roles/{role.id}", "The role was created.")


@router.post("/roles/{role_id}")
async def role_update(
    request: Request,
    role_id: Id,
    session: DbDep,
    me: Writer,
    name: Annotated[str, Form()] = "",
    require_second_factor: Annotated[bool, Form()] = False,
) -> Response:
    role = await _role(session, role_id)
    check_change_role(me, role)
    before = role_state(role)
    try:
        await _apply(request, me, role, name, require_second_factor)
    except AccessRuleError as e:
        return render(request, "roles/form.html", 422, r=role, error=str(e), **_form_context(me, role))
    after = role_state(role)
    if before["permissions"] != after["permissions"]:
        for uid in (await session.scalars(select(User.id).where(User.role_id == role.id))).all():
            await end_user_sessions(session, uid, "rights changed")
    await session.flush()
    await audit.record(session, me, "role.update", f"role:{role.code}", before, after)
    await session.commit()
    return redirect(f"/backoffice/roles/{role.id}", "Saved.")


@router.post("/roles/{role_id}/delete")
async def role_delete(role_id: Id, session: DbDep, me: Writer) -> Response:
    role = await _role(session, role_id)
    check_change_role(me, role)
    if role.builtin or await session.scalar(select(User.id).where(User.role_id == role.id).limit(1)):
        return redirect(f"/backoffice/roles/{role.id}", "Only a custom role without users can be deleted.")
    before = role_state(role)
    await session.delete(role)
    await audit.record(session, me, "role.delete", f"role:{before['code']}", before, None)
    await session.commit()
    return redirect("/backoffice/roles", "The role was deleted.")
