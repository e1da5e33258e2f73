"""Registers uploaded for reconciliation through the real upload paths: the admin API (multipart), the
back office's form (HTTP, and once from headless Chromium), in every format, under their own names, no
name extension or a misleading one; a file whose content is not the mapping's format is refused with a
message that says what it is."""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl
from sqlalchemy import select

from browser_support import chromium, needs_chromium, screenshot, serving_backoffice
from browser_support import login as browser_login
from harness import Env
from paymux.payments.models import Payment
from paymux.reconciliation.models import Reconciliation
from paymux.registers.build import build_register
from paymux.registers.schemas import TemplateConfig
from reconciliation_helpers import MAPPING, TZ, line_of, payments, provider, recon_env, set_mapping, write_csv
from test_backoffice_support import add_user, form_token, login

XLSX_MAPPING: dict[str, Any] = {
    "format": "xlsx",
    "id_column": "Txn",
    "amount_column": "Sum",
    "date_column": "Date",
    "account_column": "Account",
    "currency": "RUB",
}
DBF_MAPPING: dict[str, Any] = {
    "format": "dbf",
    "id_column": "TXN",
    "amount_column": "SUM",
    "account_column": "ACCOUNT",
    "currency": "RUB",
}
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def xlsx_register(ok: list[Payment]) -> bytes:
    """Their register as Excel builds it: real dates and numbers; the first amount 1.00 more."""
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["Txn", "Date", "Account", "Sum"])
    for i, p in enumerate(ok):
        assert p.final_at is not None
        amount = Decimal(p.amount + (100 if i == 0 else 0)).scaleb(-2)
        ws.append([p.id, p.final_at.astimezone(TZ).replace(tzinfo=None, microsecond=0), p.account, amount])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def csv_register(ok: list[Payment], tmp_path: Path) -> bytes:
    rows = [line_of(ok[0], amount=ok[0].amount + 100), *[line_of(p) for p in ok[1:]]]
    return write_csv(tmp_path / "their.csv", rows).read_bytes()


async def dbf_register(env: Env, tmp_path: Path) -> bytes:
    """Their register as a DBF (written by the hub's register writer: every payment as we have it)."""
    cfg = TemplateConfig.model_validate(
        {
            "columns": [
                {"field": "id", "name": "TXN"},
                {"field": "amount", "name": "SUM"},
                {"field": "account"},
            ]
        }
    )
    path = tmp_path / "their.dbf"
    await build_register(
        env.hub.read_sessions, await provider(env), "d", "daily", "dbf", cfg, env.extra["period"], path
    )
    return path.read_bytes()


async def counts(env: Env, recon_id: int) -> dict[str, int]:
    async with env.hub.read_sessions() as s:
        recon = await s.get(Reconciliation, recon_id)
        assert recon is not None
        return {k: v for k, v in recon.counts.items() if v}


async def test_every_format_through_the_admin_api(db_url: str, tmp_path: Path) -> None:
    async with recon_env(db_url, n=5) as env:
        ok = [p for p in await payments(env) if p.status == "succeeded"]
        files = {
            "xlsx": (XLSX_MAPPING, xlsx_register(ok), {"matched": len(ok) - 1, "amount_differs": 1}),
            "csv": (MAPPING, csv_register(ok, tmp_path), {"matched": len(ok) - 1, "amount_differs": 1}),
            "dbf": (DBF_MAPPING, await dbf_register(env, tmp_path), {"matched": len(ok)}),
        }

        async def upload(name: str, data: bytes, content_type: str) -> httpx.Response:
            return await env.http.post(
                "/api/v1/admin/providers/p1/reconciliations",
                files={"file": (name, data, content_type)},
                data={"date_from": env.extra["period"].first.isoformat()},
                headers=env.admin,
            )

        for fmt, (mapping, data, expected) in files.items():
            await set_mapping(env, mapping)
            # its own name, no extension at all, another format's extension (and content type)
            for name, ctype in (
                (f"реестр.{fmt}", "application/octet-stream"),
                ("register", ""),
                ("r.txt", "text/plain"),
            ):
                r = await upload(name, data, ctype)
                assert r.status_code == 201, (fmt, name, r.text)
                assert r.json()["file_format"] == fmt and r.json()["file_name"] == name
                assert await counts(env, r.json()["id"]) == expected, (fmt, name)

        # content that is not the mapping's format: a 422 that says what the file is; nothing stored
        async with env.hub.read_sessions() as s:
            before = len((await s.scalars(select(Reconciliation.id))).all())
        xml = b'<?xml version="1.0"?>\n<Document><Txn>1</Txn></Document>\n'
        for mapping, data, name, says in (
            (MAPPING, files["xlsx"][1], "register.csv", "but an Excel (xlsx) workbook"),
            (MAPPING, files["dbf"][1], "register.csv", "but a dBase (DBF) table"),
            (MAPPING, xml, "register.csv", "but an XML (or HTML) document"),
            (XLSX_MAPPING, files["csv"][1], "register.xlsx", "not an Excel (xlsx) workbook"),
            (XLSX_MAPPING, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "r.xls", "Excel 97-2003"),
            (DBF_MAPPING, files["xlsx"][1], "register.dbf", "but an Excel (xlsx) workbook"),
        ):
            await set_mapping(env, mapping)
            r = await upload(name, data, "application/octet-stream")
            assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
            assert says in r.json()["detail"] and r.json()["detail"].startswith(name), r.json()
        async with env.hub.read_sessions() as s:
            assert len((await s.scalars(select(Reconciliation.id))).all()) == before


