"""``paymux demo``: the hub with demo data and emulated providers, and a load to watch it work."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import typer
import yaml
from sqlalchemy import func, select

from paymux.catalog.file import apply_catalog, load_yaml
from paymux.db.migrate import upgrade
from paymux.demo.invoices import TEST_CARD, InvoiceDemo, paymethods, seed_invoices, start_method_emulators
from paymux.demo.load import run_load
from paymux.demo.recurring import BANK_PORT, bank_config, seed_recurring
from paymux.demo.settlement_details import seed_provider_details, set_demo_debtor_defaults
from paymux.demo.wallets import seed_wallets
from paymux.funding.emulator import create_app as bank_app
from paymux.ledger.service import balance
from paymux.money import format_amount
from paymux.payments.models import Payment
from paymux.payments.postings import provider_account
from paymux.providers.emulators.behaviour import BehaviourEngine, EmulatorConfig
from paymux.providers.emulators.cyberplat import demo_app as cyberplat_app
from paymux.providers.emulators.cyberplat import demo_provider_config as cyberplat_config
from paymux.providers.emulators.jsonhttp import create_app as jsonhttp_app
from paymux.providers.emulators.osmp import create_app as osmp_app
from paymux.providers.emulators.server import run_emulator
from paymux.runtime import Hub
from paymux.server import running_hub
from paymux.settings import Settings

# Scripted accounts every emulator refuses: payments to them fail on every provider.
REFUSED_ACCOUNT = "9999999999"

# Balances and debts the emulators report in their check answers (paymux.recurring.observe): a phone
# running low (threshold top-ups), a phone with money on it, an electricity account in debt.
DEMO_BALANCES: dict[str, dict[str, str]] = {
    "9160000001": {"balance": "12.50"},
    "9160000002": {"balance": "750.00"},
    "5000000001": {"balance": "-1843.27", "debt": "1843.27"},
}

EMULATORS: dict[str, tuple[int, dict[str, Any]]] = {
    "fastpay": (8101, {"latency_ms": 5, "jitter_ms": 20, "provider_txn_prefix": "FP-"}),
    "slowpay": (
        8102,
        {
            "latency_ms": 150,
            "jitter_ms": 250,
            "pending_rate": "0.05",
            "pending_ms": 800,
            "provider_txn_prefix": "SP-",
        },
    ),
    "flakypay": (
        8103,
        {
            "latency_ms": 20,
            "jitter_ms": 60,
            "temporary_error_rate": "0.10",
            "fatal_error_rate": "0.03",
            "lost_response_rate": "0.03",
            "lost_hold_ms": 3000,
            "provider_txn_prefix": "FL-",
        },
    ),
    "eurolink": (8104, {"latency_ms": 10, "jitter_ms": 30, "provider_txn_prefix": "EL-"}),
    "qiwipay": (
        8105,
        {
            "latency_ms": 30,
            "jitter_ms": 60,
            "temporary_error_rate": "0.05",
            "provider_txn_prefix": "QW-",
            "token": "hub:demo-osmp-password-change-me",  # basic auth, as in the demo catalog
        },
    ),
    "cyberpay": (
        8106,
        {
            "latency_ms": 40,
            "jitter_ms": 80,
            "lost_response_rate": "0.02",
            "lost_hold_ms": 3000,
            "provider_txn_prefix": "10000",
        },
    ),
}

# Emulators speaking another protocol than JSON/HTTP, by provider code.
EMULATOR_APPS: dict[str, Callable[..., Any]] = {"qiwipay": osmp_app, "cyberpay": cyberplat_app}

INITIAL_DEPOSITS = {("fastpay", "RUB"): 500_000_000, ("eurolink", "EUR"): 50_000_000}  # minor units
# demo exchange rates to RUB (made-up figures), so that reports can total EUR and RUB together
DEMO_RATES = {"EUR": "98.4512", "USD": "91.2530"}
DEMO_RATES_FROM = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass
class DemoInfo:
    channel_keys: dict[str, str] = field(default_factory=dict)
    admin_token: str = ""
    users: dict[str, str] = field(default_factory=dict)  # back-office user -> password
    emulators: dict[str, BehaviourEngine] = field(default_factory=dict)
    changes: str = ""
    subscriptions: int = 0  # recurring subscriptions added by this seed
    library: str = ""  # what importing the provider library changed
    bank_url: str = ""
    invoices: InvoiceDemo = field(default_factory=InvoiceDemo)
    method_urls: dict[str, str] = field(default_factory=dict)  # the acquirer and open-banking emulators
    wallet_operations: int = 0  # e-money operations added by this seed (paymux.demo.wallets)


def demo_catalog(urls: dict[str, str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(files("paymux.demo").joinpath("catalog.yaml").read_text("utf-8"))
    for p in data["providers"]:
        if p["protocol"] == "cyberplat":  # three URLs and the key files generated for the demo
            p["config"].update(cyberplat_config((urls or {}).get(p["code"])))
        elif urls and p["code"] in urls:
            p["config"]["url"] = urls[p["code"]]
    return data


def emulator_config(code: str, txn_start: int = 1) -> EmulatorConfig:
    cfg = dict(EMULATORS[code][1])
    cfg["provider_txn_start"] = txn_start
    cfg["accounts"] = {
        REFUSED_ACCOUNT: {"pay": "fatal:5:account not found", "check": "reject:5:account not found"},
        **DEMO_BALANCES,
    }
    return EmulatorConfig.model_validate(cfg)


async def seed(
    hub: Hub, urls: dict[str, str] | None = None, *, keys: bool = True, bank_url: str | None = None
) -> DemoInfo:
    """Load the demo catalog (idempotent), fund prepaid deposits once, issue keys and a token, and
    the recurring customers (with the bank at ``bank_url`` as their funding source)."""
    from paymux.auth.keys import issue_admin_token, issue_channel_key
    from paymux.ledger.topups import record_topup
    from paymux.rates.service import add_rate

    info = DemoInfo()
    data = demo_catalog(urls)
    async with hub.sessions() as session:
        report = await apply_catalog(session, load_yaml(yaml.safe_dump(data)), actor="demo")
        info.changes = report.summary()
        await session.commit()
        from paymux.demo.library import seed_library

        info.library = await seed_library(session)
        await session.commit()
        hub.catalog_changed()
        for (code, cur), amount in INITIAL_DEPOSITS.items():
            await record_topup(
                hub, session, code, cur, amount, reference="demo-initial-deposit", actor="demo"
            )
        await seed_provider_details(session)
        info.subscriptions = await seed_recurring(session, bank_url)
        info.invoices = await seed_invoices(session, keys=keys)
        for base, rate in DEMO_RATES.items():  # the same version again is a no-op
            await add_rate(
                session, base, "RUB", rate, effective_from=DEMO_RATES_FROM, source="demo", actor="demo"
            )
        info.wallet_operations = await seed_wallets(session, hub.accounts)
        if keys:
            for ch in data["channels"]:
                info.channel_keys[ch["code"]] = await issue_channel_key(session, ch["code"])
            info.admin_token = await issue_admin_token(session, "demo")
            from paymux.auth.demo_users import seed_demo_users

            info.users = await seed_demo_users(session)
        await session.commit()
    hub.catalog_changed()
    return info


async def first_provider_txn_number(hub: Hub) -> int:
    """Where the emulators number their transactions, so a demo run again on the same database gets
    ids its earlier runs did not: an emulator takes at most one transaction per payment, so ids
    above the highest payment id so far are new."""
    async with hub.sessions() as session:
        highest = await session.scalar(select(func.max(Payment.id)))
    return (highest or 0) + 1


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


async def run_demo(
    settings: Settings,
    *,
    payments: int,
    exit_after: bool,
    seed_only: bool,
    host: str,
    port: int,
    concurrency: int,
) -> int:
    # the demo serves plain http on loopback: back-office cookies must not require https there
    os.environ.setdefault("PAYMUX_BACKOFFICE_COOKIE_SECURE", "false")
    set_demo_debtor_defaults()  # so payment orders export from the demo; the environment's own win
    if "PAYMUX_RETRY_BASE_MS" not in os.environ:
        settings = settings.model_copy(update={"retry_base_ms": 300, "retry_max_ms": 5000})
    await asyncio.to_thread(upgrade, settings.database_url)
    hub = Hub(settings)
    try:
        if seed_only:
            info = await seed(hub)
            _print_access(info, None)
            typer.echo(f"demo data loaded into {hub.describe()['database']} ({info.changes})")
            typer.echo(f"provider library of fastpay: {info.library}")
            return 0
        async with contextlib.AsyncExitStack() as stack:
            urls: dict[str, str] = {}
            engines: dict[str, BehaviourEngine] = {}
            txn_start = await first_provider_txn_number(hub)
            for code, (wanted, _) in EMULATORS.items():
                engine = BehaviourEngine(emulator_config(code, txn_start))
                p = wanted if _port_free("127.0.0.1", wanted) else 0
                urls[code] = await stack.enter_async_context(
                    run_emulator(EMULATOR_APPS.get(code, jsonhttp_app)(engine=engine), port=p)
                )
                engines[code] = engine
            bank_port = BANK_PORT if _port_free("127.0.0.1", BANK_PORT) else 0
            bank_url = await stack.enter_async_context(run_emulator(bank_app(bank_config()), port=bank_port))
            method_urls = await start_method_emulators(stack, _port_free)
            # the hosted payment page's card and open banking go to the emulators (unless configured)
            methods = {**paymethods(method_urls["acquirer"], method_urls["openbank"]), **settings.paymethods}
            hub.settings = hub.settings.model_copy(update={"paymethods": methods})
            info = await seed(hub, urls, bank_url=bank_url)
            info.emulators = engines
            info.bank_url = bank_url
            info.method_urls = method_urls
            base = await stack.enter_async_context(running_hub(hub, host, port, run_workers=True))
            from paymux.iso8583.demo import print_demo_listener, start_demo_listener

            iso = await start_demo_listener(stack, hub, host)
            _print_access(info, base, urls)
            print_demo_listener(iso)
            exit_code = 0
            if payments:
                exit_code = await run_load(hub, base, info, payments, concurrency)
                await _print_deposits(hub)
            if exit_after:
                return exit_code
            typer.echo("serving; press Ctrl-C to stop")
            await asyncio.Event().wait()
        return 0
    finally:
        await hub.close()


def _print_access(info: DemoInfo, base: str | None, urls: dict[str, str] | None = None) -> None:
    if base:
        typer.echo(f"paymux demo serving on {base}  (OpenAPI: {base}/docs)")
    for code, url in (urls or {}).items():
        typer.echo(f"  emulated provider {code:9s} {url}")
    if info.bank_url:
        typer.echo(f"  emulated bank (funding) {info.bank_url}")
    for name, url in info.method_urls.items():
        typer.echo(f"  emulated {name:14s} {url}  (hosted payment page)")
    if info.admin_token:
        typer.echo(f"  admin token:           {info.admin_token}")
    for ch, key in info.channel_keys.items():
        typer.echo(f"  channel {ch:12s}   {key}")
    if info.users:
        typer.echo(f"  back office: {base or ''}/backoffice/  users (user / password, one per role):")
    for name, password in info.users.items():
        typer.echo(f"    {name:30s} {password}")
    _print_invoices(info.invoices, base)


def _print_invoices(demo: InvoiceDemo, base: str | None) -> None:
    from paymux.demo.invoices import BILLER_CODE

    if demo.biller_key:
        typer.echo(f"  biller {BILLER_CODE} API key:  {demo.biller_key}")
    payable = [(n, s, p) for n, s, p in demo.invoices if s in ("open", "partially_paid", "overdue")]
    if payable:
        typer.echo(f"  invoices to pay (card {TEST_CARD}, any expiry and CVC):")
    for number, status, path in payable:
        typer.echo(f"    {number}  {status:15s} {base or ''}{path}")


async def _print_deposits(hub: Hub) -> None:
    snap = await hub.catalog.get()
    async with hub.sessions() as session:
        for code, cur in INITIAL_DEPOSITS:
            p = snap.providers_by_code[code]
            bal = await balance(session, hub.accounts, provider_account(p.id, p.settlement, cur))
            typer.echo(f"  deposit of {code}: {format_amount(bal, cur)} {cur}")
        await session.rollback()
