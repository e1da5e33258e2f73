"""Reconciling xlsx and DBF registers (a DBF written by the registers' own writer, then edited by hand),
with mappings by header name and by position, skipped title and totals rows."""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import select

from paymux.errors import Problem
from paymux.reconciliation.models import ReconciliationLine
from paymux.registers.build import build_register
from paymux.registers.schemas import TemplateConfig
from reconciliation_helpers import TZ, payments, provider, recon_env, reconcile, set_mapping


async def kinds(env, recon_id: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    async with env.hub.read_sessions() as session:
        rows = await session.execute(
            select(ReconciliationLine.txn_ref, ReconciliationLine.kind).where(
                ReconciliationLine.reconciliation_id == recon_id
            )
        )
        return {ref: kind for ref, kind in rows}


async def test_xlsx_by_position_with_title_and_totals_rows(db_url: str, tmp_path: Path) -> None:
    async with recon_env(db_url, n=6) as env:
        await set_mapping(
            env,
            {
                "format": "xlsx",
                "header": False,
                "skip_rows": 3,  # a title, a blank row, the column titles
                "skip_footer": 1,  # the totals row
                "id_column": 1,
                "date_column": 2,
                "amount_column": 3,
                "account_column": 4,
                "currency": "RUB",
                "xlsx": {"sheet": "Реестр"},
            },
        )
        ok = [p for p in await payments(env) if p.status == "succeeded"]
        wb = openpyxl.Workbook()
        ws = wb.active
        assert ws is not None
        ws.title = "Реестр"
        ws.append(["Реестр платежей за день"])
        ws.append([])
        ws.append(["N", "Дата", "Сумма", "Счёт"])
        for i, p in enumerate(ok[:-1]):
            assert p.final_at is not None
            amount: float | int = p.amount / 100 if i % 2 else p.amount // 100  # floats, and whole roubles
            if i % 2 == 0 and p.amount % 100 == 0:
                amount = p.amount // 100
            ws.append(
                [p.id, p.final_at.astimezone(TZ).replace(tzinfo=None, microsecond=0), amount, int(p.account)]
            )
        ws.append(["Итого", None, sum(p.amount for p in ok) / 100, None])
        path = tmp_path / "register.xlsx"
        wb.save(path)
        recon = await reconcile(env, path)
        got = await kinds(env, recon.id)
        assert got.pop(str(ok[-1].id)) == "missing_theirs"
        for i, p in enumerate(ok[:-1]):
            exact = i % 2 == 1 or p.amount % 100 == 0
            assert got[str(p.id)] == ("matched" if exact else "amount_differs"), (i, p.amount)
        async with env.hub.read_sessions() as session:
            line = await session.scalar(
                select(ReconciliationLine).where(
                    ReconciliationLine.reconciliation_id == recon.id,
                    ReconciliationLine.txn_ref == str(ok[1].id),
                )
            )
        assert line is not None and line.account == ok[1].account
        assert line.provider_at == ok[1].final_at.replace(microsecond=0)  # read as Moscow time


def _patch_dbf(path: Path, ids: list[int], delete: int, change: int) -> None:
    """Mark the record of payment ``delete`` deleted and add 1.00 to the amount of payment ``change``."""
    raw = bytearray(path.read_bytes())
    count, header_len, record_len = struct.unpack("<IHH", raw[4:12])
    assert count == len(ids)
    fields, pos, offset = {}, 32, 1
    while raw[pos] != 0x0D:
        name = raw[pos : pos + 11].split(b"\0")[0].decode()
        fields[name] = (offset, raw[pos + 16])
        offset += raw[pos + 16]
        pos += 32
    for n in range(count):
        start = header_len + n * record_len
        o, w = fields["ID"]
        pid = int(raw[start + o : start + o + w])
        if pid == delete:
            raw[start] = ord("*")
        if pid == change:
            o, w = fields["AMOUNT"]
            value = Decimal(raw[start + o : start + o + w].decode().strip()) + 1
            raw[start + o : start + o + w] = f"{value:.2f}".rjust(w).encode()
    path.write_bytes(bytes(raw))


async def test_dbf_written_by_the_register_writer(db_url: str, tmp_path: Path) -> None:
    async with recon_env(db_url, n=7) as env:
        ok = [p for p in await payments(env) if p.status == "succeeded"]
        cfg = TemplateConfig.model_validate(
            {
                "columns": [
                    {"field": "id"},
                    {"field": "final_date"},
                    {"field": "account"},
                    {"field": "amount"},
                    {"field": "service_name", "name": "SERVICE"},
                    {"field": "status"},
                ],
                "dbf": {"encoding": "cp866"},
            }
        )
        path = tmp_path / "register.dbf"
        res = await build_register(
            env.hub.read_sessions,
            await provider(env),
            "daily",
            "daily",
            "dbf",
            cfg,
            env.extra["period"],
            path,
        )
        assert res.rows == len(ok)
        ids = [p.id for p in sorted(ok, key=lambda p: (p.final_at, p.id))]
        _patch_dbf(path, ids, delete=ok[0].id, change=ok[1].id)
        await set_mapping(
            env,
            {
                "format": "dbf",
                "id_column": "ID",
                "amount_column": "AMOUNT",
                "date_column": "FINAL_DATE",
                "status_column": "STATUS",
                "account_column": "account",  # names are case-insensitive
                "currency": "RUB",
            },
        )
        recon = await reconcile(env, path)
        assert recon.rows == len(ok) - 1  # the deleted record is not a line
        got = await kinds(env, recon.id)
        assert got[str(ok[0].id)] == "missing_theirs"
        assert got[str(ok[1].id)] == "amount_differs"
        assert sorted(k for k, v in got.items() if v == "matched") == sorted(str(p.id) for p in ok[2:])
        async with env.hub.read_sessions() as session:
            line = await session.scalar(
                select(ReconciliationLine).where(
                    ReconciliationLine.reconciliation_id == recon.id,
                    ReconciliationLine.txn_ref == str(ok[2].id),
                )
            )
        assert line is not None and line.provider_at is not None
        # a D field is a local day: midnight in Moscow
        assert line.provider_at.astimezone(TZ).time() == dt.time(0)
        assert line.provider_at.astimezone(TZ).date() == env.extra["period"].first


async def test_broken_files_are_refused(db_url: str, tmp_path: Path) -> None:
    async with recon_env(db_url, n=1) as env:
        await set_mapping(env, {"format": "dbf", "id_column": "ID", "amount_column": "AMOUNT"})
        bad = tmp_path / "bad.dbf"
        bad.write_bytes(b"Txn;Sum\n1;2\n")
        with pytest.raises(Problem, match="not a dBase"):
            await reconcile(env, bad)
        await set_mapping(env, {"format": "xlsx", "id_column": "ID", "amount_column": "AMOUNT"})
        with pytest.raises(Problem, match="not an Excel"):
            await reconcile(env, bad)
