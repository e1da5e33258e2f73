"""The ``paymux`` command line."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from paymux import event_loop
from paymux.server_tls import ClientCerts
from paymux.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from paymux.catalog.schemas import CatalogFile

T = TypeVar("T")

app = typer.Typer(help="paymux: an open-source payments hub.", no_args_is_help=True, add_completion=False)
catalog_app = typer.Typer(help="The catalog as a YAML file.", no_args_is_help=True)
channels_app = typer.Typer(help="Channels and their API keys.", no_args_is_help=True)
admin_app = typer.Typer(help="Admin API tokens.", no_args_is_help=True)
ledger_app = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)
recurring_app = typer.Typer(help="Recurring payments.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(channels_app, name="channels")
app.add_typer(admin_app, name="admin")
app.add_typer(ledger_app, name="ledger")
app.add_typer(recurring_app, name="recurring")


def _attach_backoffice() -> None:
    from paymux.audit.cli import audit_app
    from paymux.auth.cli import users_app

    app.add_typer(users_app, name="users")
    app.add_typer(audit_app, name="audit")


_attach_backoffice()


def _attach_invoices() -> None:
    from paymux.invoices.cli import invoices_app

    app.add_typer(invoices_app, name="invoices")


_attach_invoices()


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
    from paymux.request_id import LOG_FORMAT, install_log_records

    install_log_records()  # every line names the request it was written for ("-": none)
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
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
    ssl_certfile: Annotated[
        str | None,
        typer.Option(help="serve HTTPS with this PEM certificate (chain) [PAYMUX_SSL_CERTFILE]"),
    ] = None,
    ssl_keyfile: Annotated[
        str | None,
        typer.Option(help="its private key (PEM), if not in the certificate file [PAYMUX_SSL_KEYFILE]"),
    ] = None,
    ssl_keyfile_password: Annotated[
        str | None,
        typer.Option(
            help="password of an encrypted key; rather set PAYMUX_SSL_KEYFILE_PASSWORD (other users"
            " of the machine can read a command line)"
        ),
    ] = None,
    ssl_ca_certs: Annotated[
        str | None,
        typer.Option(help="CA certificates that issue the clients' certificates [PAYMUX_SSL_CA_CERTS]"),
    ] = None,
    ssl_cert_reqs: Annotated[
        ClientCerts | None,
        typer.Option(help="client certificates: none, optional or required [PAYMUX_SSL_CERT_REQS]"),
    ] = None,
) -> None:
    """Serve the API and back office (with background workers unless --no-workers); HTTPS with
    --ssl-certfile."""
    from paymux.server_tls import TLSOptionsError, server_tls

    settings = get_settings()
    _logging(settings)
    try:
        tls = server_tls(
            settings,
            certfile=ssl_certfile,
            keyfile=ssl_keyfile,
            keyfile_password=ssl_keyfile_password,
            ca_certs=ssl_ca_certs,
            client_certs=ssl_cert_reqs,
        )
    except TLSOptionsError as e:
        fail(str(e))
        return
    if settings.iso8583_enabled:  # a bad terminal list stops serve before anything listens
        from paymux.iso8583.config import ConfigError, load_config

        try:
            load_config(settings.iso8583_config)
        except ConfigError as e:
            fail(str(e))
            return
    if migrate_first:
        from paymux.db.migrate import upgrade

        upgrade(settings.database_url)
    from paymux.server import serve_hub

    event_loop.run(
        serve_hub(settings, host or settings.host, port or settings.port, run_workers=workers, tls=tls),
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


@catalog_app.command("import-library")
def catalog_import_library(
    file: Annotated[Path, typer.Argument(help="the library: CSV or JSON", exists=True, dir_okay=False)],
    provider: Annotated[str, typer.Option("--provider", help="the catalog's provider the library is of")],
    apply: Annotated[
        bool, typer.Option("--apply", help="write the changes (default: show them only)")
    ] = False,
    disable_missing: Annotated[
        bool, typer.Option("--disable-missing", help="disable services the library no longer lists")
    ] = False,
    show: Annotated[int, typer.Option("--show", min=0, max=100000, help="changes to list")] = 50,
) -> None:
    """Import an aggregator's list of services (a provider library): the diff, then --apply."""
    from paymux.catalog.library import LibraryError, apply_import, detect_format, plan_import, read_rows

    data = file.read_bytes()
    try:
        rows = read_rows(data, detect_format(data, file.name))
    except LibraryError as e:
        fail(f"{file}: {e}")
        return

    async def work(session: AsyncSession) -> Any:
        plan = await plan_import(session, provider, rows, disable_missing=disable_missing)
        report = await apply_import(session, plan, actor="cli") if apply and not plan.problems else None
        return plan, report

    try:
        plan, report = in_session(work, commit=apply)
    except ValueError as e:
        fail(f"{file}: {e} (nothing was changed)")
        return
    for problem in plan.problems[:show]:
        typer.secho(f"problem: {problem}", fg=typer.colors.RED, err=True)
    for change in [c for c in plan.changes if c.kind != "unchanged"][:show]:
        typer.echo(change.line())
    typer.echo(plan.summary())
    if plan.problems:
        fail(f"{file}: {len(plan.problems)} problems; nothing was changed")
    elif report is not None:
        typer.echo(f"applied: {report.summary()}")
    else:
        typer.echo("nothing was changed (add --apply to write these changes)")


