"""``paymux bench``: the whole run (processes, load levels, ceilings), the table and the JSON file.

The hub runs as a user runs it (``paymux serve`` subprocesses with production settings), its
providers are ``paymux emulator jsonhttp`` subprocesses on loopback and the load comes from
``python -m paymux.bench.load`` in yet another process. See ``docs/benchmarks.md``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from paymux.bench import procs
from paymux.bench.ceiling import postgres_ceiling, sqlite_ceiling
from paymux.bench.load import KEYS_ENV
from paymux.bench.micro import run_micro

CHANNELS = ("kiosk-1", "web-1")
PROVIDERS = ("alpha", "beta", "gamma")
PREPAID = "alpha"
DEPOSIT = "1000000000.00"  # RUB: far more than any run sends to the prepaid provider
HEADLINE = 64
HTTP_CEILING_MIN = 2_000  # requests per level at least: the no-op answers in well under a millisecond
FINAL = ("succeeded", "failed", "cancelled")
MB = 1024  # /proc reports KiB


@dataclass
class BenchOptions:
    levels: list[int] = field(default_factory=lambda: [1, 16, 64, 256])
    payments: int | None = None  # per level; default 5,000 (1,000 with quick)
    warmup: int | None = None  # default 500 (200 with quick)
    quick: bool = False
    postgres: str | None = None
    scale: bool = False
    json_path: Path | None = None
    provider_latency_ms: int = 2
    ceiling_payments: int | None = None  # default 20,000 (5,000 with quick)
    ceiling_batch: int = 200
    micro_seconds: float | None = None  # default 1.0 (0.3 with quick)
    work_dir: Path | None = None
    keep: bool = False
    files: int = 0  # payments in the register / lines in the provider's register (0: not run)
    repeat: int = 1  # runs of each level and ceiling; the median run is reported
    new_connections: bool = False  # every request on a connection of its own (no keep-alive)
    recurring: int | None = None  # subscriptions: run only the recurring benchmark (paymux.bench.recurring)
    recurring_due: int | None = None  # charges due at once; default min(20,000, N // 30)
    recurring_workers: int = 2
    recurring_payments: int | None = None  # plain payments for the hub's rate; default = due
    recurring_sqlite: bool = True  # also (first) on a scratch SQLite file; False: only --postgres
    invoices: int | None = None  # invoices: run only the invoice benchmark (paymux.bench.invoices)
    invoices_batch: int = 10_000
    invoices_intake_clients: int = 1
    invoices_page_clients: int = 100
    invoices_page_requests: int = 20_000
    invoices_webhooks: int | None = None  # default min(5,000, N)
    invoices_sqlite: bool = True  # also (first) on a scratch SQLite file; False: only --postgres
    wallets: int | None = None  # P2P transfers: run only the wallet benchmark (paymux.bench.wallets)
    wallets_clients: int = 64
    wallets_hot: int | None = None  # merchant payments into one wallet; default min(6,400, N)
    wallets_hot_payers: int = 64
    wallets_sqlite: bool = True  # also (first) on a scratch SQLite file; False: only --postgres

    def resolve(self) -> None:
        if self.payments is None:
            self.payments = 1_000 if self.quick else 5_000
        if self.warmup is None:
            self.warmup = 200 if self.quick else 500
        if self.ceiling_payments is None:
            self.ceiling_payments = 5_000 if self.quick else 20_000
        if self.micro_seconds is None:
            self.micro_seconds = 0.3 if self.quick else 1.0
        if not self.levels or any(c < 1 for c in self.levels):
            raise ValueError("levels must be positive concurrency values, e.g. 1,16,64,256")
        if self.payments < 1 or self.warmup < 0 or self.ceiling_payments < self.ceiling_batch:
            raise ValueError("payments must be >= 1, warmup >= 0 and ceiling payments >= the batch")
        if self.scale and not self.postgres:
            raise ValueError("--scale needs --postgres URL (several processes share one database)")
        if self.repeat < 1:
            raise ValueError("--repeat must be at least 1 (runs of each level and ceiling)")
        if self.files < 0:
            raise ValueError("--files must be 0 (skip) or the number of payments in the files")
        if self.recurring is not None:
            self.recurring_options().resolve()
            if not self.recurring_sqlite and not self.postgres:
                raise ValueError("--recurring with --no-recurring-sqlite needs --postgres URL")
        if self.invoices is not None:
            self.invoice_options().resolve()
            if not self.invoices_sqlite and not self.postgres:
                raise ValueError("--invoices with --no-invoices-sqlite needs --postgres URL")
        if self.wallets is not None:
            self.wallet_options().resolve()
            if not self.wallets_sqlite and not self.postgres:
                raise ValueError("--wallets with --no-wallets-sqlite needs --postgres URL")

    def wallet_options(self) -> Any:
        from paymux.bench.wallets import WalletBenchOptions

        assert self.wallets is not None
        return WalletBenchOptions(
            transfers=self.wallets,
            clients=self.wallets_clients,
            hot=self.wallets_hot,
            hot_payers=self.wallets_hot_payers,
        )

    def invoice_options(self) -> Any:
        from paymux.bench.invoices import InvoiceBenchOptions

        assert self.invoices is not None
        return InvoiceBenchOptions(
            invoices=self.invoices,
            batch=self.invoices_batch,
            intake_clients=self.invoices_intake_clients,
            page_clients=self.invoices_page_clients,
            page_requests=self.invoices_page_requests,
            webhooks=self.invoices_webhooks,
        )

    def recurring_options(self) -> Any:
        from paymux.bench.recurring import RecurringBenchOptions

        assert self.recurring is not None
        return RecurringBenchOptions(
            subscriptions=self.recurring,
            due=self.recurring_due,
            workers=self.recurring_workers,
            payments=self.recurring_payments,
        )

    @property
    def headline(self) -> int:
        if HEADLINE in self.levels:
            return HEADLINE
        below = [c for c in self.levels if c <= HEADLINE]
        return max(below) if below else min(self.levels)

    def pay(self) -> int:
        assert self.payments is not None
        return self.payments


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- databases ---------------------------------------------------------------------------------------------


def _pg_urls(url: str) -> tuple[str, str]:
    """(URL for paymux, DSN for asyncpg) of a PostgreSQL URL given either way."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() != "postgresql":
        raise ValueError(f"--postgres needs a postgresql:// URL, not {u.render_as_string()}")
    hub = u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    dsn = u.set(drivername="postgresql").render_as_string(hide_password=False)
    return hub, dsn


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


