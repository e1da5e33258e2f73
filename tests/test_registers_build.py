"""Register files: CSV, TXT, XLSX, DBF built from real payments, read back by independent readers.

Payments go through the hub (channel API, emulated providers, worker); only their times are then
moved into yesterday (provider time) so that the period is closed.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dbfread
import gnupg
import openpyxl
import pytest
from sqlalchemy import select, update

from harness import Env, hub_env
from paymux.catalog.models import Channel, Provider
from paymux.money import format_amount
from paymux.payments.models import Payment
from paymux.registers.build import BuildResult, build_register
from paymux.registers.encrypt import EncryptionError, encrypt_file
from paymux.registers.schedule import Period
from paymux.registers.schemas import Encryption, TemplateConfig
from registers_helpers import TZ, catalog, expected_rows, make_payments, place_in_period, yesterday

COLUMNS = [
    {"field": "number"},
    {"field": "id"},
    {"field": "external_id"},
    {"field": "provider_txn_id"},
    {"field": "created_at"},
    {"field": "final_at"},
    {"field": "account"},
    {"field": "amount"},
    {"field": "fee"},
    {"field": "remuneration"},
    {"field": "currency"},
    {"field": "service"},
    {"field": "service_name"},
    {"field": "channel"},
    {"field": "status"},
]


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[Env]:
    # account ...05 is refused by p1 and fails over to p2: it must not be in p1's register
    emus = {"p1": {"accounts": {"9001234505": {"pay": "fatal:5:account not found"}}}}
    async with hub_env(db_url, catalog=catalog(), emulators=emus) as e:
        ids = await make_payments(e, 9)
        period = yesterday()
        await place_in_period(e.hub, ids, period)
        # one more payment of p1, final at the first instant of today: outside yesterday's register
        outside = (await e.pay(account="9001234599", amount="5.00")).json()["id"]
        assert (await e.wait_final(outside))["status"] == "succeeded"
        async with e.hub.sessions() as session:
            await session.execute(update(Payment).where(Payment.id == outside).values(final_at=period.end))
            await session.commit()
        e.extra["outside"] = outside
        yield e


async def _provider(env: Env, code: str = "p1") -> Provider:
    async with env.hub.read_sessions() as session:
        p = await session.scalar(select(Provider).where(Provider.code == code))
    assert p is not None
    return p


async def build(
    env: Env, fmt: str, cfg: dict[str, Any], path: Path, period: Period | None = None, **kw: Any
) -> BuildResult:
    return await build_register(
        env.hub.read_sessions,
        await _provider(env),
        "daily",
        "daily",
        fmt,
        TemplateConfig.model_validate(cfg),
        period or yesterday(),
        path,
        **kw,
    )


def _local(t: dt.datetime) -> str:
    return t.astimezone(TZ).strftime("%Y-%m-%d %H:%M:%S")


async def test_csv_register_matches_payments(env: Env, tmp_path: Path) -> None:
    cfg = {"columns": COLUMNS, "csv": {"encoding": "cp1251", "delimiter": ";", "line_ending": "crlf"}}
    res = await build(env, "csv", cfg, tmp_path / "r.csv")
    expected = await expected_rows(env.hub, "p1", yesterday())
    codes = await _channel_codes(env)
    assert len(expected) == 8  # nine made, one failed over to p2; the one final today is outside
    assert env.extra["outside"] not in {p.id for p in expected}
    raw = (tmp_path / "r.csv").read_bytes()
    assert raw.count(b"\r\n") == len(expected) + 2 and b"\n" not in raw.replace(b"\r\n", b"")
    rows = list(csv.reader(io.StringIO(raw.decode("cp1251"), newline=""), delimiter=";"))
    assert rows[0][:3] == ["No", "Payment ID", "External ID"]
    body, total = rows[1:-1], rows[-1]
    assert [int(r[1]) for r in body] == [p.id for p in expected]
    for n, (r, p) in enumerate(zip(body, expected, strict=True), 1):
        assert r == [
            str(n),
            str(p.id),
            p.external_id,
            p.provider_txn_id,
            _local(p.created_at),
            _local(p.final_at),
            p.account,
            format_amount(p.amount, "RUB"),
            format_amount(p.fee, "RUB"),
            format_amount(p.remuneration, "RUB"),
            "RUB",
            "topup",
            "Пополнение мобильного",
            codes[p.channel_id],
            "succeeded",
        ]
    assert total[0] == str(len(expected)) and total[1] == "Total"
    assert total[7] == format_amount(sum(p.amount for p in expected), "RUB")
    assert total[9] == format_amount(sum(p.remuneration for p in expected), "RUB")
    assert res.rows == len(expected)
    assert res.totals["by_currency"]["RUB"]["amount"] == sum(p.amount for p in expected)
    assert res.file_name == f"p1_{yesterday().key}.csv"


async def _channel_codes(env: Env) -> dict[int, str]:
    async with env.hub.read_sessions() as session:
        return dict((await session.execute(select(Channel.id, Channel.code))).all())  # type: ignore[arg-type]


async def test_channel_codes_follow_the_payment(env: Env, tmp_path: Path) -> None:
    await build(
        env,
        "csv",
        {"columns": [{"field": "id"}, {"field": "channel"}, {"field": "agent"}]},
        tmp_path / "c.csv",
    )
    codes = await _channel_codes(env)
    expected = {p.id: codes[p.channel_id] for p in await expected_rows(env.hub, "p1", yesterday())}
    rows = list(csv.reader(io.StringIO((tmp_path / "c.csv").read_text("utf-8"), newline=""), delimiter=";"))[
        1:-1
    ]
    assert {int(r[0]): r[1] for r in rows} == expected
    assert {r[2] for r in rows if r[1] == "term"} == {"dealer"} and {r[2] for r in rows if r[1] == "web"} == {
        ""
    }


async def test_txt_line_template(env: Env, tmp_path: Path) -> None:
    cfg = {
        "columns": [{"field": "id"}, {"field": "account"}, {"field": "amount"}, {"field": "final_at"}],
        "csv": {
            "line_template": "{id}|{account:>12}|{amount:>10}|{final_at:%d.%m.%Y %H:%M}",
            "header_template": "REGISTER {provider} {date:%d.%m.%Y}",
            "footer_template": "TOTAL {count} {total_amount}",
            "line_ending": "lf",
        },
        "file_name": "{provider}_{date:%Y%m%d}.{ext}",
    }
    res = await build(env, "csv", cfg, tmp_path / "r.txt")
    period = yesterday()
    assert res.file_name == f"p1_{period.first:%Y%m%d}.txt" and res.content_type == "text/plain"
    lines = (tmp_path / "r.txt").read_text("utf-8").split("\n")
    expected = await expected_rows(env.hub, "p1", period)
    assert lines[0] == f"REGISTER p1 {period.first:%d.%m.%Y}"
    assert lines[-1] == ""  # final newline
    assert lines[-2] == f"TOTAL {len(expected)} {format_amount(sum(p.amount for p in expected), 'RUB')}"
    for line, p in zip(lines[1:-2], expected, strict=True):
        amount = format_amount(p.amount, "RUB")
        assert line == f"{p.id}|{p.account:>12}|{amount:>10}|{p.final_at.astimezone(TZ):%d.%m.%Y %H:%M}"


async def test_xlsx_register_reads_back_and_is_byte_identical(env: Env, tmp_path: Path) -> None:
    cfg = {"columns": COLUMNS, "xlsx": {"sheet_name": "Daily"}}
    await build(env, "xlsx", cfg, tmp_path / "a.xlsx")
    await asyncio.sleep(2.1)  # zip entry times have a 2 s resolution: make sure "now" differs
    await build(env, "xlsx", cfg, tmp_path / "b.xlsx")
    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()
    wb = openpyxl.load_workbook(tmp_path / "a.xlsx", read_only=True)
    ws = wb["Daily"]
    rows = list(ws.iter_rows(values_only=True))
    expected = await expected_rows(env.hub, "p1", yesterday())
    assert rows[0][:2] == ("No", "Payment ID")
    body, total = rows[1:-1], rows[-1]
    assert len(body) == len(expected)
    for n, (r, p) in enumerate(zip(body, expected, strict=True), 1):
        assert r[0] == n and r[1] == p.id and r[2] == p.external_id and r[6] == p.account
        assert r[4] == p.created_at.astimezone(TZ).replace(tzinfo=None, microsecond=0)
        assert r[5] == p.final_at.astimezone(TZ).replace(tzinfo=None, microsecond=0)
        assert Decimal(str(r[7])) == Decimal(p.amount).scaleb(-2)
        assert Decimal(str(r[9])) == Decimal(p.remuneration).scaleb(-2)
        assert r[12] == "Пополнение мобильного"
    assert total[1] == "Total" and total[0] == len(expected)
    assert Decimal(str(total[7])) == Decimal(sum(p.amount for p in expected)).scaleb(-2)
    assert wb.properties.modified == yesterday().end.replace(tzinfo=None)
    wb.close()


@pytest.mark.parametrize("encoding", ["cp866", "cp1251"])
async def test_dbf_register_reads_back(env: Env, tmp_path: Path, encoding: str) -> None:
    cfg = {
        "columns": [
            {"field": "id", "name": "PAY_ID"},
            {"field": "account", "width": 12},
            {"field": "amount"},
            {"field": "remuneration", "name": "REWARD"},
            {"field": "final_date"},
            {"field": "final_at", "name": "FINAL_TIME"},
            {"field": "service_name", "name": "SERVICE", "width": 30},
        ],
        "dbf": {"encoding": encoding},
        "file_name": "{provider}_{date:%Y%m%d}.dbf",
    }
    await build(env, "dbf", cfg, tmp_path / "a.dbf")
    await build(env, "dbf", cfg, tmp_path / "b.dbf")
    raw = (tmp_path / "a.dbf").read_bytes()
    assert raw == (tmp_path / "b.dbf").read_bytes()
    assert raw[29] == {"cp866": 0x65, "cp1251": 0xC9}[encoding] and raw[-1:] == b"\x1a"
    expected = await expected_rows(env.hub, "p1", yesterday())
    table = dbfread.DBF(str(tmp_path / "a.dbf"))  # picks the code page from the language driver byte
    assert table.encoding == encoding
    assert table.field_names == [
        "PAY_ID",
        "ACCOUNT",
        "AMOUNT",
        "REWARD",
        "FINAL_DATE",
        "FINAL_TIME",
        "SERVICE",
    ]
    records = list(table)
    assert len(records) == len(expected) == len(table)
    for rec, p in zip(records, expected, strict=True):
        assert rec["PAY_ID"] == p.id and rec["ACCOUNT"] == p.account
        assert Decimal(str(rec["AMOUNT"])).quantize(Decimal("0.01")) == Decimal(p.amount).scaleb(-2)
        assert Decimal(str(rec["REWARD"])).quantize(Decimal("0.01")) == Decimal(p.remuneration).scaleb(-2)
        assert rec["FINAL_DATE"] == p.final_at.astimezone(TZ).date()
        assert rec["FINAL_TIME"] == _local(p.final_at)
        assert rec["SERVICE"] == "Пополнение мобильного"


async def test_empty_period_gives_valid_files(env: Env, tmp_path: Path) -> None:
    old = Period("daily", dt.date(2020, 1, 1), TZ)
    cols = [{"field": "id"}, {"field": "amount"}]
    res = await build(env, "dbf", {"columns": cols}, tmp_path / "e.dbf", period=old)
    assert res.rows == 0 and len(dbfread.DBF(str(tmp_path / "e.dbf"))) == 0
    await build(env, "xlsx", {"columns": cols}, tmp_path / "e.xlsx", period=old)
    rows = list(
        openpyxl.load_workbook(tmp_path / "e.xlsx", read_only=True).active.iter_rows(values_only=True)
    )
    assert rows == [("Payment ID", "Amount"), ("Total", None)]
    await build(
        env,
        "csv",
        {"columns": cols, "totals": False, "csv": {"line_ending": "lf"}},
        tmp_path / "e.csv",
        period=old,
    )
    assert (tmp_path / "e.csv").read_text() == "Payment ID;Amount\n"


async def test_paging_with_equal_final_times_keeps_every_row_once(env: Env, tmp_path: Path) -> None:
    period = yesterday()
    moment = period.start + dt.timedelta(hours=5)
    async with env.hub.sessions() as session:
        await session.execute(
            update(Payment)
            .where(Payment.final_at >= period.start, Payment.final_at < period.end)
            .values(final_at=moment)
        )
        await session.commit()
    res = await build(env, "csv", {"columns": [{"field": "id"}], "totals": False}, tmp_path / "p.csv", page=3)
    ids = [int(x) for x in (tmp_path / "p.csv").read_bytes().decode().split("\r\n")[1:-1]]
    expected = [p.id for p in await expected_rows(env.hub, "p1", period)]
    assert ids == sorted(expected) and res.rows == len(expected) == 8


async def test_minor_units_and_decimal_comma(env: Env, tmp_path: Path) -> None:
    cols = [{"field": "id"}, {"field": "amount"}]
    await build(env, "csv", {"columns": cols, "amount_format": "minor", "totals": False}, tmp_path / "m.csv")
    await build(
        env, "csv", {"columns": cols, "csv": {"decimal_separator": ","}, "totals": False}, tmp_path / "c.csv"
    )
    expected = {p.id: p.amount for p in await expected_rows(env.hub, "p1", yesterday())}
    minor = dict(line.split(";") for line in (tmp_path / "m.csv").read_bytes().decode().split("\r\n")[1:-1])
    comma = dict(line.split(";") for line in (tmp_path / "c.csv").read_bytes().decode().split("\r\n")[1:-1])
    assert {int(k): int(v) for k, v in minor.items()} == expected
    assert {int(k): v for k, v in comma.items()} == {
        k: format_amount(v, "RUB").replace(".", ",") for k, v in expected.items()
    }


def _amount_text(minor: int, amount_format: str, separator: str) -> str:
    """How a register must show an amount: minor units, or major units with the decimal separator."""
    return str(minor) if amount_format == "minor" else format_amount(minor, "RUB").replace(".", separator)


@pytest.mark.parametrize(("amount_format", "separator"), [("minor", "."), ("decimal", ",")])
async def test_amount_format_and_separator_in_every_format(
    env: Env, tmp_path: Path, amount_format: str, separator: str
) -> None:
    """Every amount in every format follows ``amount_format`` and the decimal separator: free-text lines
    and footers with format specs, CSV with its totals row, XLSX cells, DBF numeric fields."""
    expected = await expected_rows(env.hub, "p1", yesterday())
    shown = {p.id: _amount_text(p.amount, amount_format, separator) for p in expected}
    total = _amount_text(sum(p.amount for p in expected), amount_format, separator)
    fees = _amount_text(sum(p.fee for p in expected), amount_format, separator)
    base: dict[str, Any] = {
        "columns": [{"field": "id"}, {"field": "amount"}, {"field": "fee"}],
        "amount_format": amount_format,
        "csv": {"decimal_separator": separator, "line_ending": "lf"},
    }

    txt = {
        **base,
        "csv": {
            **base["csv"],
            "line_template": "{id:>8}|{amount:>14}|{amount:*<14}|{amount}|{fee:014}",
            "footer_template": "TOTAL {count:>4} {total_amount:>16} {total_fee:>12} {total_amount}",
        },
    }
    await build(env, "csv", txt, tmp_path / "r.txt")
    lines = (tmp_path / "r.txt").read_text("utf-8").split("\n")
    assert lines[-1] == ""
    for line, p in zip(lines[:-2], expected, strict=True):
        fee = _amount_text(p.fee, amount_format, separator)
        assert line == f"{p.id:>8}|{shown[p.id]:>14}|{shown[p.id]:*<14}|{shown[p.id]}|{fee:0>14}"
    assert lines[-2] == f"TOTAL {len(expected):>4} {total:>16} {fees:>12} {total}"

    await build(env, "csv", base, tmp_path / "r.csv")
    rows = list(csv.reader(io.StringIO((tmp_path / "r.csv").read_text("utf-8"), newline=""), delimiter=";"))
    assert {int(r[0]): r[1] for r in rows[1:-1]} == shown
    assert rows[-1] == ["Total", total, fees]

    await build(env, "xlsx", base, tmp_path / "r.xlsx")
    wb = openpyxl.load_workbook(tmp_path / "r.xlsx", read_only=True)
    cells = list(wb.active.iter_rows(values_only=True))
    wb.close()
    as_number = (lambda m: m) if amount_format == "minor" else (lambda m: Decimal(m).scaleb(-2))
    assert {r[0]: Decimal(str(r[1])) for r in cells[1:-1]} == {p.id: as_number(p.amount) for p in expected}
    assert cells[-1][0] == "Total"
    assert Decimal(str(cells[-1][1])) == as_number(sum(p.amount for p in expected))

    await build(env, "dbf", base, tmp_path / "r.dbf")
    table = dbfread.DBF(str(tmp_path / "r.dbf"))
    assert {rec["ID"]: Decimal(str(rec["AMOUNT"])) for rec in table} == {
        p.id: as_number(p.amount) for p in expected
    }


# --- OpenPGP ----------------------------------------------------------------------------------------------


def _keypair(home: Path, email: str, passphrase: str | None = None) -> tuple[gnupg.GPG, str]:
    gpg = gnupg.GPG(gnupghome=str(home))
    spec = gpg.gen_key_input(
        key_type="EDDSA",
        key_curve="ed25519",
        subkey_type="ECDH",
        subkey_curve="cv25519",
        name_email=email,
        passphrase=passphrase,
        no_protection=passphrase is None,
    )
    key = gpg.gen_key(spec)
    assert key.fingerprint, key.stderr
    return gpg, key.fingerprint


@pytest.fixture
def short_tmp() -> Any:
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="pmxt-"))  # gpg-agent's socket path must stay short
    yield d
    import subprocess

    for home in d.iterdir():
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)
    shutil.rmtree(d, ignore_errors=True)


async def test_encrypted_and_signed_register_decrypts_to_the_plain_one(
    env: Env, tmp_path: Path, short_tmp: Path
) -> None:
    (short_tmp / "prov").mkdir(mode=0o700)
    (short_tmp / "ours").mkdir(mode=0o700)
    provider_gpg, provider_fp = _keypair(short_tmp / "prov", "registers@provider.test")
    our_gpg, our_fp = _keypair(short_tmp / "ours", "hub@paymux.test", passphrase="s3cret pass")
    provider_gpg.import_keys(our_gpg.export_keys(our_fp))
    enc = Encryption(
        public_key=provider_gpg.export_keys(provider_fp),
        sign_key=our_gpg.export_keys(our_fp, secret=True, passphrase="s3cret pass"),
        sign_passphrase="s3cret pass",
    )
    cfg = {"columns": COLUMNS}
    await build(env, "dbf", cfg, tmp_path / "plain.dbf")
    encrypt_file(tmp_path / "plain.dbf", tmp_path / "r.dbf.pgp", enc)
    data = (tmp_path / "r.dbf.pgp").read_bytes()
    assert data != (tmp_path / "plain.dbf").read_bytes() and not data.startswith(b"-----BEGIN")
    result = provider_gpg.decrypt(data, always_trust=True)
    assert result.ok, result.status
    assert result.data == (tmp_path / "plain.dbf").read_bytes()
    assert result.valid and result.fingerprint == our_fp

    # armored, unsigned
    encrypt_file(
        tmp_path / "plain.dbf", tmp_path / "r.asc", Encryption(public_key=enc.public_key, armor=True)
    )
    armored = (tmp_path / "r.asc").read_text()
    assert armored.startswith("-----BEGIN PGP MESSAGE-----")
    assert provider_gpg.decrypt(armored).data == (tmp_path / "plain.dbf").read_bytes()

    with pytest.raises(EncryptionError):
        encrypt_file(tmp_path / "plain.dbf", tmp_path / "x.pgp", Encryption(public_key="not a key"))


async def test_timezone_decides_the_period(env: Env, tmp_path: Path) -> None:
    """The same instants fall into a different day for a provider in another timezone."""
    period = yesterday()
    expected = await expected_rows(env.hub, "p1", period)
    last = expected[-1]
    assert last.final_at == period.end - dt.timedelta(microseconds=1)
    vladivostok = ZoneInfo("Asia/Vladivostok")  # 7 hours ahead of Moscow: the last payment is 'today' there
    async with env.hub.sessions() as session:
        await session.execute(
            update(Provider).where(Provider.code == "p1").values(timezone="Asia/Vladivostok")
        )
        await session.commit()
    res = await build(
        env,
        "csv",
        {"columns": [{"field": "id"}]},
        tmp_path / "v.csv",
        period=Period("daily", period.first, vladivostok),
    )
    ids = [int(x) for x in (tmp_path / "v.csv").read_bytes().decode().split("\r\n")[1:-2]]
    assert last.id not in ids and res.rows == len(ids)
