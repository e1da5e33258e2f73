"""The ``paymux`` console script, run as a real subprocess against a fresh SQLite file per test.

These tests are about the command line, not the database backend, so they use SQLite whatever
``PAYMUX_TEST_DATABASE_URL`` says.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

PAYMUX = Path(sys.executable).parent / "paymux"
EXAMPLE = Path(__file__).parent / "data" / "catalog_example.yaml"
SUMMARY = re.compile(r"^(\d+) created, (\d+) updated, (\d+) unchanged")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cli:
    """Runs ``paymux`` in ``cwd`` with its own SQLite database."""

    cwd: Path
    db: Path

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")}
        env["PAYMUX_DATABASE_URL"] = f"sqlite+aiosqlite:///{self.db}"
        env["PAYMUX_LOG_LEVEL"] = "warning"
        return env

    def run(
        self, *args: str, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PAYMUX), *args],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(
        self, *args: str, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        r = self.run(*args, timeout=timeout, env=env)
        assert r.returncode == 0, f"paymux {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
        return r

    def export(self) -> str:
        return self.ok("catalog", "export").stdout

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str) -> None:
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            conn.execute(sql)
            conn.commit()

    def db_bytes(self) -> bytes:
        """The database file and whatever SQLite keeps next to it (WAL, shared memory)."""
        return b"".join(p.read_bytes() for p in sorted(self.cwd.glob(self.db.name + "*")))

    @contextlib.contextmanager
    def background(
        self, *args: str, ready: Any, name: str, timeout: float = 30, env: dict[str, str] | None = None
    ) -> Iterator[None]:
        """Run ``paymux ARGS`` in the background until ``ready()`` is true; stop it with SIGINT after."""
        out = (self.cwd / f"{name}.out").open("w")
        err = (self.cwd / f"{name}.err").open("w")
        proc = subprocess.Popen(
            [str(PAYMUX), *args], cwd=self.cwd, env={**self.env, **(env or {})}, stdout=out, stderr=err
        )

        def output() -> str:
            return (self.cwd / f"{name}.out").read_text() + (self.cwd / f"{name}.err").read_text()

        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"paymux {' '.join(args)} exited {proc.returncode} early:\n{output()}")
                with contextlib.suppress(httpx.TransportError):
                    if ready():
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"paymux {' '.join(args)} did not get ready in {timeout} s:\n{output()}")
                time.sleep(0.1)
            yield
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
                    pytest.fail(f"paymux {' '.join(args)} ignored SIGINT:\n{output()}")
            out.close()
            err.close()
        # a clean stop: exit code 0, or death by the very signal it was sent
        assert proc.returncode in (0, -signal.SIGINT, 128 + signal.SIGINT), output()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path, tmp_path / "paymux.db")


@pytest.fixture
def catalog(cli: Cli) -> Cli:
    """A migrated database with the example catalog of docs/catalog.md applied."""
    cli.ok("migrate")
    cli.ok("catalog", "apply", str(EXAMPLE))
    return cli


def example_items() -> int:
    """Items of the example file: one per entry of every section."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return sum(len(v) for v in data.values())


def summary(stdout: str) -> tuple[int, int, int]:
    m = SUMMARY.match(stdout.strip().splitlines()[-1])
    assert m, stdout
    return int(m[1]), int(m[2]), int(m[3])