async def _bo_upload(
    http: httpx.AsyncClient, day: dt.date, name: str, data: bytes, ctype: str
) -> httpx.Response:
    page = await http.get("/backoffice/reconciliation")
    return await http.post(
        "/backoffice/reconciliation",
        data={"csrf_token": form_token(page.text), "provider": "p1", "date_from": day.isoformat()},
        files={"file": (name, data, ctype)},
    )


async def test_back_office_form_over_http(db_url: str, tmp_path: Path) -> None:
    async with recon_env(db_url, n=5) as env, serving_backoffice(env.hub) as base:
        await add_user(env.hub, "anna", "accountant")
        ok = [p for p in await payments(env) if p.status == "succeeded"]
        day = env.extra["period"].first
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            assert (await login(http, "anna")).status_code == 303
            await set_mapping(env, XLSX_MAPPING)
            for name in ("register.xlsx", "register", "register.csv"):
                r = await _bo_upload(http, day, name, xlsx_register(ok), XLSX_TYPE)
                assert r.status_code == 303, r.text
                m = re.match(r"/backoffice/reconciliation/(\d+)", r.headers["location"])
                assert m, (name, r.headers["location"])
                assert await counts(env, int(m.group(1))) == {"matched": len(ok) - 1, "amount_differs": 1}
            await set_mapping(env, DBF_MAPPING)
            r = await _bo_upload(http, day, "REESTR", await dbf_register(env, tmp_path), "")
            m = re.match(r"/backoffice/reconciliation/(\d+)", r.headers["location"])
            assert m and await counts(env, int(m.group(1))) == {"matched": len(ok)}
            await set_mapping(env, MAPPING)
            r = await _bo_upload(http, day, "register", csv_register(ok, tmp_path), "text/csv")
            m = re.match(r"/backoffice/reconciliation/(\d+)", r.headers["location"])
            assert m and await counts(env, int(m.group(1))) == {"matched": len(ok) - 1, "amount_differs": 1}
            # an Excel workbook for a CSV mapping: the page says so
            r = await _bo_upload(http, day, "register.csv", xlsx_register(ok), "text/csv")
            assert r.status_code == 303 and r.headers["location"] == "/backoffice/reconciliation"
            shown = await http.get(r.headers["location"])
            assert "register.csv: the file is not CSV text" in shown.text
            assert "but an Excel (xlsx) workbook" in shown.text


@needs_chromium
async def test_back_office_upload_from_chromium(db_url: str, tmp_path: Path) -> None:
    async with recon_env(db_url, n=4) as env, serving_backoffice(env.hub) as base:
        await add_user(env.hub, "anna", "accountant")
        await set_mapping(env, XLSX_MAPPING)
        ok = [p for p in await payments(env) if p.status == "succeeded"]
        path = tmp_path / "реестр за день"  # no extension, as some banks' portals name them
        path.write_bytes(xlsx_register(ok))
        async with chromium() as browser:
            page = await browser.new_page()
            await browser_login(page, base, "anna")
            await page.goto(f"{base}/backoffice/reconciliation")
            await page.select_option("select[name=provider]", "p1")
            await page.fill("input[name=date_from]", env.extra["period"].first.isoformat())
            await page.set_input_files("input[name=file]", str(path))
            await page.click("form[enctype='multipart/form-data'] button[type=submit]")
            await page.wait_for_url(re.compile(r".*/backoffice/reconciliation/\d+$"))
            await screenshot(page, "reconciliation-upload-xlsx-without-extension")
            text = (
                await page.inner_text("main") if await page.query_selector("main") else await page.content()
            )
            assert "The register was reconciled." in text
            recon_id = int(re.search(r"/reconciliation/(\d+)", page.url).group(1))  # type: ignore[union-attr]
        assert await counts(env, recon_id) == {"matched": len(ok) - 1, "amount_differs": 1}
        async with env.hub.read_sessions() as s:
            recon = await s.get(Reconciliation, recon_id)
        assert recon is not None and recon.file_name == path.name and recon.file_format == "xlsx"


async def test_fetched_xlsx_register(db_url: str, tmp_path: Path) -> None:
    """The scheduled fetch stores the file it downloads without an extension too."""
    from paymux.reconciliation.worker import ReconciliationWorker
    from registers_servers import USER, SftpServer, free_port
    from test_reconciliation_fetch import SETTINGS, backdate_mapping, fetches

    async with recon_env(db_url, n=4) as env:
        ok = [p for p in await payments(env) if p.status == "succeeded"]
        sftp = SftpServer(tmp_path / "sftp", free_port())
        await sftp.start()
        try:
            (tmp_path / "sftp" / "in").mkdir(parents=True)
            day = env.extra["period"].first
            (tmp_path / "sftp" / "in" / f"p1_{day:%Y%m%d}.xlsx").write_bytes(xlsx_register(ok))
            source = {
                "kind": "sftp",
                "host": "127.0.0.1",
                "port": sftp.port,
                "username": USER,
                "private_key": sftp.client_private,
                "host_key": sftp.host_public,
                "directory": "in",
                "timeout_seconds": 5,
            }
            fetch = {
                "source": source,
                "file_name": "{provider}_{date:%Y%m%d}.xlsx",
                "schedule": {"at": "00:00", "catch_up": 1},
            }
            await set_mapping(env, {**XLSX_MAPPING, "fetch": fetch})
            await backdate_mapping(env)
            assert await ReconciliationWorker(env.hub, SETTINGS).run_once() == 1
            [f] = await fetches(env)
            assert f.status == "done", f.last_error
            assert f.reconciliation_id is not None
            assert await counts(env, f.reconciliation_id) == {"matched": len(ok) - 1, "amount_differs": 1}
        finally:
            await sftp.stop()
