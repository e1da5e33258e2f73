"""Reconciliation over the admin API (problem+json errors, masked secrets, results, resolve, report read
back with openpyxl) and in the back office (upload, result, resolution form, report, mapping form)."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl

from harness import Env
from paymux.auth.tokens import issue_token
from paymux.auth.user_models import User
from reconciliation_helpers import MAPPING, line_of, money, payments, recon_env, write_csv
from test_backoffice_support import add_user, login


async def token_for(env: Env, username: str, role: str) -> dict[str, str]:
    user = await add_user(env.hub, username, role)
    async with env.hub.sessions() as s:
        u = await s.get(User, user.id)
        assert u is not None
        token, _ = await issue_token(s, u, "test", None)
        await s.commit()
    return {"Authorization": f"Bearer {token}"}


def their_register(ok: list[Any], tmp_path: Path) -> Path:
    rows = [
        line_of(ok[0], amount=ok[0].amount + 100),
        ["99999999", "21.11.2026 10:00:00", "9009999999", money(777_00), "OK"],
        *[line_of(p) for p in ok[2:]],
    ]
    return write_csv(tmp_path / "их реестр.csv", rows)


async def test_admin_api(db_url: str, tmp_path: Path) -> None:
    async with recon_env(db_url, n=6) as env:
        http = env.http
        base = "/api/v1/admin"
        fin = await token_for(env, "fin", "financial_specialist")
        acc = await token_for(env, "acc", "accountant")
        ok = [p for p in await payments(env) if p.status == "succeeded"]
        path = their_register(ok, tmp_path)

        def upload(headers: dict[str, str], data: bytes | None = None, **form: str) -> Any:
            files = {"file": (path.name, data if data is not None else path.read_bytes(), "text/csv")}
            return http.post(
                f"{base}/providers/p1/reconciliations",
                files=files,
                data={"date_from": env.extra["period"].first.isoformat(), **form},
                headers=headers,
            )

        r = await upload(acc)
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/no-mapping")
        mapping = {
            **MAPPING,
            "fetch": {
                "source": {
                    "kind": "sftp",
                    "host": "127.0.0.1",
                    "username": "u",
                    "password": "s3cret",
                    "insecure_skip_host_key": True,
                },
            },
        }
        r = await http.put(f"{base}/providers/p1/reconciliation-mapping", json=mapping, headers=acc)
        assert r.status_code == 403  # accountants do not configure
        r = await http.put(
            f"{base}/providers/p1/reconciliation-mapping", json={**mapping, "id_kind": "theirs"}, headers=fin
        )
        assert r.status_code == 422 and "id_kind" in r.json()["detail"]
        r = await http.put(f"{base}/providers/p1/reconciliation-mapping", json=mapping, headers=fin)
        assert r.status_code == 200, r.text
        assert r.json()["fetch"]["source"]["password"] == "***"
        again = r.json()
        again["amount_column"] = "Sum"
        r = await http.put(f"{base}/providers/p1/reconciliation-mapping", json=again, headers=fin)
        assert r.status_code == 200
        async with env.hub.read_sessions() as s:
            from paymux.reconciliation.service import load_mapping

            cfg = await load_mapping(s, ok[0].provider_id)
        assert cfg is not None and cfg.fetch is not None and cfg.fetch.source.password == "s3cret"  # *** kept

        r = await upload(acc, data=b"Txn;Date;Account;Sum;State\n1;x;1;1,00;OK\n")
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert "line 2: the date 'x'" in r.json()["detail"]
        r = await http.get(f"{base}/reconciliations", headers=acc)
        assert r.json() == []  # nothing stored
        r = await upload(acc, date_to="2000-01-01")
        assert r.status_code == 422 and "ends before it starts" in r.json()["detail"]

        r = await upload(acc)
        assert r.status_code == 201, r.text
        recon = r.json()
        assert recon["file_name"] == path.name
        assert recon["counts"] == {
            "matched": len(ok) - 2,
            "amount_differs": 1,
            "status_differs": 0,
            "missing_ours": 1,
            "missing_theirs": 1,
            "duplicate": 0,
        }
        assert recon["open_discrepancies"] == 3
        rid = recon["id"]
        r = await http.get(f"{base}/reconciliations/{rid}/lines?kind=discrepancies", headers=acc)
        lines = {x["kind"]: x for x in r.json()}
        assert set(lines) == {"amount_differs", "missing_ours", "missing_theirs"}
        assert lines["missing_ours"]["actions"] == ["post", "accept"]
        assert lines["missing_theirs"]["payment_id"] == ok[1].id
        r = await http.get(f"{base}/reconciliations/{rid}/lines?kind=nonsense", headers=acc)
        assert r.status_code == 422

        r = await http.post(
            f"{base}/reconciliations/{rid}/resolve",
            json={"action": "accept", "line_ids": [lines["amount_differs"]["id"]]},
            headers=acc,
        )
        assert r.status_code == 422 and "needs a reason" in r.json()["detail"]
        r = await http.post(
            f"{base}/reconciliations/{rid}/resolve",
            json={"action": "post", "line_ids": [lines["missing_ours"]["id"]]},
            headers=fin,
        )
        assert r.status_code == 403  # financial specialists do not resolve
        for body in (
            {"action": "post", "line_ids": [lines["missing_ours"]["id"]]},
            {"action": "cancel", "line_ids": [lines["missing_theirs"]["id"]]},
            {"action": "accept", "line_ids": [lines["amount_differs"]["id"]], "reason": "rounding"},
        ):
            r = await http.post(f"{base}/reconciliations/{rid}/resolve", json=body, headers=acc)
            assert r.status_code == 200 and r.json()["done"] == 1, r.text
            r = await http.post(f"{base}/reconciliations/{rid}/resolve", json=body, headers=acc)
            assert r.json()["done"] == 0  # a second click does nothing
        r = await http.get(f"{base}/reconciliations/{rid}", headers=acc)
        assert r.json()["open_discrepancies"] == 0

        r = await http.get(f"{base}/reconciliations/{rid}/report", headers=acc)
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxml")
        wb = openpyxl.load_workbook(io.BytesIO(r.content))
        summary = {row[0]: row[1:] for row in wb["Summary"].iter_rows(values_only=True) if row and row[0]}
        assert summary["Rows"][0] == len(ok)
        assert summary["amount differs"][:2] == (1, 1)
        assert summary["missing ours"][:2] == (1, 1)
        rows = list(wb["Lines"].iter_rows(values_only=True))
        assert rows[0][:3] == ("Line", "Class", "Transaction")
        assert len(rows) == 1 + len(ok) + 1  # their lines and our missing one
        posted = next(x for x in rows if x[2] == "99999999")
        assert (posted[1], posted[5], posted[13]) == ("missing ours", 777, "posted")
        changed = next(x for x in rows if x[2] == str(ok[0].id))
        assert Decimal(str(changed[7])) == Decimal("1.00") and changed[14] == "rounding"

        r = await http.get(f"{base}/reconciliations/999999", headers=acc)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
        r = await http.get(f"{base}/reconciliation-fetches", headers=acc)
        assert r.status_code == 200 and r.json() == []


async def test_back_office(db_url: str, tmp_path: Path) -> None:
    async with recon_env(db_url, n=6) as env:
        from paymux.api.app import create_app
        from paymux.backoffice.settings import BackofficeSettings

        app = create_app(env.hub)
        app.state.backoffice_settings = BackofficeSettings(cookie_secure=False)
        await add_user(env.hub, "anna", "accountant")
        await add_user(env.hub, "fiona", "financial_specialist")
        ok = [p for p in await payments(env) if p.status == "succeeded"]
        path = their_register(ok, tmp_path)
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as fin,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as acc,
        ):
            assert (await login(fin, "fiona")).status_code == 303
            assert (await login(acc, "anna")).status_code == 303
            from test_backoffice_support import form_token

            page = await fin.get("/backoffice/reconciliation-mappings/p1")
            assert page.status_code == 200 and "Not configured yet" in page.text
            r = await fin.post(
                "/backoffice/reconciliation-mappings/p1",
                data={"csrf_token": form_token(page.text), "mapping": '{"format": "csv"'},
            )
            assert r.status_code == 422 and "not valid JSON" in r.text
            import json

            r = await fin.post(
                "/backoffice/reconciliation-mappings/p1",
                data={
                    "csrf_token": form_token(page.text),
                    "mapping": json.dumps({**MAPPING, "currency": "XXX"}),
                },
            )
            assert r.status_code == 422 and "unknown currency" in r.text
            r = await fin.post(
                "/backoffice/reconciliation-mappings/p1",
                data={"csrf_token": form_token(page.text), "mapping": json.dumps(MAPPING)},
            )
            assert r.status_code == 303

            page = await acc.get("/backoffice/reconciliation")
            assert page.status_code == 200 and "Import a provider&#39;s register" in page.text
            token = form_token(page.text)
            r = await acc.post(
                "/backoffice/reconciliation",
                data={
                    "csrf_token": token,
                    "provider": "p1",
                    "date_from": env.extra["period"].first.isoformat(),
                },
                files={"file": ("bad.csv", b"Txn;Date;Account;Sum;State\n1;x;1;1,00;OK\n", "text/csv")},
            )
            assert r.status_code == 303 and r.headers["location"] == "/backoffice/reconciliation"
            shown = await acc.get(r.headers["location"])
            assert "bad.csv: line 2: the date" in shown.text
            r = await acc.post(
                "/backoffice/reconciliation",
                data={
                    "csrf_token": token,
                    "provider": "p1",
                    "date_from": env.extra["period"].first.isoformat(),
                },
                files={"file": (path.name, path.read_bytes(), "text/csv")},
            )
            assert r.status_code == 303, r.text
            detail_url = r.headers["location"].split("?")[0]
            page = await acc.get(detail_url + "?kind=discrepancies")
            assert page.status_code == 200
            assert "Missing on our side" in page.text and "99999999" in page.text
            assert page.text.count('name="line_id"') == 3
            import re

            boxes = re.findall(r'name="line_id" value="(\d+)"', page.text)
            r = await acc.post(
                detail_url + "/resolve",
                data={
                    "csrf_token": form_token(page.text),
                    "action": "accept",
                    "line_id": boxes,
                    "reason": "ok by CFO",
                },
            )
            assert r.status_code == 303
            shown = await acc.get(r.headers["location"])
            assert "3 of 3 lines resolved." in shown.text
            assert 'name="line_id"' not in shown.text  # nothing left to resolve
            r = await acc.get(detail_url + "/report")
            assert r.status_code == 200
            wb = openpyxl.load_workbook(io.BytesIO(r.content))
            assert sum(1 for row in wb["Lines"].iter_rows(values_only=True) if row[13] == "accepted") == 3
            # the financial specialist sees the result but cannot resolve
            r = await fin.post(
                detail_url + "/resolve", data={"csrf_token": form_token(page.text), "action": "accept"}
            )
            assert r.status_code == 403