@catalog_app.command("export")
def catalog_export(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write to this file")] = None,
    with_secrets: Annotated[
        bool,
        typer.Option(
            "--with-secrets", help="write secrets out instead of *** (needs an administrator's token)"
        ),
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="PAYMUX_ADMIN_TOKEN",
            help="with --with-secrets: an admin token, or the API token of a user allowed catalog.secrets "
            "(the Administrator); better given as PAYMUX_ADMIN_TOKEN than on the command line",
        ),
    ] = None,
) -> None:
    """Print the whole catalog (services, providers, channels, routes, tariffs) as YAML.

    Secrets are written as *** (applying the file keeps the stored ones). --with-secrets writes them
    out for an administrator: the export is recorded in the audit log and a file is made readable
    by its owner only.
    """
    from paymux.catalog.file import dump_yaml, export_catalog

    if not with_secrets:
        _write_catalog(dump_yaml(in_session(export_catalog)), output)
        return
    if not token:
        fail("--with-secrets needs an administrator's token: set PAYMUX_ADMIN_TOKEN (or give --token)")
        return
    try:
        catalog = in_session(lambda session: _export_with_secrets(session, token), commit=True)
    except PermissionError as e:
        fail(str(e))
        return
    _write_catalog(dump_yaml(catalog), output, private=True)
    typer.secho("the catalog holds secrets in clear: keep it safe", fg=typer.colors.YELLOW, err=True)


async def _export_with_secrets(session: AsyncSession, token: str) -> CatalogFile:
    """The catalog with its secrets, for a token that may have them (audited); PermissionError if not."""
    from paymux import audit
    from paymux.auth import permissions as P
    from paymux.auth.principal import principal_for_token
    from paymux.catalog.file import export_catalog

    principal = await principal_for_token(session, token, ip="cli")
    if principal is None:
        raise PermissionError("the token is unknown, expired or revoked, or its user is disabled")
    if not principal.can(P.CATALOG_SECRETS):
        raise PermissionError(
            f"{principal.audit_name} may not export secrets (it needs the permission {P.CATALOG_SECRETS}, "
            "which the Administrator holds)"
        )
    catalog = await export_catalog(session, with_secrets=True)
    await audit.record(session, principal, "catalog.export_secrets", "catalog", None, {"with_secrets": True})
    return catalog


def _write_catalog(text: str, output: Path | None, *, private: bool = False) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    if private:  # created readable by its owner only (an existing file is narrowed to that first)
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        output.write_text(text, encoding="utf-8")
    typer.echo(f"catalog written to {output}")


@channels_app.command("issue-key")
def channels_issue_key(code: Annotated[str, typer.Argument(help="channel code")]) -> None:
    """Print a new API key for the channel on the last line (shown once, stored hashed)."""
    from paymux import audit
    from paymux.auth.keys import UnknownChannel, issue_channel_key

    async def work(session: AsyncSession) -> str:
        key = await issue_channel_key(session, code)
        await audit.record(
            session, "cli", "channel.key_issue", f"channel:{code}", None, {"key_prefix": key[:12]}
        )
        return key

    try:
        key = in_session(work, commit=True)
    except UnknownChannel as e:
        fail(str(e))
        return
    typer.echo(f"API key for channel {code} (shown once; store it safely):", err=True)
    typer.echo(key)