async def _reset_pg(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


HOT_TABLES = ("accounts", "payments", "journal_entries", "postings", "payment_attempts")
PG_SETTINGS = (
    "server_version",
    "max_connections",
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "autovacuum",
    "checkpoint_timeout",
    "max_wal_size",
)


async def _pg_vacuum(dsn: str) -> float:
    """VACUUM (ANALYZE) the tables of the hot path; returns the seconds it took.

    Every payment updates the same few account rows; without (auto)vacuum their dead versions pile
    up and every later update walks them. The bench vacuums between levels so that each level starts
    from the same state whether or not the server runs autovacuum.
    """
    import asyncpg

    t0 = time.monotonic()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"VACUUM (ANALYZE) {', '.join(HOT_TABLES)}")
    finally:
        await conn.close()
    return round(time.monotonic() - t0, 3)


async def _pg_settings(dsn: str) -> dict[str, str]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT name, setting, unit FROM pg_settings WHERE name = any($1)", list(PG_SETTINGS)
        )
    finally:
        await conn.close()
    return {r["name"]: r["setting"] + (f" ({r['unit']})" if r["unit"] else "") for r in rows}


class Poller(abc.ABC):
    """Read-only progress of payments by id range (one subclass per database)."""

    @abc.abstractmethod
    async def counts(self, lo: int, hi: int) -> tuple[int, int]: ...

    @abc.abstractmethod
    async def last_final(self, lo: int, hi: int) -> float | None: ...

    @abc.abstractmethod
    async def statuses(self, lo: int, hi: int) -> dict[str, int]: ...

    async def db_connections(self) -> int | None:
        """Connections to the database now (PostgreSQL only)."""
        return None

    async def maintenance(self) -> float | None:
        """Between levels: VACUUM on PostgreSQL; returns the seconds it took."""
        return None

    async def close(self) -> None:
        return None


_FINAL_SQL = "('succeeded', 'failed', 'cancelled')"


class SqlitePoller(Poller):
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        self.conn.execute("PRAGMA query_only=1")

    async def counts(self, lo: int, hi: int) -> tuple[int, int]:
        row = self.conn.execute(
            f"SELECT count(*), coalesce(sum(status IN {_FINAL_SQL}), 0) FROM payments"
            " WHERE id BETWEEN ? AND ?",
            (lo, hi),
        ).fetchone()
        return int(row[0]), int(row[1])

    async def last_final(self, lo: int, hi: int) -> float | None:
        row = self.conn.execute(
            "SELECT max(final_at) FROM payments WHERE id BETWEEN ? AND ?", (lo, hi)
        ).fetchone()
        if not row or row[0] is None:
            return None
        return dt.datetime.fromisoformat(str(row[0])).replace(tzinfo=dt.UTC).timestamp()

    async def statuses(self, lo: int, hi: int) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT status, count(*) FROM payments WHERE id BETWEEN ? AND ? GROUP BY status", (lo, hi)
        ).fetchall()
        return {str(s): int(n) for s, n in rows}

    async def close(self) -> None:
        self.conn.close()


