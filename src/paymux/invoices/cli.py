"""``paymux invoices``: importing bank statements for invoices, and the daily payouts to billers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

invoices_app = typer.Typer(help="Invoice collection: bank statements and payouts.", no_args_is_help=True)

ACTOR = "cli"


@invoices_app.command("import-statement")
def import_statement(
    file: Annotated[
        Path, typer.Argument(help="a camt.053, camt.054 or MT940 file", exists=True, dir_okay=False)
    ],
    format: Annotated[
        str | None, typer.Option("--format", help="camt053, camt054 or mt940 (default: detected)")
    ] = None,
) -> None:
    """Match the statement's credit lines to invoices and apply them; the others wait in the queue."""
    from paymux.audit import service as audit
    from paymux.cli import fail, in_session
    from paymux.errors import Problem
    from paymux.invoices import receipts
    from paymux.settings import get_settings

    if format is not None and format not in ("camt053", "camt054", "mt940"):
        fail("--format is camt053, camt054 or mt940", 2)
    data = file.read_bytes()

    async def work(session: AsyncSession) -> dict[str, object]:
        result = await receipts.import_statement(session, data, format, get_settings().invoice_hub_accounts)
        view = result.view()
        await audit.record(
            session,
            ACTOR,
            "invoice_statement.import",
            f"statement:{file.name[:100]}",
            None,
            {k: v for k, v in view.items() if k != "receipts"},
        )
        return view

    try:
        view = in_session(work, commit=True)
    except Problem as e:
        fail(e.detail or e.title)
        return
    typer.echo(
        f"{view['format']}: {view['credits']} credit lines: {view['matched']} matched, "
        f"{view['unmatched']} waiting for a person, {view['duplicates']} seen before"
    )


@invoices_app.command("payouts")
def payouts(
    date: Annotated[str, typer.Option("--date", help="the day collected, YYYY-MM-DD (business time)")],
    out: Annotated[
        Path, typer.Option("--out", help="folder for the pain.001 files, one per biller", file_okay=False)
    ] = Path("."),
    biller: Annotated[str | None, typer.Option("--biller", help="only this biller")] = None,
) -> None:
    """Make the day's payouts (collections less fees, not paid out before) and write their pain.001 files."""
    from paymux.audit import service as audit
    from paymux.cli import fail, in_session
    from paymux.db.base import utcnow
    from paymux.errors import Problem
    from paymux.invoices.ledger import make_payouts, payout_xml
    from paymux.invoices.models import InvoicePayout
    from paymux.settings import get_settings
    from paymux.settlement.exports.checks import missing_debtor_settings
    from paymux.settlement.settings import SettlementSettings

    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        fail("--date is YYYY-MM-DD", 2)
        return
    missing = missing_debtor_settings(SettlementSettings(), "pain001")
    if missing:
        fail(f"a pain.001 file needs our own bank details: set {', '.join(missing)}")
        return
    tz = get_settings().business_tz

    async def work(session: AsyncSession) -> tuple[list[tuple[str, str, bytes]], list[str]]:
        made, skipped = await make_payouts(session, day, tz, actor=ACTOR, biller_code=biller)
        by_biller: dict[str, list[InvoicePayout]] = {}
        for m in made:
            by_biller.setdefault(m.biller.code, []).append(m.payout)
        now = utcnow().astimezone(tz)
        files: list[tuple[str, str, bytes]] = []
        for code, rows in by_biller.items():
            data = payout_xml(
                rows,
                message_id=f"IPO{day:%Y%m%d}-{rows[0].biller_id}",
                execution_date=max(day + dt.timedelta(days=1), now.date()),
                created_at=now,
            )
            total = ", ".join(f"{p.amount} {p.currency}" for p in rows)
            files.append((code, total, data))
        numbers = [m.payout.number for m in made if m.created]
        if numbers:
            await audit.record(
                session, ACTOR, "invoice_payout.create", f"payouts:{day}", None, {"payouts": numbers}
            )
        return files, skipped

    try:
        files, skipped = in_session(work, commit=True)
    except Problem as e:
        fail(e.detail or e.title)
        return
    out.mkdir(parents=True, exist_ok=True)
    for code, total, data in files:
        path = out / f"payout-{code}-{day.isoformat()}.xml"
        path.write_bytes(data)
        typer.echo(f"{code}: {total} (minor units) -> {path}")
    for code in skipped:
        typer.echo(f"{code}: owed money but has no account (IBAN or account number): nothing made")
    if not files:
        typer.echo("no payouts due")