def edited(cli: Cli, name: str, *replacements: tuple[str, str]) -> Path:
    """A copy of the example file with text replaced (text, not YAML: ``off:`` must stay a string)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = cli.cwd / name
    path.write_text(text, encoding="utf-8")
    return path


# -- migrate -----------------------------------------------------------------------------------


def test_migrate_creates_the_schema_and_can_run_again(cli: Cli) -> None:
    r = cli.ok("migrate")
    assert "database is up to date" in r.stdout
    tables = {t for (t,) in cli.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"payments", "payment_attempts", "channel_keys", "admin_tokens", "accounts", "postings"} <= tables
    version = cli.query("SELECT version_num FROM alembic_version")
    assert len(version) == 1
    cli.ok("migrate")
    assert cli.query("SELECT version_num FROM alembic_version") == version


# -- catalog apply / export ---------------------------------------------------------------------


def test_catalog_apply_reports_each_item_then_nothing_on_reapply(cli: Cli) -> None:
    cli.ok("migrate")
    first = cli.ok("catalog", "apply", str(EXAMPLE)).stdout.strip().splitlines()
    created, updated, unchanged = summary(first[-1])
    items = first[:-1]
    assert all(re.match(r"^(created|updated) \S+ ", line) for line in items), items
    assert len(items) == created + updated
    assert created + updated + unchanged == example_items()
    assert created >= example_items() - 1  # everything but the switch, which "updates" routes
    for line in ("created provider alpha", "created provider gamma", "created channel ibank"):
        assert line in items
    assert "created service mts-topup" in items and "created agent dealer-south" in items
    assert sum(line.startswith("created tariff ") for line in items) == 8
    assert "updated switch off gamma onto beta service kz-internet" in items

    again = cli.ok("catalog", "apply", str(EXAMPLE)).stdout.strip().splitlines()
    assert len(again) == 1, again
    assert summary(again[0]) == (0, 0, example_items())
    assert cli.query("SELECT code FROM providers ORDER BY code") == [("alpha",), ("beta",), ("gamma",)]


def test_catalog_dry_run_reports_the_change_and_changes_nothing(catalog: Cli) -> None:
    before = catalog.export()
    path = edited(
        catalog,
        "edited.yaml",
        ("name: Beta Direct Operator", "name: Beta Renamed"),
        (
            "  - code: online\n    name: Internet and mobile banking\n",
            "  - code: online\n    name: Internet and mobile banking\n  - code: kiosk\n    name: Kiosks\n",
        ),
    )
    r = catalog.ok("catalog", "apply", "--dry-run", str(path))
    lines = r.stdout.strip().splitlines()
    assert "updated provider beta" in lines and "created channel_group kiosk" in lines
    assert len(lines) == 3, lines
    assert summary(lines[-1]) == (1, 1, example_items() - 1)
    assert lines[-1].endswith("(dry run, nothing changed)")
    assert catalog.export() == before
    assert catalog.query("SELECT name FROM providers WHERE code = 'beta'") == [("Beta Direct Operator",)]

    # the same file for real does change it: the dry run above was not a no-op by accident
    r = catalog.ok("catalog", "apply", str(path))
    assert "updated provider beta" in r.stdout and "dry run" not in r.stdout
    after = catalog.export()
    assert "Beta Renamed" in after and "kiosk" in after and after != before


@pytest.mark.parametrize(
    ("replacement", "expected"),
    [
        pytest.param(
            ("    timezone: Europe/Moscow\n", "    tiemzone: Europe/Moscow\n"),
            "providers[0] (alpha): unknown field 'tiemzone'",
            id="unknown-key",
        ),
        pytest.param(
            ("account_pattern: ^9[0-9]{9}$", 'account_pattern: "^9[0-9{9}$"'),
            "services[0] (mts-topup).account_pattern: account_pattern '^9[0-9{9}$' is not a valid regular",
            id="bad-regex",
        ),
        pytest.param(
            ('- provider: gamma\n          code: "77"', '- provider: nope\n          code: "77"'),
            "services[2] (kz-internet): unknown provider 'nope' (nothing was changed)",
            id="unknown-reference",
        ),
    ],
)
def test_catalog_apply_of_an_invalid_file_fails_and_changes_nothing(
    catalog: Cli, replacement: tuple[str, str], expected: str
) -> None:
    before = catalog.export()
    # the bad file also renames beta, which must not be applied either
    path = edited(catalog, "bad.yaml", ("name: Beta Direct Operator", "name: Beta Renamed"), replacement)
    r = catalog.run("catalog", "apply", str(path))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith(f"error: {path}")
    assert any(expected in line for line in r.stderr.splitlines()), r.stderr
    assert catalog.export() == before
    assert catalog.query("SELECT name FROM providers WHERE code = 'beta'") == [("Beta Direct Operator",)]


def test_catalog_export_applies_unchanged_and_rebuilds_the_catalog(catalog: Cli, tmp_path: Path) -> None:
    text = catalog.export()
    data = yaml.safe_load(text)
    assert [p["code"] for p in data["providers"]] == ["alpha", "beta", "gamma"]
    services = {s["code"] for s in data["services"]}
    assert services == {"mts-topup", "electricity", "kz-internet", "game-credits"}
    assert len(data["tariffs"]) == 8
    exported = tmp_path / "exported.yaml"
    exported.write_text(text, encoding="utf-8")
    lines = catalog.ok("catalog", "apply", str(exported)).stdout.strip().splitlines()
    assert len(lines) == 1, lines
    created, updated, unchanged = summary(lines[0])
    assert (created, updated) == (0, 0) and unchanged > 20

    r = catalog.ok("catalog", "export", "-o", "out.yaml")
    assert "catalog written to out.yaml" in r.stdout
    assert (tmp_path / "out.yaml").read_text(encoding="utf-8") == text

    # applied to an empty database, the export with its secrets builds the same catalog
    token = catalog.ok("admin", "issue-token").stdout.strip().splitlines()[-1]
    full = catalog.ok("catalog", "export", "--with-secrets", env={"PAYMUX_ADMIN_TOKEN": token}).stdout
    assert "alpha-secret-token" in full
    (tmp_path / "full.yaml").write_text(full, encoding="utf-8")
    other = Cli(tmp_path, tmp_path / "other.db")
    other.ok("migrate")
    lines = other.ok("catalog", "apply", str(tmp_path / "full.yaml")).stdout.strip().splitlines()
    assert summary(lines[-1])[0] == unchanged
    assert other.export() == text


# -- secrets in the catalog file --------------------------------------------------------------------

# every secret of docs/catalog.md's example: provider tokens and channel HMAC secrets
EXAMPLE_SECRETS = (
    "alpha-secret-token",
    "beta-secret-token",
    "gamma-secret-token",
    "terminal-0042-shared-secret",
    "payment-link-shared-secret",
)


def stored_secrets(cli: Cli) -> list[tuple[Any, ...]]:
    return cli.query("SELECT code, config FROM providers ORDER BY code") + cli.query(
        "SELECT code, hmac_secret FROM channels ORDER BY code"
    )


def test_catalog_export_writes_placeholders_that_apply_keeps(catalog: Cli, tmp_path: Path) -> None:
    stored = stored_secrets(catalog)
    text = catalog.export()
    for secret in EXAMPLE_SECRETS:
        assert secret not in text
    data = yaml.safe_load(text)
    assert {p["code"]: p["config"]["token"] for p in data["providers"]} == dict.fromkeys(
        ("alpha", "beta", "gamma"), "***"
    )
    channels = {c["code"]: c.get("signing", {}).get("hmac_secret") for c in data["channels"]}
    assert channels["term-0042"] == "***" and channels["paylink"] == "***"

    # applied back, the placeholders keep the stored secrets
    (tmp_path / "masked.yaml").write_text(text, encoding="utf-8")
    lines = catalog.ok("catalog", "apply", str(tmp_path / "masked.yaml")).stdout.strip().splitlines()
    assert summary(lines[-1])[:2] == (0, 0), lines
    assert stored_secrets(catalog) == stored

    # where nothing is stored, a placeholder is an error that names it, and nothing is created
    other = Cli(tmp_path, tmp_path / "other.db")
    other.ok("migrate")
    r = other.run("catalog", "apply", str(tmp_path / "masked.yaml"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "providers[0] (alpha): config.token is the mask '***' of a secret" in r.stderr, r.stderr
    assert other.query("SELECT code FROM providers") == []


def test_catalog_export_with_secrets_needs_an_administrator(catalog: Cli, tmp_path: Path) -> None:
    refused = catalog.run("catalog", "export", "--with-secrets")
    assert refused.returncode == 1 and refused.stdout == ""
    assert "needs an administrator's token" in refused.stderr

    r = catalog.run("catalog", "export", "--with-secrets", env={"PAYMUX_ADMIN_TOKEN": "pmx_adm_not-a-token"})
    assert r.returncode == 1 and r.stdout == "" and "unknown, expired or revoked" in r.stderr

    # a user without the permission (an operator, who may change the catalog) is refused
    catalog.ok("users", "create-admin", "root", env={"PAYMUX_ADMIN_PASSWORD": "Tr0ub4dor&3-horse-staple"})
    catalog.execute(
        "INSERT INTO api_tokens (user_id, name, prefix, token_hash, created_at) "
        "SELECT u.id, 'op', 'pmx_usr_op00', "
        f"'{hashlib.sha256(b'pmx_usr_operator-token').hexdigest()}', '2026-01-01 00:00:00.000000' "
        "FROM users u WHERE u.username = 'root'"
    )
    operator = catalog.query("SELECT id FROM roles WHERE code = 'operator'")
    catalog.execute(f"UPDATE users SET role_id = {operator[0][0]} WHERE username = 'root'")
    r = catalog.run(
        "catalog", "export", "--with-secrets", env={"PAYMUX_ADMIN_TOKEN": "pmx_usr_operator-token"}
    )
    assert r.returncode == 1 and r.stdout == ""
    assert "may not export secrets (it needs the permission catalog.secrets" in r.stderr, r.stderr
    assert not any(s in r.stdout + r.stderr for s in EXAMPLE_SECRETS)

    # the Administrator's token, or a legacy admin token, gets them; the file is private; it is audited
    administrator = catalog.query("SELECT id FROM roles WHERE code = 'administrator'")
    catalog.execute(f"UPDATE users SET role_id = {administrator[0][0]} WHERE username = 'root'")
    r = catalog.ok(
        "catalog",
        "export",
        "--with-secrets",
        "-o",
        "full.yaml",
        env={"PAYMUX_ADMIN_TOKEN": "pmx_usr_operator-token"},
    )
    assert "keep it safe" in r.stderr
    full = (tmp_path / "full.yaml").read_text(encoding="utf-8")
    assert all(s in full for s in EXAMPLE_SECRETS)
    assert (tmp_path / "full.yaml").stat().st_mode & 0o777 == 0o600
    token = catalog.ok("admin", "issue-token").stdout.strip().splitlines()[-1]
    assert catalog.ok("catalog", "export", "--with-secrets", "--token", token).stdout == full
    events = catalog.query("SELECT actor, action FROM audit_log WHERE action = 'catalog.export_secrets'")
    assert events == [
        ("user:root (token pmx_usr_op00)", "catalog.export_secrets"),
        ("admin:admin", "catalog.export_secrets"),
    ]


# -- keys and tokens ----------------------------------------------------------------------------


def test_channel_key_is_printed_once_and_stored_hashed(catalog: Cli) -> None:
    r = catalog.ok("channels", "issue-key", "atm-0001")
    key = r.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"pmx_ch_[A-Za-z0-9_-]{40,}", key), r.stdout
    assert "shown once" in r.stderr
    rows = catalog.query(
        "SELECT k.key_hash, k.prefix, k.revoked_at FROM channel_keys k "
        "JOIN channels c ON c.id = k.channel_id WHERE c.code = 'atm-0001'"
    )
    assert rows == [(hashlib.sha256(key.encode()).hexdigest(), key[:12], None)]
    assert key.encode() not in catalog.db_bytes()
    assert key[12:].encode() not in catalog.db_bytes()

    second = catalog.ok("channels", "issue-key", "atm-0001").stdout.strip().splitlines()[-1]
    assert second != key and second.startswith("pmx_ch_")
    assert len(catalog.query("SELECT id FROM channel_keys")) == 2

    bad = catalog.run("channels", "issue-key", "no-such-channel")
    assert bad.returncode == 1
    assert "pmx_ch_" not in bad.stdout
    assert bad.stderr.strip() == "error: unknown channel 'no-such-channel'"
    assert len(catalog.query("SELECT id FROM channel_keys")) == 2


def test_admin_token_is_printed_once_and_stored_hashed(cli: Cli) -> None:
    cli.ok("migrate")
    r = cli.ok("admin", "issue-token", "--name", "ops")
    token = r.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"pmx_adm_[A-Za-z0-9_-]{40,}", token), r.stdout
    assert "shown once" in r.stderr
    rows = cli.query("SELECT name, token_hash, prefix, revoked_at FROM admin_tokens")
    assert rows == [("ops", hashlib.sha256(token.encode()).hexdigest(), token[:12], None)]
    assert token.encode() not in cli.db_bytes()
    default = cli.ok("admin", "issue-token").stdout.strip().splitlines()[-1]
    assert default.startswith("pmx_adm_") and default != token
    assert cli.query("SELECT name FROM admin_tokens ORDER BY id") == [("ops",), ("admin",)]


# -- serve --------------------------------------------------------------------------------------


def test_serve_answers_with_the_issued_key_and_token(catalog: Cli) -> None:
    key = catalog.ok("channels", "issue-key", "atm-0001").stdout.strip().splitlines()[-1]
    token = catalog.ok("admin", "issue-token").stdout.strip().splitlines()[-1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {key}"}
    # no background workers: the example providers live on the internet, nothing may be sent there
    with (
        httpx.Client(base_url=base, timeout=10) as http,
        catalog.background(
            "serve",
            "--port",
            str(port),
            "--no-workers",
            ready=lambda: http.get("/health").status_code == 200,
            name="serve",
        ),
    ):
        health = http.get("/health")
        assert health.json()["status"] == "ok"

        r = http.get("/api/v1/payments/1", headers=auth)
        assert r.status_code == 404, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["status"] == 404

        for headers in ({}, {"Authorization": "Bearer pmx_ch_wrong"}, {"Authorization": f"Bearer {token}"}):
            r = http.get("/api/v1/payments/1", headers=headers)
            assert r.status_code == 401, (headers, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")

        body = {
            "external_id": "cli-1",
            "service": "mts-topup",
            "account": "9161234567",
            "amount": "100.00",
            "currency": "RUB",
        }
        r = http.post("/api/v1/payments", json=body, headers=auth)
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        r = http.get(f"/api/v1/payments/{pid}", headers=auth)
        assert r.status_code == 200 and r.json()["status"] == "accepted" and r.json()["provider"] == "alpha"

        r = http.get("/api/v1/admin/providers", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        assert {p["code"] for p in r.json()} == {"alpha", "beta", "gamma"}
        assert http.get("/api/v1/admin/providers", headers=auth).status_code == 401
    assert catalog.query("SELECT status FROM payments") == [("accepted",)]


# -- demo ---------------------------------------------------------------------------------------


def test_demo_seed_only_loads_the_demo_data_and_can_run_twice(cli: Cli) -> None:
    r = cli.ok("demo", "--seed-only")
    assert "demo data loaded" in r.stdout
    assert re.search(r"\(\d+ created, 0 updated, 0 unchanged\)", r.stdout), r.stdout
    assert "provider library of fastpay: 340 added, 0 changed, 0 unchanged" in r.stdout
    data = yaml.safe_load(cli.export())
    assert len(data["providers"]) >= 3
    assert len(data["services"]) >= 10
    assert len(data["channels"]) >= 4
    assert len({c["kind"] for c in data["channels"]}) >= 4
    topups = cli.query("SELECT COUNT(*) FROM topups")

    again = cli.ok("demo", "--seed-only")
    assert re.search(r"\(0 created, 0 updated, \d+ unchanged\)", again.stdout), again.stdout
    assert "provider library of fastpay: 0 added, 0 changed, 340 unchanged" in again.stdout
    categories = cli.query("SELECT category, COUNT(*) FROM services GROUP BY category")
    assert len(categories) >= 10 and sum(n for _, n in categories) >= 340
    assert yaml.safe_load(cli.export()) == data
    assert cli.query("SELECT COUNT(*) FROM topups") == topups  # deposits are funded once
    assert cli.query("SELECT COUNT(*) FROM exchange_rates") == [(2,)]  # the demo's EUR and USD rates, once
    assert "ledger balanced: yes" in cli.ok("ledger", "verify").stdout
    # every demo provider has bank details (once), so payment orders can be exported from the demo
    assert cli.query("SELECT COUNT(*) FROM settlement_details") == [(len(data["providers"]),)]
    missing = cli.query("SELECT COUNT(*) FROM settlement_details WHERE iban IS NULL OR account IS NULL")
    assert missing == [(0,)]
    # recurring customers with subscriptions of every kind, each with its next look, loaded once
    kinds = cli.query("SELECT kind, COUNT(*) FROM recurring_subscriptions GROUP BY kind ORDER BY kind")
    assert [k for k, _ in kinds] == ["debt", "scheduled", "threshold"] and sum(n for _, n in kinds) == 6
    assert cli.query("SELECT COUNT(*) FROM recurring_subscriptions WHERE next_due_at IS NULL") == [(0,)]
    assert cli.query("SELECT COUNT(*) FROM recurring_customers") == [(4,)]


def test_demo_bank_details_satisfy_both_payment_order_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    from paymux.demo.settlement_details import DEMO_DEBTOR, provider_details, set_demo_debtor_defaults
    from paymux.settlement.exports.checks import invalid_debtor_settings, missing_debtor_settings
    from paymux.settlement.service import check_details
    from paymux.settlement.settings import SettlementSettings

    for k in DEMO_DEBTOR:  # set then delete: monkeypatch restores what was there (nothing) afterwards
        monkeypatch.setenv(f"PAYMUX_SETTLEMENT_DEBTOR_{k}", "")
        monkeypatch.delenv(f"PAYMUX_SETTLEMENT_DEBTOR_{k}")
    monkeypatch.setenv("PAYMUX_SETTLEMENT_DEBTOR_NAME", "Our Own Name")  # the environment's own wins
    set_demo_debtor_defaults()
    settings = SettlementSettings()
    assert settings.debtor_name == "Our Own Name"
    assert missing_debtor_settings(settings, "pain001") == missing_debtor_settings(settings, "1c") == []
    assert invalid_debtor_settings(settings) == []
    assert check_details(provider_details(7, "Provider"))["iban"].startswith("DE")


def test_demo_load_twice_then_ledger_verify_catches_a_corrupted_balance(cli: Cli) -> None:
    for run in (1, 2):  # the second run keeps the first's database (its emulators start afresh)
        started = time.monotonic()
        r = cli.run("demo", "--payments", "60", "--exit", "--port", str(free_port()), timeout=120)
        elapsed = time.monotonic() - started
        assert r.returncode == 0, f"{r.stdout}\n{r.stderr[-5000:]}"
        out = r.stdout
        for line in (
            "succeeded:",
            "failed:",
            "failovers:",
            "paid twice:         0",
            "lost:               0",
            "ledger balanced:    yes",
        ):
            assert line in out, out
        counts = {
            k: int(v) for k, v in re.findall(r"^(succeeded|failed|accepted|not final):\s+(\d+)", out, re.M)
        }
        assert counts["accepted"] == 60 and counts["not final"] == 0
        assert counts["succeeded"] + counts["failed"] == 60 and counts["succeeded"] > 0
        assert "PROBLEM" not in r.stderr and "Traceback" not in r.stderr
        assert elapsed < 90
        # the demo's load (the recurring engine pays the demo's subscriptions too: rec-<run id>)
        done = cli.query(
            "SELECT COUNT(*) FROM payments"
            " WHERE status IN ('succeeded', 'failed') AND external_id NOT LIKE 'rec-%'"
        )
        assert done == [(60 * run,)]
    # the emulators of the second run did not repeat the first run's transaction ids
    assert cli.query("SELECT COUNT(*) FROM payments WHERE needs_attention") == [(0,)]

    v = cli.ok("ledger", "verify")
    assert "ledger balanced: yes" in v.stdout

    cli.execute("UPDATE accounts SET balance = balance + 1 WHERE id = (SELECT MIN(id) FROM accounts)")
    bad = cli.run("ledger", "verify")
    assert bad.returncode == 1, bad.stdout
    assert "ledger balanced: yes" not in bad.stdout
    assert "ledger does NOT balance" in bad.stderr


# -- emulator -----------------------------------------------------------------------------------


def test_serve_listens_for_iso8583_terminals(catalog: Cli) -> None:
    """PAYMUX_ISO8583_ENABLED: `paymux serve` opens the ISO 8583 listener, and `paymux emulator
    terminal` pays through it; a terminal file that is not valid stops serve before it listens."""
    config = catalog.cwd / "iso8583.yaml"
    config.write_text("terminals:\n  - {terminal: ATM00001, channel: atm-0001, service: mts-topup}\n")
    port, iso_port = free_port(), free_port()
    iso = {"PAYMUX_ISO8583_ENABLED": "true", "PAYMUX_ISO8583_PORT": str(iso_port)}
    env = {**iso, "PAYMUX_ISO8583_CONFIG": str(config)}

    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", iso_port), timeout=1):
            return True
        return False

    with catalog.background(
        "serve", "--port", str(port), "--no-workers", ready=listening, name="serve-iso", env=env
    ):
        pay = ("emulator", "terminal", "--port", str(iso_port), "--account", "9161234567", "--amount", "100")
        r = catalog.run(*pay)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "0210 field 39=00 (approved)" in r.stdout
        stranger = catalog.run(*pay, "--terminal", "ATM00009")
        assert stranger.returncode == 1 and "field 39=58" in stranger.stdout
    assert catalog.query("SELECT external_id, amount FROM payments") == [
        (f"iso8583:ATM00001:{dt.date.today():%Y%m%d}:000002", 10000)
    ]
    config.write_text("terminals:\n  - {terminal: ATM00001}\n")
    bad = catalog.run("serve", "--port", str(port), env=env)
    assert bad.returncode == 1 and "invalid ISO 8583 configuration" in bad.stderr


def test_emulator_jsonhttp_serves_check_and_pay(cli: Cli) -> None:
    port = free_port()
    check = {"txn_id": "t-1", "account": "9161234567", "amount": "10.00", "currency": "RUB"}
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
        cli.background(
            "emulator",
            "jsonhttp",
            "--port",
            str(port),
            ready=lambda: http.post("/check", json=check).status_code == 200,
            name="emulator",
        ),
    ):
        r = http.post("/check", json=check)
        assert r.json() == {"result": "ok", "info": {}}
        pay = {**check, "service": "X", "txn_date": "2026-01-01T00:00:00Z"}
        paid = http.post("/pay", json=pay).json()
        assert paid["result"] == "ok" and paid["status"] == "succeeded"
        status = http.post("/status", json={"txn_id": "t-1"}).json()
        assert status["status"] == "succeeded" and status["provider_txn_id"] == paid["provider_txn_id"]
        assert http.post("/status", json={"txn_id": "t-9"}).json()["status"] == "not_found"
        listed = http.get("/_emulator/transactions").json()
        assert [t["txn_id"] for t in listed["transactions"]] == ["t-1"] and listed["pay_calls"] == {"t-1": 1}
        assert http.post("/check", json={"txn_id": "t-2"}).status_code == 400
    assert "JSON/HTTP emulator on" in (cli.cwd / "emulator.out").read_text()


def test_emulator_bank_serves_debits_and_refunds(cli: Cli) -> None:
    port = free_port()
    config = cli.cwd / "bank.yaml"
    config.write_text('accounts:\n  "40817810000000000001": {currency: RUB, balance: 1500.00}\n')
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
        cli.background(
            "emulator",
            "bank",
            "--port",
            str(port),
            "--config",
            str(config),
            ready=lambda: http.get("/_emulator/state").status_code == 200,
            name="bank",
        ),
    ):
        debit = {"key": "d-1", "account": "40817810000000000001", "amount": "150.00", "currency": "RUB"}
        done = http.post("/debits", json=debit).json()
        assert done["result"] == "done" and done["reference"].startswith("BANK-")
        assert http.post("/debits", json=debit).json() == done
        refund = {"key": "r-1", "debit_key": "d-1", "amount": "150.01", "currency": "RUB"}
        assert http.post("/refunds", json=refund).json()["code"] == "amount_exceeds_debit"
        assert http.get("/operations/d-1").json()["result"] == "done"
        assert http.get("/operations/d-9").status_code == 404
        state = http.get("/_emulator/state").json()
        assert state["accounts"]["40817810000000000001"]["balance"] == "1350.00"
    out = (cli.cwd / "bank.out").read_text()
    assert "Bank emulator on" in out and "40817810000000000001: 1500.00 RUB" in out
    bad = cli.run("emulator", "bank", "--port", str(port), "--lost-answer-rate", "2")
    assert bad.returncode == 2 and "invalid emulator configuration" in bad.stderr


def test_catalog_import_library_shows_the_diff_then_applies(catalog: Cli, tmp_path: Path) -> None:
    cli = catalog
    lib = tmp_path / "lib.csv"
    lib.write_text("code,name,category,currency\nZ1,Zeta TV,tv,RUB\n", encoding="utf-8")
    shown = cli.ok("catalog", "import-library", str(lib), "--provider", "alpha")
    assert "added alpha-z1 (Z1)" in shown.stdout and "nothing was changed" in shown.stdout
    assert cli.query("SELECT COUNT(*) FROM services WHERE code = 'alpha-z1'") == [(0,)]
    applied = cli.ok("catalog", "import-library", str(lib), "--provider", "alpha", "--apply")
    assert "applied: 1 created" in applied.stdout, applied.stdout
    assert cli.query("SELECT name, category FROM services WHERE code = 'alpha-z1'") == [("Zeta TV", "tv")]
    lib.write_text("code,name,category,currency\nZ1,Zeta TV,tv,EURO\n", encoding="utf-8")
    refused = cli.run("catalog", "import-library", str(lib), "--provider", "alpha", "--apply")
    assert refused.returncode != 0 and "problem: row 2 (Z1)" in refused.stderr