class PgPoller(Poller):
    def __init__(self, dsn: str, conn: Any, stats: Any) -> None:
        self.dsn = dsn
        self.conn = conn
        self.stats = stats

    @classmethod
    async def connect(cls, dsn: str) -> PgPoller:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        await conn.execute("SET default_transaction_read_only = on")
        stats = await asyncpg.connect(dsn)
        await stats.execute("SET default_transaction_read_only = on")
        return cls(dsn, conn, stats)

    async def db_connections(self) -> int | None:
        n = await self.stats.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        )
        return int(n) - 2  # not counting the poller's own two

    async def maintenance(self) -> float | None:
        return await _pg_vacuum(self.dsn)

    async def counts(self, lo: int, hi: int) -> tuple[int, int]:
        row = await self.conn.fetchrow(
            f"SELECT count(*), count(*) FILTER (WHERE status IN {_FINAL_SQL}) FROM payments"
            " WHERE id BETWEEN $1 AND $2",
            lo,
            hi,
        )
        return int(row[0]), int(row[1])

    async def last_final(self, lo: int, hi: int) -> float | None:
        v = await self.conn.fetchval("SELECT max(final_at) FROM payments WHERE id BETWEEN $1 AND $2", lo, hi)
        return None if v is None else float(v.timestamp())

    async def statuses(self, lo: int, hi: int) -> dict[str, int]:
        rows = await self.conn.fetch(
            "SELECT status, count(*) FROM payments WHERE id BETWEEN $1 AND $2 GROUP BY status", lo, hi
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def close(self) -> None:
        await self.conn.close()
        await self.stats.close()


# --- the run -----------------------------------------------------------------------------------------------


LONG_LEVEL = 100_000  # payments in a level from which the report shows memory across the level


class RssSampler:
    """The largest sum of VmRSS of some processes, sampled every 100 ms while running, and a
    timeline of it (one sample a second) to show whether memory grows over a long level."""

    def __init__(self, watched: Sequence[procs.Proc]) -> None:
        self.watched = list(watched)
        self.peak_kb = 0
        self.timeline: list[int] = []  # kB, one a second
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> int:
        kb = sum(p.memory().get("VmRSS", 0) for p in self.watched)
        self.peak_kb = max(self.peak_kb, kb)
        return kb

    async def _run(self) -> None:
        n = 0
        while True:
            kb = self.sample()
            if n % 10 == 0:
                self.timeline.append(kb)
            n += 1
            await asyncio.sleep(0.1)

    def at(self) -> dict[str, float]:
        """RSS (MB) at 10 %, 50 % and 100 % of the sampled time."""
        t = self.timeline or [self.peak_kb]
        return {f"{q}%": round(t[min(len(t) - 1, len(t) * q // 100)] / MB, 1) for q in (10, 50, 100)}

    def __enter__(self) -> RssSampler:
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.sample()


class ConnectionSampler:
    """The most connections to the database (PostgreSQL), sampled every 200 ms while running."""

    def __init__(self, poller: Poller) -> None:
        self.poller = poller
        self.peak: int | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            n = await self.poller.db_connections()
            if n is None:
                return
            self.peak = n if self.peak is None else max(self.peak, n)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.2)

    async def __aenter__(self) -> ConnectionSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task  # never cancelled mid-query: the connection stays usable


LEVEL_SECONDS_MIN = 600.0  # what a level of any size may take
LEVEL_RATE_MIN = 100  # payments/s a long level must keep up, on average, to finish in time


def level_timeout(n: int, least: float = LEVEL_SECONDS_MIN) -> float:
    """Seconds the load generator may take for ``n`` requests: 10 minutes, and more for long levels
    (1,000,000 payments at 1,480/s took 676 s on a slow day and were cut off at 600)."""
    return max(least, n / LEVEL_RATE_MIN)


class Bench:
    def __init__(self, opts: BenchOptions, work: Path) -> None:
        self.opts = opts
        self.work = work
        self.started: list[procs.Proc] = []

    # processes

    def env(self, database_url: str | None = None) -> dict[str, str]:
        """The environment of started processes: the caller's, with our database and nothing else
        that would point the hub elsewhere (or make it serve HTTPS the load generator does not speak)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in ("PAYMUX_DATABASE_URL", "PAYMUX_HOST", "PAYMUX_PORT", "PAYMUX_EMULATOR_TOKEN", KEYS_ENV)
            and not k.startswith("PAYMUX_SSL_")
        }
        if database_url:
            env["PAYMUX_DATABASE_URL"] = database_url
        return env

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> procs.Proc:
        p = procs.start(name, argv, env, self.work)
        self.started.append(p)
        return p

    def stop(self, ps: Sequence[procs.Proc]) -> None:
        for p in ps:  # ask all first, then wait: they shut down in parallel
            if p.alive():
                with contextlib.suppress(ProcessLookupError):
                    p.popen.terminate()
        for p in ps:
            p.stop()

    def stop_all(self) -> None:
        self.stop([p for p in self.started if p.alive()])

    async def cli(self, args: Sequence[str], env: dict[str, str]) -> str:
        return await asyncio.to_thread(procs.run_cli, args, env, self.work)

    async def loadgen(
        self,
        ports: Sequence[int],
        concurrency: int,
        n: int,
        keys: Sequence[str],
        prefix: str,
        ids: bool = True,
    ) -> dict[str, Any]:
        argv = [sys.executable, "-m", "paymux.bench.load"]
        for port in ports:
            argv += ["--port", str(port)]
        argv += ["--concurrency", str(concurrency), "--payments", str(n), "--prefix", prefix]
        argv += ["--timeout", str(level_timeout(n))]
        if not ids:
            argv.append("--no-ids")
        if self.opts.new_connections:
            argv.append("--new-connections")
        env = {**self.env(), KEYS_ENV: ",".join(keys)}
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"the load generator failed ({proc.returncode}): {err.decode()[-2000:]}")
        result: dict[str, Any] = json.loads(out)
        return result

    # the HTTP ceiling

    async def http_ceiling(self, servers: int) -> dict[str, Any]:
        """The no-op app under uvicorn (as ``paymux serve`` runs it) at every level."""
        opts = self.opts
        ports = [procs.free_port() for _ in range(servers)]
        noop = [
            self.start(
                f"noop-{i + 1}",
                [
                    sys.executable,
                    "-m",
                    "paymux.bench.noop_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                self.env(),
            )
            for i, port in enumerate(ports)
        ]
        try:
            for p, port in zip(noop, ports, strict=True):
                await procs.wait_http(p, port, "/health")
            if opts.warmup:
                await self.loadgen(ports, min(16, opts.warmup), opts.warmup, [], "hw-", ids=False)
            levels: dict[str, Any] = {}
            for c in opts.levels:
                runs: list[dict[str, Any]] = []
                for r in range(opts.repeat):
                    cpu0 = sum(p.cpu() for p in noop)
                    n = max(opts.pay(), HTTP_CEILING_MIN)
                    lg = await self.loadgen(ports, c, n, [], f"h{c}-{_run_tag(r)}", ids=False)
                    cpu = sum(p.cpu() for p in noop) - cpu0
                    runs.append(
                        {
                            "concurrency": c,
                            "requests": lg["requests"],
                            "errors": lg["errors"],
                            "error_samples": lg["error_samples"],
                            "per_s": lg["rate_per_s"],
                            "p50_ms": lg["latency_ms"]["p50"],
                            "p99_ms": lg["latency_ms"]["p99"],
                            "server_cpu_s": round(cpu, 3),
                            "loadgen_cpu_s": lg["client_cpu_s"],
                            "duration_s": lg["duration_s"],
                        }
                    )
                    say(
                        f"  HTTP ceiling, concurrency {c:>3}: {lg['rate_per_s']:>9,.0f} req/s,"
                        f" errors {lg['errors']}"
                    )
                levels[str(c)] = combine_runs(runs, "per_s", ("per_s", "p99_ms"))
            return {"servers": servers, "app": "paymux.bench.noop_app:app", "levels": levels}
        finally:
            self.stop(noop)

    # one database

    async def backend(
        self, label: str, kind: str, http: dict[str, Any], *, scale: bool = False
    ) -> dict[str, Any]:
        opts = self.opts
        t_start = time.monotonic()
        dsn = ""
        db_path: Path | None = None
        if kind == "sqlite":
            db_path = self.work / f"{label}.db"
            url = f"sqlite+aiosqlite:///{db_path}"
        else:
            assert opts.postgres
            url, dsn = _pg_urls(opts.postgres)
            say(f"[{label}] recreating schema public of {_safe(url)}")
            await _reset_pg(dsn)
        env = self.env(url)
        await self.cli(["migrate"], env)

        # providers on emulators
        emu_ports = {code: procs.free_port() for code in PROVIDERS}
        emulators = [
            self.start(
                f"{label}-emulator-{code}",
                [
                    *procs.paymux_command(),
                    "emulator",
                    "jsonhttp",
                    "--port",
                    str(port),
                    "--latency-ms",
                    str(opts.provider_latency_ms),
                ],
                self.env(),
            )
            for code, port in emu_ports.items()
        ]
        hubs: list[procs.Proc] = []
        poller: Poller | None = None
        try:
            for p, port in zip(emulators, emu_ports.values(), strict=True):
                await procs.wait_http(p, port, "/_emulator/config")
            catalog = yaml.safe_load(files("paymux.bench").joinpath("catalog.yaml").read_text("utf-8"))
            for prov in catalog["providers"]:
                prov["config"]["url"] = f"http://127.0.0.1:{emu_ports[prov['code']]}"
            catalog_file = self.work / f"{label}-catalog.yaml"
            catalog_file.write_text(yaml.safe_dump(catalog, sort_keys=False), encoding="utf-8")
            await self.cli(["catalog", "apply", str(catalog_file)], env)
            keys = [
                (await self.cli(["channels", "issue-key", c], env)).strip().splitlines()[-1] for c in CHANNELS
            ]
            admin = (
                (await self.cli(["admin", "issue-token", "--name", "bench"], env)).strip().splitlines()[-1]
            )

            # the hub, as a user starts it
            if scale:
                api_ports = [procs.free_port(), procs.free_port()]
                for i, port in enumerate(api_ports):
                    hubs.append(
                        self.start(
                            f"{label}-api-{i + 1}",
                            [
                                *procs.paymux_command(),
                                "serve",
                                "--no-workers",
                                "--no-migrate",
                                "--port",
                                str(port),
                            ],
                            env,
                        )
                    )
                for i in range(2):
                    hubs.append(
                        self.start(f"{label}-worker-{i + 1}", [*procs.paymux_command(), "worker"], env)
                    )
                topology = "2 x `paymux serve --no-workers` + 2 x `paymux worker`"
            else:
                api_ports = [procs.free_port()]
                hubs.append(
                    self.start(
                        f"{label}-hub", [*procs.paymux_command(), "serve", "--port", str(api_ports[0])], env
                    )
                )
                topology = "1 x `paymux serve` (API and workers in one process)"
            for p, port in zip(hubs, api_ports, strict=False):
                await procs.wait_http(p, port, "/health")
            await self._topup(api_ports[0], admin)
            await asyncio.sleep(1.0)
            for p in hubs:
                if not p.alive():
                    raise RuntimeError(f"{p.name} exited ({p.popen.returncode}):\n{p.log_tail()}")
            idle_kb = sum(p.memory().get("VmRSS", 0) for p in hubs)
            say(f"[{label}] {topology} up on port(s) {api_ports}, idle RSS {idle_kb / MB:.0f} MB")

            poller = await PgPoller.connect(dsn) if dsn else SqlitePoller(db_path or Path())
            if opts.warmup:
                say(f"[{label}] warm-up: {opts.warmup} payments")
                await self.level(
                    label,
                    hubs,
                    emulators,
                    poller,
                    api_ports,
                    min(16, opts.warmup),
                    opts.warmup,
                    keys,
                    "warm-",
                )
            levels: dict[str, Any] = {}
            for c in opts.levels:
                runs = []
                for r in range(opts.repeat):
                    vacuum = await poller.maintenance()
                    say(f"[{label}] concurrency {c}: {opts.pay()} payments{_run_note(r, opts.repeat)} ...")
                    run = await self.level(
                        label, hubs, emulators, poller, api_ports, c, opts.pay(), keys, f"c{c}-{_run_tag(r)}"
                    )
                    run["vacuum_before_s"] = vacuum
                    runs.append(run)
                lv = combine_runs(runs, "accepted_per_s", REPEAT_KEYS)
                lv["hub_rss_peak_mb"] = max(run["hub_rss_peak_mb"] for run in runs)
                h = http["levels"].get(str(c))
                lv["ceiling_http_per_s"] = h["per_s"] if h else None
                lv["ceiling_http_runs"] = [r["per_s"] for r in h["runs"]] if h else []
                lv["vs_http"] = _ratio(lv["accepted_per_s"], lv["ceiling_http_per_s"])
                levels[str(c)] = lv
                say(
                    f"[{label}] concurrency {c:>3}: accepted {lv['accepted_per_s']:>8,.0f}/s"
                    f"  p99 {lv['p99_ms']:>8.1f} ms  completed {lv['completed_per_s']:>8,.0f}/s"
                    f"  errors {lv['errors']}  hub CPU {lv['hub_cpu_s']:.1f} s"
                )
            memory = {p.name: p.memory() for p in hubs}
            peak_kb = sum(m.get("VmHWM", 0) for m in memory.values())
            killed: dict[str, Any] | None = None
            if scale:
                assert isinstance(poller, PgPoller)
                killed = await self.worker_kill(label, hubs, poller, api_ports, keys, env)
            await poller.close()
            poller = None
        finally:
            if poller is not None:
                await poller.close()
            self.stop(hubs)
            self.stop(emulators)
        log_errors = [line for p in hubs for line in _log_errors(p)]

        # after the run: the ledger must balance
        try:
            verify = (await self.cli(["ledger", "verify"], env)).strip().splitlines()
            balanced = bool(verify) and verify[-1] == "ledger balanced: yes"
        except RuntimeError as e:
            verify, balanced = [str(e)], False

        # the SQL ceiling in a copy of this database (SQLite) or in it, the hub stopped (PostgreSQL)
        ceiling: dict[str, Any] | None = None
        if not scale:
            assert opts.ceiling_payments is not None
            per_payment = max(200, opts.ceiling_payments // 10)
            say(
                f"[{label}] SQL ceiling: {opts.ceiling_payments} payments,"
                f" {opts.ceiling_batch} per transaction"
            )
            ceilings: list[dict[str, Any]] = []
            for r in range(opts.repeat):
                if db_path is not None:  # each run in a fresh copy of the hub's database
                    scratch = self.work / f"{label}-ceiling{r + 1}.db"
                    src, dst = sqlite3.connect(str(db_path)), sqlite3.connect(str(scratch))
                    try:
                        src.backup(dst)
                    finally:
                        src.close()
                        dst.close()
                    one = await asyncio.to_thread(
                        sqlite_ceiling, scratch, opts.ceiling_payments, opts.ceiling_batch, per_payment
                    )
                    for f in (scratch, *scratch.parent.glob(scratch.name + "-*")):
                        f.unlink(missing_ok=True)
                    one["driver"] = "sqlite3 (WAL, synchronous=FULL), a copy of the hub's database"
                else:
                    await _pg_vacuum(dsn)
                    one = await postgres_ceiling(dsn, opts.ceiling_payments, opts.ceiling_batch, per_payment)
                    one["driver"] = "asyncpg, one connection, the hub's database after its run"
                one["per_s"] = one["batched"]["per_s"]
                ceilings.append(one)
                say(
                    f"[{label}] SQL ceiling: {one['batched']['per_s']:,.0f} payments/s batched,"
                    f" {one['per_payment']['per_s']:,.0f}/s one per transaction"
                )
            ceiling = combine_runs(ceilings, "per_s", ("per_s",))

        head = levels.get(str(opts.headline), {})
        return {
            "database": kind,
            "url": _safe(url),
            "topology": topology,
            "processes": [p.name for p in hubs],
            "headline_concurrency": opts.headline,
            "accepted_per_s": head.get("accepted_per_s"),
            "p50_ms": head.get("p50_ms"),
            "p95_ms": head.get("p95_ms"),
            "p99_ms": head.get("p99_ms"),
            "max_ms": head.get("max_ms"),
            "completed_per_s": head.get("completed_per_s"),
            "errors": sum(lv["errors"] for lv in levels.values()),
            "ceiling_sql_per_s": ceiling["batched"]["per_s"] if ceiling else None,
            "ceiling_sql_txn_per_s": ceiling["per_payment"]["per_s"] if ceiling else None,
            "ceiling_http_per_s": head.get("ceiling_http_per_s"),
            "ceiling_http_runs": head.get("ceiling_http_runs", []),
            "ratio": None,  # filled in once the SQL ceiling is known (scale: PostgreSQL's)
            "ratio_http": head.get("vs_http"),
            "idle_rss_mb": round(idle_kb / MB, 1),
            "peak_rss_mb": round(peak_kb / MB, 1),
            "memory_kb": memory,
            "ledger_balanced": balanced,
            "postgres_settings": await _pg_settings(dsn) if dsn else None,
            "ledger_verify": verify[-3:],
            "hub_log_error_count": sum(1 for ln in log_errors if ": " in ln and " ERROR " in ln),
            "hub_log_errors": log_errors[:20],
            "ceiling_sql": ceiling,
            "worker_kill": killed if scale else None,
            "levels": levels,
            "seconds": round(time.monotonic() - t_start, 1),
        }

    async def worker_kill(
        self,
        label: str,
        hubs: Sequence[procs.Proc],
        poller: PgPoller,
        ports: Sequence[int],
        keys: Sequence[str],
        env: dict[str, str],
    ) -> dict[str, Any]:
        """Kill one of the two workers (SIGKILL) while payments flow: how long its payments wait.

        The payments it held stay claimed until their lease ends (``PAYMUX_LEASE_SECONDS``); then the
        other worker takes them over, asks their provider for the status and settles them there."""
        victim = next(p for p in hubs if p.name.endswith("worker-1"))
        found = re.search(r"worker (w-[0-9a-f]+) processing payments", victim.log.read_text(errors="replace"))
        if found is None:
            raise RuntimeError(f"{victim.name} did not print its name:\n{victim.log_tail()}")
        held_sql = (
            f"SELECT id FROM payments WHERE lease_owner LIKE $1 AND status NOT IN {_FINAL_SQL} ORDER BY id"
        )
        like = found[1] + ".%"
        lease = int(env.get("PAYMUX_LEASE_SECONDS") or 120)
        n = 2_000
        say(f"[{label}] worker kill: {n} payments at concurrency 64, {victim.name} killed mid-way")
        load = asyncio.create_task(self.loadgen(ports, 64, n, keys, "kill-"))
        try:
            deadline = time.monotonic() + 60
            while not load.done() and time.monotonic() < deadline:
                if len(await poller.conn.fetch(held_sql, like)) >= 10:
                    break
                await asyncio.sleep(0.01)
            victim.popen.kill()
            victim.popen.wait()
            killed_at = time.time()
            orphans = [int(r[0]) for r in await poller.conn.fetch(held_sql, like)]
        finally:
            lg = await load
        say(f"[{label}] worker kill: {len(orphans)} payments held by the killed worker; lease {lease} s")
        deadline = time.monotonic() + lease + 120
        done, last = 0, None
        while orphans:
            row = await poller.conn.fetchrow(
                f"SELECT count(*) FILTER (WHERE status IN {_FINAL_SQL}), max(final_at) FROM payments"
                " WHERE id = ANY($1::bigint[])",
                orphans,
            )
            done, last = int(row[0]), row[1]
            if done >= len(orphans) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        lo, hi = lg["min_id"], lg["max_id"]
        rest = 0.0
        if lo is not None and hi is not None:
            _, _, last_final, _ = await self._wait_final(label, hubs[:2], poller, lo, hi, lg["ok"])
            rest = (last_final - killed_at) if last_final else 0.0
        after = round(last.timestamp() - killed_at, 1) if last is not None and orphans else None
        say(
            f"[{label}] worker kill: its {len(orphans)} payments final {after} s after the kill"
            f" ({done} of {len(orphans)}); all {lg['ok']} final {rest:.1f} s after it"
        )
        return {
            "lease_seconds": lease,
            "payments": n,
            "accepted": lg["ok"],
            "errors": lg["errors"],
            "orphans": len(orphans),
            "orphans_final": done,
            "orphans_final_after_kill_s": after,
            "all_final_after_kill_s": round(rest, 1),
        }

    async def _topup(self, port: int, admin: str) -> None:
        import httpx

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            r = await client.post(
                f"/api/v1/admin/providers/{PREPAID}/topups",
                json={"amount": DEPOSIT, "currency": "RUB", "reference": "bench-deposit"},
                headers={"Authorization": f"Bearer {admin}"},
            )
            if r.status_code not in (200, 201):
                raise RuntimeError(f"top-up of {PREPAID} failed: {r.status_code} {r.text}")

    async def level(
        self,
        label: str,
        hubs: Sequence[procs.Proc],
        emulators: Sequence[procs.Proc],
        poller: Poller,
        ports: Sequence[int],
        concurrency: int,
        n: int,
        keys: Sequence[str],
        prefix: str,
    ) -> dict[str, Any]:
        """One load level: accept ``n`` payments, then wait until every one of them is final."""
        cpu0 = sum(p.cpu() for p in hubs)
        emu0 = sum(p.cpu() for p in emulators)
        machine0 = procs.machine_cpu()
        conns = ConnectionSampler(poller)
        async with conns:
            with RssSampler(hubs) as rss:
                lg = await self.loadgen(ports, concurrency, n, keys, prefix)
                cpu_accept = sum(p.cpu() for p in hubs) - cpu0
                lo, hi = lg["min_id"], lg["max_id"]
                statuses: dict[str, int] = {}
                final_count, last_final, waited = 0, None, 0.0
                if lo is not None and hi is not None:
                    final_count, statuses, last_final, waited = await self._wait_final(
                        label, hubs, poller, lo, hi, lg["ok"]
                    )
        cpu = sum(p.cpu() for p in hubs) - cpu0
        emu = sum(p.cpu() for p in emulators) - emu0
        machine1 = procs.machine_cpu()
        busy = procs.busy_percent(machine0, machine1)
        steal = procs.steal_percent(machine0, machine1)
        end_to_end = (last_final - lg["start_wall"]) if last_final else None
        not_final = lg["ok"] - final_count
        lat = lg["latency_ms"]
        return {
            "concurrency": concurrency,
            "payments": n,
            "accepted": lg["ok"],
            "errors": lg["errors"] + max(0, not_final),
            "error_samples": lg["error_samples"]
            + ([f"{not_final} payments not final"] if not_final > 0 else []),
            "statuses": statuses,
            "accepted_per_s": lg["rate_per_s"],
            "p50_ms": lat["p50"],
            "p95_ms": lat["p95"],
            "p99_ms": lat["p99"],
            "max_ms": lat["max"],
            "mean_ms": lat["mean"],
            "accept_seconds": lg["duration_s"],
            "completed_per_s": round(final_count / end_to_end, 1) if end_to_end and end_to_end > 0 else None,
            "complete_seconds": round(end_to_end, 3) if end_to_end else None,
            "final_lag_seconds": round(last_final - lg["end_wall"], 3) if last_final else None,
            "poll_seconds": round(waited, 3),
            "hub_cpu_s": round(cpu, 3),
            "hub_cpu_accept_s": round(cpu_accept, 3),
            "hub_cpu_ms_per_payment": round(1000 * cpu / max(1, lg["ok"]), 3),
            "hub_rss_peak_mb": round(rss.peak_kb / MB, 1),
            "hub_rss_mb_at": rss.at(),
            "db_connections_peak": conns.peak,
            "emulators_cpu_s": round(emu, 3),
            "loadgen_cpu_s": lg["client_cpu_s"],
            "machine_cpu_busy_pct": busy,
            "machine_cpu_steal_pct": steal,
            "reconnects": lg["reconnects"],
            "connections_opened": lg["connections_opened"],
            "min_id": lo,
            "max_id": hi,
        }

    async def _wait_final(
        self, label: str, hubs: Sequence[procs.Proc], poller: Poller, lo: int, hi: int, expected: int
    ) -> tuple[int, dict[str, int], float | None, float]:
        t0 = time.monotonic()
        deadline = t0 + 120 + expected / 20
        total = final = 0
        while True:
            total, final = await poller.counts(lo, hi)
            if total >= expected and final >= total:
                break
            for p in hubs:
                if not p.alive():
                    raise RuntimeError(f"{p.name} exited ({p.popen.returncode}):\n{p.log_tail()}")
            if time.monotonic() > deadline:
                say(f"[{label}] gave up waiting: {final} of {total} payments final")
                break
            await asyncio.sleep(0.05)
        return final, await poller.statuses(lo, hi), await poller.last_final(lo, hi), time.monotonic() - t0


REPEAT_KEYS = ("accepted_per_s", "p99_ms", "completed_per_s", "hub_cpu_ms_per_payment", "errors")


def _run_tag(r: int) -> str:
    """The external-id prefix part of run ``r`` (0-based): none for the first, as without --repeat."""
    return "" if r == 0 else f"r{r + 1}-"


def _run_note(r: int, repeat: int) -> str:
    return f" (run {r + 1} of {repeat})" if repeat > 1 else ""


def combine_runs(runs: Sequence[dict[str, Any]], by: str, keep: Sequence[str]) -> dict[str, Any]:
    """Several runs of one measurement as one: the run whose ``by`` is the median (the lower middle
    of an even number), so that its figures (rate, latencies, CPU) come from the same run; errors
    summed over every run; ``runs`` lists each run's ``keep`` figures in the order they ran, and
    ``<by>_range`` their lowest and highest ``by``."""
    ordered = sorted(runs, key=lambda run: run[by] if run[by] is not None else float("-inf"))
    out = dict(ordered[(len(ordered) - 1) // 2])
    if "errors" in out:
        out["errors"] = sum(run["errors"] for run in runs)
        out["error_samples"] = [s for run in runs for s in run.get("error_samples", [])][:10]
    values = [run[by] for run in runs if run[by] is not None]
    out["runs"] = [{k: run.get(k) for k in keep} for run in runs]
    out[f"{by}_range"] = [min(values), max(values)] if values else None
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    """a / b to 4 significant digits (None when either is unknown)."""
    return float(f"{a / b:.4g}") if a is not None and b else None


def _log_errors(p: procs.Proc) -> list[str]:
    """The ERROR lines of a process's log, each with the exception its traceback ended in."""
    try:
        lines = p.log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    out: list[str] = []
    in_traceback = False
    for ln in lines:
        if ln.startswith("Traceback"):
            in_traceback = True
        elif in_traceback and ln and not ln.startswith((" ", "\t")):
            if not ln.startswith(("During handling", "The above exception")):
                out.append(f"{p.name}:   {ln[:300]}")
                in_traceback = False
        elif " ERROR " in ln or " CRITICAL " in ln:
            out.append(f"{p.name}: {ln[:300]}")
    return out


def _fill_ratios(section: dict[str, Any], ceiling_sql: float | None) -> None:
    section["ceiling_sql_per_s"] = ceiling_sql
    section["ratio"] = _ratio(section.get("accepted_per_s"), ceiling_sql)
    for lv in section["levels"].values():
        lv["vs_sql"] = _ratio(lv["accepted_per_s"], ceiling_sql)


# --- report ------------------------------------------------------------------------------------------------


def _f(v: Any, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def table(results: dict[str, Any]) -> str:
    out: list[str] = []
    m = results.get("machine", {})
    out.append(
        f"paymux bench - {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores,"
        f" {m.get('memory_mb', '?')} MB,"
        f" disk {m.get('disk', {}).get('device', '?')} (fsync of 4 KiB {m.get('fsync_4k_ms', '?')} ms)"
    )
    o = results.get("options", {})
    if o.get("recurring") is not None:
        out.append(
            f"recurring payments only (--recurring {o['recurring']:,}); machine"
            f" {m.get('busy_before_pct', '?')} % busy before the run"
        )
    elif o.get("wallets") is not None:
        out.append(
            f"wallets only (--wallets {o['wallets']:,}); machine {m.get('busy_before_pct', '?')} % busy"
            " before the run"
        )
    elif o.get("invoices") is not None:
        out.append(
            f"invoices only (--invoices {o['invoices']:,}); machine"
            f" {m.get('busy_before_pct', '?')} % busy before the run"
        )
    else:
        out.append(
            f"{o.get('payments')} payments per level after {o.get('warmup')} warm-up;"
            f" providers emulated with {o.get('provider_latency_ms')} ms latency;"
            f"{' every request on a new connection;' if o.get('new_connections') else ''}"
            f" machine {m.get('busy_before_pct', '?')} % busy before the run"
        )
    for key in ("sqlite", "postgresql", "postgresql_scale"):
        s = results.get(key)
        if not s:
            continue
        out.append("")
        out.append(f"{key}: {s['topology']}  [{s['url']}]")
        out.append(
            f"{'conc':>5} {'accepted/s':>11} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
            f" {'errors':>6} {'final/s':>9} {'CPU s':>7} {'CPU ms/pay':>10} {'RSS MB':>7}"
            f" {'busy %':>6} {'steal %':>7} {'vs SQL':>7} {'vs HTTP':>7}"
        )
        for c, lv in s["levels"].items():
            out.append(
                f"{c:>5} {_f(lv['accepted_per_s']):>11} {_f(lv['p50_ms'], '.1f'):>8}"
                f" {_f(lv['p95_ms'], '.1f'):>8} {_f(lv['p99_ms'], '.1f'):>8}"
                f" {_f(lv['max_ms'], '.1f'):>8} {lv['errors']:>6}"
                f" {_f(lv['completed_per_s']):>9} {_f(lv['hub_cpu_s'], '.2f'):>7}"
                f" {_f(lv['hub_cpu_ms_per_payment'], '.2f'):>10} {_f(lv['hub_rss_peak_mb'], '.0f'):>7}"
                f" {_f(lv['machine_cpu_busy_pct'], '.0f'):>6} {_f(lv.get('machine_cpu_steal_pct'), '.1f'):>7}"
                f" {_f(lv.get('vs_sql'), '.3f'):>7}"
                f" {_f(lv.get('vs_http'), '.3f'):>7}"
            )
        for c, lv in s["levels"].items():
            runs = lv.get("runs", [])
            if len(runs) > 1:
                out.append(
                    f"  {len(runs)} runs at {c}: accepted/s "
                    + ", ".join(_f(r["accepted_per_s"]) for r in runs)
                    + "; p99 ms "
                    + ", ".join(_f(r["p99_ms"], ".1f") for r in runs)
                    + " (the median run above)"
                )
        c = s.get("ceiling_sql") or {}
        if len(c.get("runs", [])) > 1:
            out.append("  SQL ceiling runs: " + ", ".join(_f(r["per_s"]) for r in c["runs"]) + " payments/s")
        http_runs = s.get("ceiling_http_runs") or []
        if len(http_runs) > 1:
            out.append(
                f"  HTTP ceiling runs at {s['headline_concurrency']}: "
                + ", ".join(_f(v) for v in http_runs)
                + " requests/s"
            )
        sql_note = (
            f" ({c['batched']['batch']} per transaction; one per transaction:"
            f" {_f(c['per_payment']['per_s'])}/s)"
            if c
            else " (PostgreSQL's, measured in the single-process run)"
        )
        out.append(f"  SQL ceiling: {_f(s['ceiling_sql_per_s'])} payments/s{sql_note}")
        out.append(
            f"  HTTP ceiling at {s['headline_concurrency']}: {_f(s['ceiling_http_per_s'])} requests/s;"
            f" ratio = accepted/s at {s['headline_concurrency']} / SQL ceiling = {_f(s['ratio'], '.4f')}"
            f" (of HTTP ceiling: {_f(s['ratio_http'], '.3f')})"
        )
        out.append(
            f"  memory: idle RSS {_f(s['idle_rss_mb'], '.0f')} MB, peak RSS {_f(s['peak_rss_mb'], '.0f')} MB;"
            f" ledger balanced: {'yes' if s['ledger_balanced'] else 'NO'}"
            + (f"; {s['hub_log_error_count']} ERROR lines in the hub's log" if s["hub_log_errors"] else "")
        )
        for ln in s["hub_log_errors"][:6]:
            out.append(f"    {ln}")
        k = s.get("worker_kill")
        if k:
            out.append(
                f"  worker killed (SIGKILL) during {k['payments']:,} payments: it held {k['orphans']},"
                f" final {_f(k['orphans_final_after_kill_s'], '.1f')} s after the kill"
                f" (lease {k['lease_seconds']} s; {k['orphans_final']} of {k['orphans']} final);"
                f" the others final {_f(k['all_final_after_kill_s'], '.1f')} s after it"
            )
        for c, lv in s["levels"].items():
            if lv["payments"] >= LONG_LEVEL:  # a long run: does memory grow with the payments?
                at = lv["hub_rss_mb_at"]
                out.append(
                    f"  memory across {lv['payments']:,} payments at concurrency {c}: RSS"
                    f" {at['10%']:.0f} MB at 10 % of the run, {at['50%']:.0f} MB at 50 %,"
                    f" {at['100%']:.0f} MB at the end"
                )
        for c, lv in s["levels"].items():
            for sample in lv["error_samples"][:2]:
                out.append(f"    concurrency {c}: {sample[:200]}")
    mi = results.get("micro")
    if mi:
        out.append("")
        out.append(
            f"micro (in-process, demo catalog): route planning {_f(mi['route_plan_per_s'])}/s,"
            f" pricing {_f(mi['pricing_per_s'])}/s, tariff compute {_f(mi['tariff_compute_per_s'])}/s,"
            f" snapshot load {mi['snapshot_load_ms']} ms"
        )
    for key in ("recurring_sqlite", "recurring_postgresql"):
        rec = results.get(key)
        if rec:
            from paymux.bench.recurring import table as recurring_table

            out.append("")
            out.extend(recurring_table(rec))
    for key in ("invoices_sqlite", "invoices_postgresql"):
        inv = results.get(key)
        if inv:
            from paymux.bench.invoices import table as invoices_table

            out.append("")
            out.extend(invoices_table(inv))
    for key in ("wallets_sqlite", "wallets_postgresql"):
        wal = results.get(key)
        if wal:
            from paymux.bench.wallets import table as wallets_table

            out.append("")
            out.extend(wallets_table(wal))
    fi = results.get("files")
    if fi:
        out.append("")
        out.append(f"files ({fi['payments']:,} payments, in-process, SQLite):")
        for r in fi["registers"]:
            out.append(
                f"  register {r['format']:>4}: {r['seconds']} s ({_f(r['rows_per_second'])} rows/s),"
                f" {r['file_bytes'] / 2**20:.1f} MiB, peak memory +{r['peak_rss_increase_mib']} MiB"
            )
        rc = fi["reconciliation"]
        out.append(
            f"  reconciliation: {rc['lines']:,} lines in {rc['seconds']} s"
            f" ({_f(rc['lines_per_second'])} lines/s), peak memory +{rc['peak_rss_increase_mib']} MiB"
        )
        for rp in fi.get("reports", []):
            out.append(
                f"  report {rp['report']}: {rp['seconds']} s, {rp['rows']:,} rows,"
                f" peak memory +{rp['peak_rss_increase_mib']} MiB"
            )
    if results.get("error"):
        out.append("")
        out.append(f"FAILED: {results['error']}")
    return "\n".join(out)


def _has_errors(results: dict[str, Any]) -> bool:
    if results.get("error"):
        return True
    for key in ("sqlite", "postgresql", "postgresql_scale"):
        s = results.get(key)
        if s and (s["errors"] or not s["ledger_balanced"] or s["hub_log_error_count"]):
            return True
    for key in (
        "recurring_sqlite",
        "recurring_postgresql",
        "invoices_sqlite",
        "invoices_postgresql",
        "wallets_sqlite",
        "wallets_postgresql",
    ):
        rec = results.get(key)
        if rec and not rec.get("ok"):
            return True
    return False


async def _run_recurring(opts: BenchOptions, work: Path, results: dict[str, Any]) -> None:
    """``--recurring N``: only the recurring benchmark, on SQLite and/or PostgreSQL."""
    from paymux.bench.recurring import run_recurring_bench

    if opts.recurring_sqlite:
        url = f"sqlite+aiosqlite:///{work / 'recurring.db'}"
        results["recurring_sqlite"] = await run_recurring_bench(url, opts.recurring_options(), "sqlite")
    if opts.postgres:
        hub_url, dsn = _pg_urls(opts.postgres)
        await _reset_pg(dsn)
        rec = await run_recurring_bench(hub_url, opts.recurring_options(), "postgresql")
        rec["url"] = _safe(hub_url)
        results["recurring_postgresql"] = rec


async def _run_invoices(opts: BenchOptions, work: Path, results: dict[str, Any]) -> None:
    """``--invoices N``: only the invoice benchmark (``paymux serve``), on SQLite and/or PostgreSQL."""
    from paymux.bench.invoices import run_invoice_bench

    env = Bench(opts, work).env()
    if opts.invoices_sqlite:
        url = f"sqlite+aiosqlite:///{work / 'invoices.db'}"
        results["invoices_sqlite"] = await run_invoice_bench(url, opts.invoice_options(), "sqlite", work, env)
    if opts.postgres:
        hub_url, dsn = _pg_urls(opts.postgres)
        await _reset_pg(dsn)
        inv = await run_invoice_bench(hub_url, opts.invoice_options(), "postgresql", work, env)
        inv["url"] = _safe(hub_url)
        results["invoices_postgresql"] = inv


async def _run_wallets(opts: BenchOptions, work: Path, results: dict[str, Any]) -> None:
    """``--wallets N``: only the wallet benchmark (``paymux serve``), on SQLite and/or PostgreSQL."""
    from paymux.bench.wallets import run_wallet_bench

    env = Bench(opts, work).env()
    if opts.wallets_sqlite:
        url = f"sqlite+aiosqlite:///{work / 'wallets.db'}"
        results["wallets_sqlite"] = await run_wallet_bench(url, opts.wallet_options(), "sqlite", work, env)
    if opts.postgres:
        hub_url, dsn = _pg_urls(opts.postgres)
        await _reset_pg(dsn)
        wal = await run_wallet_bench(hub_url, opts.wallet_options(), "postgresql", work, env)
        wal["url"] = _safe(hub_url)
        results["wallets_postgresql"] = wal


async def _run(opts: BenchOptions, work: Path, results: dict[str, Any]) -> None:
    if opts.wallets is not None:
        await _run_wallets(opts, work, results)
        return
    if opts.recurring is not None:
        await _run_recurring(opts, work, results)
        return
    if opts.invoices is not None:
        await _run_invoices(opts, work, results)
        return
    bench = Bench(opts, work)
    try:
        say("micro benchmarks (in-process)")
        assert opts.micro_seconds is not None
        results["micro"] = await run_micro(work, opts.micro_seconds)
        say("HTTP ceiling: no-op app under uvicorn")
        http = await bench.http_ceiling(1)
        results["http_ceiling"] = http
        results["sqlite"] = await bench.backend("sqlite", "sqlite", http)
        _fill_ratios(results["sqlite"], results["sqlite"]["ceiling_sql_per_s"])
        if opts.postgres:
            results["postgresql"] = await bench.backend("postgresql", "postgresql", http)
            _fill_ratios(results["postgresql"], results["postgresql"]["ceiling_sql_per_s"])
        if opts.scale:
            say("HTTP ceiling: two no-op servers")
            http2 = await bench.http_ceiling(2)
            results["http_ceiling_scale"] = http2
            scale = await bench.backend("postgresql_scale", "postgresql", http2, scale=True)
            _fill_ratios(scale, results["postgresql"]["ceiling_sql_per_s"])
            results["postgresql_scale"] = scale
        if opts.files:
            results["files"] = await run_files(opts.files, work)
    finally:
        bench.stop_all()


async def run_files(n: int, work: Path) -> dict[str, Any]:
    """Build an ``n``-payment register in every format, reconcile an ``n``-line provider register and
    run the reports over ``n`` payments."""
    from paymux.reconciliation.bench import run_reconciliation_bench
    from paymux.registers.bench import run_register_bench
    from paymux.reports.bench import run_report_bench

    say(f"registers: {n:,} payments in each format")
    registers = await run_register_bench(n, work_dir=work)
    say(f"reconciliation: a {n:,}-line provider register")
    reconciliation = await run_reconciliation_bench(n, work_dir=work)
    say(f"reports: {n:,} payments over 30 days")
    reports = await run_report_bench(n, work_dir=work)
    return {"payments": n, "registers": registers, "reconciliation": reconciliation, "reports": reports}


def run_bench(opts: BenchOptions) -> int:
    """Run the benchmark, print the table, write the JSON file; 0 when nothing failed."""
    opts.resolve()
    base = opts.work_dir
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="paymux-bench-", dir=base))
    t0 = time.monotonic()
    results: dict[str, Any] = {
        "version": 1,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "options": {
            "levels": opts.levels,
            "payments": opts.payments,
            "warmup": opts.warmup,
            "quick": opts.quick,
            "postgres": _safe(opts.postgres) if opts.postgres else None,
            "scale": opts.scale,
            "provider_latency_ms": opts.provider_latency_ms,
            "ceiling_payments": opts.ceiling_payments,
            "ceiling_batch": opts.ceiling_batch,
            "repeat": opts.repeat,
            "new_connections": opts.new_connections,
            "recurring": opts.recurring,
            "recurring_due": opts.recurring_due,
            "recurring_workers": opts.recurring_workers,
            "invoices": opts.invoices,
            "invoices_page_clients": opts.invoices_page_clients,
            "invoices_page_requests": opts.invoices_page_requests,
            "invoices_webhooks": opts.invoices_webhooks,
            "wallets": opts.wallets,
            "wallets_clients": opts.wallets_clients,
            "wallets_hot": opts.wallets_hot,
            "wallets_hot_payers": opts.wallets_hot_payers,
            "settings": _settings_overrides(),
        },
        "machine": procs.machine_info(work),
        "code": _code_info(),
    }
    before = procs.machine_cpu()
    time.sleep(1.0)
    busy = procs.busy_percent(before, procs.machine_cpu())
    results["machine"]["busy_before_pct"] = busy
    if busy > 15:
        say(f"warning: the machine was {busy:.0f} % busy before the run started: the figures will be low")
    try:
        asyncio.run(_run(opts, work, results))
    except KeyboardInterrupt:
        results["error"] = "interrupted"
    except Exception as e:  # report what was measured so far, with the reason
        results["error"] = f"{type(e).__name__}: {e}"
    finally:
        results["duration_s"] = round(time.monotonic() - t0, 1)
        if opts.keep or _has_errors(results):
            results["work_dir"] = str(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(table(results), flush=True)
    if opts.json_path is not None:
        opts.json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        say(f"results written to {opts.json_path}")
    if "work_dir" in results and not opts.keep:
        say(f"something failed: the databases and logs of the processes are in {work}")
    return 1 if _has_errors(results) else 0


def _settings_overrides() -> dict[str, str]:
    """The PAYMUX_* settings of this environment that the hub processes inherit."""
    from paymux.settings import Settings

    names = {f"PAYMUX_{n.upper()}" for n in Settings.model_fields} - {
        "PAYMUX_DATABASE_URL",
        "PAYMUX_HOST",
        "PAYMUX_PORT",
    }
    return {k: v for k, v in os.environ.items() if k in names and not k.startswith("PAYMUX_SSL_")}


def _code_info() -> dict[str, Any]:
    """The paymux version, and the git commit when run from a checkout (with uncommitted changes or not)."""
    import subprocess

    from paymux import __version__

    info: dict[str, Any] = {"paymux": __version__}
    root = Path(__file__).resolve().parents[3]
    if (root / ".git").exists() and shutil.which("git"):
        try:
            head = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            changed = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.splitlines()
        except (OSError, subprocess.SubprocessError):
            return info
        info["git_commit"] = head
        info["uncommitted_files"] = len(changed)
    return info