def _when(value: object) -> str:
    import datetime as dt

    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(value, dt.datetime) else "-"


@channels_app.command("keys")
def channels_keys(code: Annotated[str, typer.Argument(help="channel code")]) -> None:
    """List the channel's API keys (id, prefix, created, state), newest first; never the secrets."""
    from paymux.auth import credentials as creds
    from paymux.auth.keys import UnknownChannel

    async def work(session: AsyncSession) -> list[dict[str, object]]:
        channel = await creds.channel_by_code(session, code)
        return [creds.key_view(k, code) for k in await creds.channel_keys(session, channel)]

    try:
        keys = in_session(work)
    except UnknownChannel as e:
        fail(str(e))
        return
    for k in keys:
        revoked = f" at {_when(k['revoked_at'])}" if k["revoked_at"] else ""
        typer.echo(f"{k['id']}\t{k['prefix']}\tcreated {_when(k['created_at'])}\t{k['state']}{revoked}")
    if not keys:
        typer.echo(f"channel {code} has no API keys")


@channels_app.command("revoke-key")
def channels_revoke_key(
    code: Annotated[str, typer.Argument(help="channel code")],
    key: Annotated[str, typer.Argument(help="the key's id or prefix (as `paymux channels keys` shows)")],
) -> None:
    """Revoke one API key of the channel (audited). Running hubs refuse it within
    PAYMUX_CHANNEL_KEY_CACHE_SECONDS."""
    from paymux import audit
    from paymux.auth import credentials as creds
    from paymux.auth.keys import UnknownChannel

    async def work(session: AsyncSession) -> tuple[str, bool]:
        channel = await creds.channel_by_code(session, code)
        row, changed = await creds.revoke_channel_key(session, channel, key)
        if changed:
            before, after = creds.revocation(row)
            await audit.record(session, "cli", "channel.key_revoke", f"channel:{code}", before, after)
        return f"key {row.id} ({row.prefix}) of channel {code}", changed

    try:
        what, changed = in_session(work, commit=True)
    except (UnknownChannel, creds.UnknownCredential, creds.AmbiguousPrefix) as e:
        fail(str(e))
        return
    if not changed:
        typer.echo(f"{what} was already revoked")
        return
    bound = get_settings().channel_key_cache_seconds
    typer.echo(f"{what} revoked; running hubs refuse it within {bound:g} s")


@admin_app.command("issue-token")
def admin_issue_token(
    name: Annotated[str, typer.Option(help="who or what the token is for")] = "admin",
) -> None:
    """Print a new admin API token on the last line (shown once, stored hashed)."""
    from paymux import audit
    from paymux.auth.keys import issue_admin_token

    async def work(session: AsyncSession) -> str:
        token = await issue_admin_token(session, name)
        await audit.record(
            session, "cli", "admin_token.issue", f"admin_token:{name}", None, {"prefix": token[:12]}
        )
        return token

    token = in_session(work, commit=True)
    typer.echo(f"admin token {name!r} (shown once; store it safely):", err=True)
    typer.echo(token)


@admin_app.command("tokens")
def admin_tokens() -> None:
    """List the admin tokens (id, prefix, name, created, state), newest first; never the secrets."""
    from paymux.auth import credentials as creds

    async def work(session: AsyncSession) -> list[dict[str, object]]:
        return [creds.token_view(t) for t in await creds.admin_tokens(session)]

    tokens = in_session(work)
    for t in tokens:
        revoked = f" at {_when(t['revoked_at'])}" if t["revoked_at"] else ""
        typer.echo(
            f"{t['id']}\t{t['prefix']}\t{t['name']}\tcreated {_when(t['created_at'])}\t{t['state']}{revoked}"
        )
    if not tokens:
        typer.echo("no admin tokens")


