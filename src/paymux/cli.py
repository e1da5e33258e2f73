"""The ``paymux`` command line."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from paymux import event_loop
from paymux.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

app = typer.Typer(help="paymux: an open-source payments hub.", no_args_is_help=True, add_completion=False)
catalog_app = typer.Typer(help="The catalog as a YAML file.", no_args_is_help=True)
channels_app = typer.Typer(help="Channels and their API keys.", no_args_is_help=True)
admin_app = typer.Typer(help="Admin API tokens.", no_args_is_help=True)
ledger_app = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(channels_app, name="channels")
app.add_typer(admin_app, name="admin")
app.add_typer(ledger_app, name="ledger")


def _attach_backoffice() -> None:
    from paymux.audit.cli import audit_app
    from paymux.auth.cli import users_app

    app.add_typer(users_app, name="users")
    app.add_typer(audit_app, name="audit")


_attach_backoffice()


def _attach_emulators() -> None:
    try:
        from paymux.providers.emulators.cli import emulator_app
    except ImportError:  # pragma: no cover - emulators are part of the package
        return
    app.add_typer(emulator_app, name="emulator")


_attach_emulators()


def fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # one INFO line per provider request would cost more than the request: the hub records every
    # exchange with the payment (secrets masked) instead
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (PAYMUX_DATABASE_URL)."""
    from paymux.db.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url)
    typer.echo(f"database is up to date: {_safe_url(settings.database_url)}")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on")] = None,
    workers: Annotated[bool, typer.Option(help="also run background workers in this process")] = True,
    migrate_first: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="migrate before serving")
    ] = True,
) -> None:
    """Serve the API and back office (with background workers unless --no-workers)."""
    settings = get_settings()
    _logging(settings)
    if migrate_first:
        from paymux.db.migrate import upgrade

        upgrade(settings.database_url)
    from paymux.server import serve_hub

    event_loop.run(
        serve_hub(settings, host or settings.host, port or settings.port, run_workers=workers),
        settings.event_loop,
    )


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="payments processed at once")] = None,
) -> None:
    """Run background workers only (scale out next to `paymux serve --no-workers`)."""
    settings = get_settings()
    _logging(settings)

    async def main() -> None:
        from paymux.payments.processing import Worker
        from paymux.runtime import Hub
        from paymux.server import settle_heap

        hub = Hub(settings)
        w = Worker(hub, concurrency)
        settle_heap()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, w.stop)
        typer.echo(f"worker {w.lease} processing payments from {_safe_url(settings.database_url)}")
        from paymux.worker.background import running_background

        try:
            async with running_background(hub):
                await w.run()
        finally:
            await hub.close()

    event_loop.run(main(), settings.event_loop)


def in_session(work: Callable[[AsyncSession], Awaitable[T]], *, commit: bool = False) -> T:
    """Run ``work`` in one database session (committed when ``commit``, else rolled back)."""

    async def main() -> T:
        from paymux.runtime import Hub

        hub = Hub(get_settings())
        try:
            async with hub.sessions() as session:
                result = await work(session)
                await (session.commit() if commit else session.rollback())
                return result
        finally:
            await hub.close()

    return asyncio.run(main())


@catalog_app.command("apply")
def catalog_apply(
    file: Annotated[Path, typer.Argument(help="catalog YAML file", exists=True, dir_okay=False)],
    dry_run: Annotated[bool, typer.Option(help="report what would change, change nothing")] = False,
) -> None:
    """Create or update everything in the file (idempotent) and report what changed."""
    from paymux.catalog.file import apply_catalog, load_yaml

    try:
        data = load_yaml(file.read_text(encoding="utf-8"))
    except ValueError as e:
        fail(f"{file}: {e}")
        return

    try:
        report = in_session(lambda session: apply_catalog(session, data, actor="cli"), commit=not dry_run)
    except ValueError as e:
        fail(f"{file}: {e} (nothing was changed)")
        return
    for line in report.lines():
        typer.echo(line)
    typer.echo(report.summary() + (" (dry run, nothing changed)" if dry_run else ""))


@catalog_app.command("export")
def catalog_export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to this file")] = None,
) -> None:
    """Print the whole catalog (services, providers, channels, routes, tariffs) as YAML."""
    from paymux.catalog.file import dump_yaml, export_catalog

    text = dump_yaml(in_session(export_catalog))
    if output:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"catalog written to {output}")
    else:
        sys.stdout.write(text)


@channels_app.command("issue-key")
def channels_issue_key(code: Annotated[str, typer.Argument(help="channel code")]) -> None:
    """Print a new API key for the channel on the last line (shown once, stored hashed)."""
    from paymux.auth.keys import UnknownChannel, issue_channel_key

    try:
        key = in_session(lambda session: issue_channel_key(session, code), commit=True)
    except UnknownChannel as e:
        fail(str(e))
        return
    typer.echo(f"API key for channel {code} (shown once; store it safely):", err=True)
    typer.echo(key)


