"""``paymux audit verify``: check the audit log's hash chain."""

from __future__ import annotations

import typer

audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)


@audit_app.command("verify")
def verify() -> None:
    """Walk the audit log: any changed or removed row breaks the chain and is reported (exit 1)."""
    from paymux.audit.service import verify_chain
    from paymux.cli import fail, in_session

    check = in_session(verify_chain)
    typer.echo(f"{check.rows} audit rows; head #{check.head_seq} {check.head_hash}")
    if not check.ok:
        for p in check.problems:
            typer.echo(f"  {p}", err=True)
        fail("audit log chain is BROKEN: rows were changed or removed")
    typer.echo("audit log chain intact: yes")