@admin_app.command("revoke-token")
def admin_revoke_token(
    token: Annotated[str, typer.Argument(help="the token's id or prefix (as `paymux admin tokens` shows)")],
) -> None:
    """Revoke one admin token (audited); every running hub refuses it at once."""
    from paymux import audit
    from paymux.auth import credentials as creds

    async def work(session: AsyncSession) -> tuple[str, bool]:
        row, changed = await creds.revoke_admin_token(session, token)
        if changed:
            before, after = creds.revocation(row)
            await audit.record(session, "cli", "admin_token.revoke", f"admin_token:{row.name}", before, after)
        return f"admin token {row.id} ({row.prefix}, {row.name!r})", changed

    try:
        what, changed = in_session(work, commit=True)
    except (creds.UnknownCredential, creds.AmbiguousPrefix) as e:
        fail(str(e))
        return
    typer.echo(f"{what} {'revoked' if changed else 'was already revoked'}")


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


@recurring_app.command("verify")
def recurring_verify(
    grace_minutes: Annotated[
        int | None, typer.Option(help="runs in flight younger than this are fine (default: settings)")
    ] = None,
    bank: Annotated[bool, typer.Option(help="ask the funding source about every debit and refund")] = True,
    bank_limit: Annotated[
        int, typer.Option(help="ask the funding source about at most this many runs")
    ] = 100_000,
) -> None:
    """Check that every debit ends matched by a succeeded payment or refunded, never twice a period."""
    import datetime as dt

    from paymux.recurring.engine_settings import EngineSettings
    from paymux.recurring.verify import verify_runs
    from paymux.runtime import Hub

    minutes = EngineSettings().verify_grace_minutes if grace_minutes is None else grace_minutes

    async def main() -> Any:
        hub = Hub(get_settings())
        try:
            return await verify_runs(
                hub, grace=dt.timedelta(minutes=minutes), bank=bank, bank_limit=bank_limit
            )
        finally:
            await hub.close()

    report = asyncio.run(main())
    states = ", ".join(f"{k} {v}" for k, v in sorted(report.states.items())) or "none"
    typer.echo(
        f"{report.runs} runs ({states}); {report.debits} debits; bank asked about {report.bank_checked}"
    )
    if not report.ok:
        for problem in report.problems[:50]:
            typer.echo(f"  {problem}")
        fail(f"recurring runs NOT consistent: {len(report.problems)} problem(s)")
    typer.echo("every debit matched or refunded: yes")