@admin_app.command("issue-token")
def admin_issue_token(
    name: Annotated[str, typer.Option(help="who or what the token is for")] = "admin",
) -> None:
    """Print a new admin API token on the last line (shown once, stored hashed)."""
    from paymux.auth.keys import issue_admin_token

    token = in_session(lambda session: issue_admin_token(session, name), commit=True)
    typer.echo(f"admin token {name!r} (shown once; store it safely):", err=True)
    typer.echo(token)


@ledger_app.command("verify")
def ledger_verify() -> None:
    """Check that every journal entry balances and every balance equals its postings."""
    from paymux.ledger.service import verify_ledger

    check = in_session(verify_ledger)
    typer.echo(f"{check.entries} entries, {check.postings} postings; totals by currency: {check.totals}")
    if not check.balanced:
        fail(
            f"ledger does NOT balance: entries {check.unbalanced_entries[:20]}, "
            f"accounts {check.mismatched_accounts[:20]}"
        )
    typer.echo("ledger balanced: yes")


@app.command()
def demo(
    payments: Annotated[int, typer.Option(help="send this many payments through the HTTP API")] = 0,
    exit_after: Annotated[bool, typer.Option("--exit", help="exit after the payments are final")] = False,
    seed_only: Annotated[bool, typer.Option("--seed-only", help="load the demo data and exit")] = False,
    host: Annotated[str, typer.Option(help="address to serve on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to serve on")] = 8000,
    concurrency: Annotated[int, typer.Option(help="parallel requests of the demo load")] = 32,
) -> None:
    """Serve the hub with demo data and emulated providers (SQLite by default)."""
    from paymux.demo.run import run_demo

    settings = get_settings()
    _logging(settings) if not (payments or seed_only) else None
    code = event_loop.run(
        run_demo(
            settings,
            payments=payments,
            exit_after=exit_after,
            seed_only=seed_only,
            host=host,
            port=port,
            concurrency=concurrency,
        ),
        settings.event_loop,
    )
    raise typer.Exit(code)


@app.command()
def bench(
    quick: Annotated[
        bool, typer.Option(help="1,000 payments per level, shorter ceilings (under 2 minutes)")
    ] = False,
    postgres: Annotated[
        str | None,
        typer.Option(help="also on this PostgreSQL database (scratch: its schema is recreated)"),
    ] = None,
    scale: Annotated[
        bool, typer.Option(help="also 2 API processes + 2 workers on PostgreSQL (needs --postgres)")
    ] = False,
    levels: Annotated[str, typer.Option(help="concurrency levels, comma separated")] = "1,16,64,256",
    payments: Annotated[int | None, typer.Option(help="payments per level [5000; quick: 1000]")] = None,
    warmup: Annotated[int | None, typer.Option(help="warm-up payments [500; quick: 200]")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="write the results to this file")] = None,
    provider_latency_ms: Annotated[int, typer.Option(help="latency of the emulated providers")] = 2,
    ceiling_payments: Annotated[
        int | None, typer.Option(help="payments written for the SQL ceiling [20000; quick: 5000]")
    ] = None,
    micro_seconds: Annotated[
        float | None, typer.Option(help="seconds per microbenchmark [1.0; quick: 0.3]")
    ] = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="make the scratch directory (databases, logs) in here")
    ] = None,
    keep: Annotated[bool, typer.Option(help="keep the scratch directory")] = False,
    files: Annotated[
        int,
        typer.Option(
            help="also build an N-payment register in each format, reconcile an N-line provider"
            " register and run the reports over N payments (time, peak memory); 0 skips it"
        ),
    ] = 0,
    repeat: Annotated[
        int,
        typer.Option(
            help="run each level and each ceiling this many times and report the median run, with the"
            " spread (a noisy machine)"
        ),
    ] = 1,
    new_connections: Annotated[
        bool,
        typer.Option(
            help="every request on a connection of its own (clients that do not keep connections"
            " alive); the HTTP ceiling too"
        ),
    ] = False,
) -> None:
    """Measure the hub under load (SQLite, and PostgreSQL with --postgres) next to the machine's ceilings."""
    from paymux.bench.runner import BenchOptions, run_bench

    try:
        opts = BenchOptions(
            levels=[int(x) for x in levels.split(",") if x.strip()],
            payments=payments,
            warmup=warmup,
            quick=quick,
            postgres=postgres,
            scale=scale,
            json_path=json_file,
            provider_latency_ms=provider_latency_ms,
            ceiling_payments=ceiling_payments,
            micro_seconds=micro_seconds,
            work_dir=work_dir,
            keep=keep,
            files=files,
            repeat=repeat,
            new_connections=new_connections,
        )
        opts.resolve()
    except ValueError as e:
        fail(str(e), code=2)
        return
    raise typer.Exit(run_bench(opts))


def main() -> None:
    app()
