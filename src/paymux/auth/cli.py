"""``paymux users``: back-office users from the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

users_app = typer.Typer(help="Back-office users.", no_args_is_help=True)


@users_app.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Argument(help="user name of the new administrator")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="PAYMUX_ADMIN_PASSWORD",
            help="at least 12 characters, not a common password (or PAYMUX_ADMIN_PASSWORD)",
        ),
    ],
    email: Annotated[str | None, typer.Option(help="e-mail address (for codes by e-mail)")] = None,
    full_name: Annotated[str, typer.Option(help="full name")] = "",
) -> None:
    """Create a user with the Administrator role in the operator's organization."""
    from paymux import audit
    from paymux.auth.passwords import PasswordPolicyError
    from paymux.auth.permissions import ADMINISTRATOR
    from paymux.auth.users import (
        UserError,
        create_user,
        ensure_builtin_roles,
        ensure_operator_org,
        user_state,
    )
    from paymux.cli import fail, in_session

    async def work(session: AsyncSession) -> str:
        roles = await ensure_builtin_roles(session)
        org = await ensure_operator_org(session)
        user = await create_user(
            session,
            username=username,
            password=password,
            role=roles[ADMINISTRATOR],
            organization=org,
            email=email,
            full_name=full_name,
        )
        await audit.record(session, "cli", "user.create", f"user:{user.username}", None, user_state(user))
        return user.username

    try:
        name = in_session(work, commit=True)
    except (UserError, PasswordPolicyError) as e:
        fail(str(e))
        return
    typer.echo(f"administrator {name} created; log in at /backoffice/login")