@recurring_app.command("simulate")
def recurring_simulate(
    days: Annotated[int, typer.Option(min=1, max=366, help="days of simulated time")] = 31,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="the database to simulate on (default: a new SQLite file in a temporary directory)"
        ),
    ] = None,
) -> None:
    """A month of simulated time against the emulators: the demo's subscriptions of every kind and
    hidden subscriptions; prints charges, refunds, reminders and their conversion, charged twice."""
    import tempfile

    from paymux.money import format_amount
    from paymux.recurring.simulate import simulate

    with tempfile.TemporaryDirectory(prefix="paymux-simulate-") as tmp:
        url = database_url or f"sqlite+aiosqlite:///{tmp}/simulate.db"
        settings = get_settings().model_copy(update={"database_url": url})
        with typer.progressbar(length=days * 24, label=f"simulating {days} days") as bar:
            done = [0]

            def progress(step: int, total: int) -> None:
                bar.update(step - done[0])
                done[0] = step

            report = asyncio.run(simulate(settings, days, progress=progress))
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(report.subscriptions.items()))
    typer.echo(f"subscriptions:      {kinds}")
    typer.echo("runs:               " + ", ".join(f"{s} {n}" for s, n in sorted(report.runs.items())))
    charged = ", ".join(f"{format_amount(v, c)} {c}" for c, v in sorted(report.charged.items())) or "nothing"
    typer.echo(f"charges:            {report.runs.get('paid', 0)} ({charged})")
    typer.echo(f"refunds:            {report.refunded}")
    typer.echo(f"debts confirmed:    {report.confirmations}")
    typer.echo(
        f"reminders sent:     {report.reminders_sent} (repeated {report.repeated}, subscribed "
        f"{report.subscribed}, opted out {report.opted_out}; conversion {report.conversion_percent}%)"
    )
    typer.echo(f"charged twice:      {report.charged_twice}")
    typer.echo("every debit matched or refunded: " + ("yes" if not report.verify_problems else "NO"))
    for problem in report.verify_problems[:20]:
        typer.echo(f"  {problem}")
    typer.echo("ledger balanced:    " + ("yes" if report.ledger_balanced else "NO"))
    typer.echo(f"elapsed:            {report.elapsed:.1f} s")
    if not report.ok:
        fail("the simulation found a broken guarantee")


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
    recurring: Annotated[
        int | None,
        typer.Option(
            help="run only the recurring benchmark over this many subscriptions (the issue's figure:"
            " 1000000): runs/s against the hub's payment rate, lateness, memory, doubled charges;"
            " SQLite, and PostgreSQL with --postgres"
        ),
    ] = None,
    recurring_due: Annotated[
        int | None, typer.Option(help="recurring: charges due at once [min(20000, N/30)]")
    ] = None,
    recurring_workers: Annotated[int, typer.Option(help="recurring: run workers")] = 2,
    recurring_payments: Annotated[
        int | None, typer.Option(help="recurring: plain payments for the hub's rate [as many as due]")
    ] = None,
    recurring_sqlite: Annotated[
        bool, typer.Option(help="recurring: on a scratch SQLite file too (--no-recurring-sqlite: only PG)")
    ] = True,
    invoices: Annotated[
        int | None,
        typer.Option(
            help="run only the invoice benchmark over this many invoices (the issue's figure: 1000000):"
            " intake, hosted page and webhooks against the HTTP ceiling, the hub's memory;"
            " SQLite, and PostgreSQL with --postgres"
        ),
    ] = None,
    invoices_batch: Annotated[int, typer.Option(help="invoices: invoices per intake request")] = 10_000,
    invoices_intake_clients: Annotated[int, typer.Option(help="invoices: intake connections")] = 1,
    invoices_page_clients: Annotated[int, typer.Option(help="invoices: concurrent payers on the page")] = 100,
    invoices_page_requests: Annotated[int, typer.Option(help="invoices: page requests in all")] = 20_000,
    invoices_webhooks: Annotated[
        int | None, typer.Option(help="invoices: invoices paid for the webhook rate [min(5000, N)]")
    ] = None,
    invoices_sqlite: Annotated[
        bool, typer.Option(help="invoices: on a scratch SQLite file too (--no-invoices-sqlite: only PG)")
    ] = True,
    wallets: Annotated[
        int | None,
        typer.Option(
            help="run only the wallet benchmark over this many P2P transfers: transfers/s over the"
            " customer API against the HTTP ceiling, and one merchant wallet receiving from many payers"
            " at once (checked); SQLite, and PostgreSQL with --postgres"
        ),
    ] = None,
    wallets_clients: Annotated[int, typer.Option(help="wallets: concurrent payers of the P2P run")] = 64,
    wallets_hot: Annotated[
        int | None, typer.Option(help="wallets: merchant payments into the hot wallet [min(6400, N)]")
    ] = None,
    wallets_hot_payers: Annotated[int, typer.Option(help="wallets: payers paying the merchant at once")] = 64,
    wallets_sqlite: Annotated[
        bool, typer.Option(help="wallets: on a scratch SQLite file too (--no-wallets-sqlite: only PG)")
    ] = True,
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
            recurring=recurring,
            recurring_due=recurring_due,
            recurring_workers=recurring_workers,
            recurring_payments=recurring_payments,
            recurring_sqlite=recurring_sqlite,
            invoices=invoices,
            invoices_batch=invoices_batch,
            invoices_intake_clients=invoices_intake_clients,
            invoices_page_clients=invoices_page_clients,
            invoices_page_requests=invoices_page_requests,
            invoices_webhooks=invoices_webhooks,
            invoices_sqlite=invoices_sqlite,
            wallets=wallets,
            wallets_clients=wallets_clients,
            wallets_hot=wallets_hot,
            wallets_hot_payers=wallets_hot_payers,
            wallets_sqlite=wallets_sqlite,
        )
        opts.resolve()
    except ValueError as e:
        fail(str(e), code=2)
        return
    raise typer.Exit(run_bench(opts))


def main() -> None:
    app()
