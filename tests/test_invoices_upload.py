"""Invoices from files over HTTP on 127.0.0.1: CSV and Excel (built with openpyxl), the column mapping,
per-row results (created, duplicate, error with its message), bad files refused whole (nothing taken),
the operator's upload on a biller's behalf."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import httpx
from openpyxl import Workbook

from invoices_support import AB, INV, Billing, billing_env

UP = f"{INV}/upload"

CSV = (
    "number,amount,currency,due_date,payer_name,payer_email,payer_language\n"
    "A-1,120.50,EUR,2030-01-31,Ion Popescu,ion@example.md,ro\n"
    "\n"
    "A-2,10,EUR,2030-02-28,,,\n"
    "A-3,abc,EUR,2030-02-28,,,\n"
    "A-4,5.00,EUR,31/02/2030,,,\n"
    "bad number!,5.00,EUR,2030-02-28,,,\n"
)


async def send(
    b: Billing, content: bytes, name: str = "invoices.csv", mapping: dict[str, Any] | str | None = None
) -> httpx.Response:
    data = (
        {} if mapping is None else {"mapping": mapping if isinstance(mapping, str) else json.dumps(mapping)}
    )
    return await b.http.post(UP, files={"file": (name, content)}, data=data, headers=b.h)


def xlsx(rows: list[list[Any]], sheet: str = "Invoices") -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = sheet
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def by_row(body: dict[str, Any]) -> dict[int, tuple[str, str]]:
    return {x["row"]: (x["result"], x["message"]) for x in body["results"]}


async def test_a_csv_file_row_by_row_and_again(db_url: str) -> None:
    async with billing_env(db_url) as b:
        r = await send(b, CSV.encode())
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["rows"], body["created"], body["duplicate"], body["error"]) == (5, 2, 0, 3)
        rows = by_row(body)
        assert rows[2][0] == rows[4][0] == "created"
        assert 3 not in rows  # the blank line is left out
        assert rows[5] == ("error", "amount 'abc' is not a number")
        assert rows[6][0] == "error" and "not a date in the format %Y-%m-%d" in rows[6][1]
        assert rows[7][0] == "error" and "invoice number" in rows[7][1]
        one = await b.get("A-1")
        assert one["amount"] == "120.50" and one["payer"]["email"] == "ion@example.md"
        assert one["payer"]["language"] == "ro" and one["due_date"] == "2030-01-31"
        # the same file again: the invoices taken are duplicates, nothing new
        again = (await send(b, CSV.encode())).json()
        assert (again["created"], again["duplicate"], again["error"]) == (0, 2, 3)
        # the same number with other content: an error naming the conflict
        changed = CSV.replace("A-2,10,", "A-2,11,")
        rows2 = by_row((await send(b, changed.encode())).json())
        assert rows2[4][0] == "error" and "exists with other content" in rows2[4][1]
        assert (await b.get("A-2"))["amount"] == "10.00"


async def test_an_excel_file_with_a_mapping(db_url: str) -> None:
    async with billing_env(db_url) as b:
        content = xlsx(
            [
                ["Report of December"],
                ["Factura", "Suma", "Scadența", "Client", "Telefon", "Parțial"],
                ["X-1", 99.5, dt.datetime(2030, 3, 1), "Maria", "+37369000111", "da"],
                ["X-2", "1 234,56", "15.03.2030", "Ana", None, "nu"],
                [None, None, None, None, None, None],
                ["X-3", 7, dt.date(2030, 3, 1), None, None, "maybe"],
            ]
        )
        mapping = {
            "skip_rows": 1,
            "columns": {
                "number": "factura",
                "amount": "Suma",
                "due_date": 3,
                "payer_name": "Client",
                "payer_phone": "Telefon",
                "partial_allowed": "Parțial",
            },
            "currency": "MDL",
            "date_format": "%d.%m.%Y",
            "decimal_separator": ",",
        }
        r = await send(b, content, "december.xlsx", mapping)
        assert r.status_code == 200, r.text
        rows = by_row(r.json())
        assert rows[3] == ("created", "") and rows[4] == ("created", "")
        assert 5 not in rows and rows[6][0] == "error" and "partial_allowed" in rows[6][1]
        x1, x2 = await b.get("X-1"), await b.get("X-2")
        assert (x1["amount"], x1["currency"], x1["due_date"], x1["partial_allowed"]) == (
            "99.50",
            "MDL",
            "2030-03-01",
            True,
        )
        assert x1["payer"]["phone"] == "+37369000111"
        assert (x2["amount"], x2["due_date"], x2["partial_allowed"]) == ("1234.56", "2030-03-15", False)


async def test_bad_files_are_refused_whole_and_nothing_is_taken(db_url: str) -> None:
    async with billing_env(db_url) as b:
        cases: list[tuple[bytes, str, Any, str]] = [
            (b"", "a.csv", None, "the file is empty"),
            (b"PK\x03\x04 not really a zip", "a.xlsx", None, "not an Excel (xlsx) workbook"),
            (b"number;amount\nA-9;1\n", "a.csv", None, "no column for"),
            (b"number,amount,currency,due_date\n", "a.csv", None, "no invoices"),
            (b"number,amount,due_date\nA-9,1,2030-01-01\n", "a.csv", None, "currency"),
            (
                "number,amount,currency,due_date\nA-9,1,EUR,2030-01-01\n".encode("utf-16"),
                "a.csv",
                None,
                "not text",
            ),
            (b"number,amount\n", "a.csv", "{not json", "not JSON"),
            (b"number,amount\n", "a.csv", {"columns": {"colour": "x"}}, "mapping is not valid"),
            (b"number,amount\n", "a.csv", {"encoding": "klingon"}, "unknown encoding"),
            (xlsx([["number"]]), "a.xlsx", {"sheet": "Nope"}, "no sheet 'Nope'"),
            (
                b'number,amount,currency,due_date\n"A-9,1,EUR,2030-01-01\n',
                "a.csv",
                None,
                "malformed",
            ),
        ]
        for content, name, mapping, expected in cases:
            r = await send(b, content, name, mapping)
            assert r.status_code == 422, (expected, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert expected in r.json()["detail"], (expected, r.json())
        # the mapping's semicolon delimiter reads the same file
        ok = await send(
            b, b"number;amount;currency;due_date\nA-9;1;EUR;2030-01-01\n", "a.csv", {"delimiter": ";"}
        )
        assert ok.status_code == 200 and ok.json()["created"] == 1
        feed = (await b.http.get(f"{INV}/changes", headers=b.h)).json()
        assert [x["number"] for x in feed["items"]] == ["A-9"]
        assert (await b.http.post(UP, files={"file": ("a.csv", b"x")})).status_code == 401
        assert (await b.http.post(UP, headers=b.h)).status_code == 422


async def test_the_operator_uploads_for_a_biller(db_url: str) -> None:
    async with billing_env(db_url) as b:
        url = f"{AB}/power/invoices/upload"
        r = await b.http.post(url, files={"file": ("a.csv", CSV.encode())}, headers=b.env.admin)
        assert r.status_code == 200 and r.json()["created"] == 2
        assert (await b.get("A-2"))["status"] == "open"
        r = await b.http.post(
            f"{AB}/nope/invoices/upload", files={"file": ("a.csv", CSV.encode())}, headers=b.env.admin
        )
        assert r.status_code == 404
        r = await b.http.post(url, files={"file": ("a.csv", CSV.encode())}, headers=b.h)
        assert r.status_code == 401


def test_damaged_workbooks_are_problems_not_errors() -> None:
    import zipfile

    import pytest

    from paymux.invoices.upload import Mapping, UploadProblem, read

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<not xml")
        z.writestr("xl/workbook.xml", "<<<")
    good = xlsx([["number", "amount", "currency", "due_date"], ["A-1", 1, "EUR", "2030-01-01"]])
    cut = good[: len(good) // 2]
    for data in (buf.getvalue(), b"PK\x03\x04garbage", cut):
        with pytest.raises(UploadProblem) as e:
            read(data, "x.xlsx", Mapping())
        assert e.value.status == 422 and "workbook" in (e.value.detail or "")
    [(row, item)], bad = read(good, "x.xlsx", Mapping())
    assert row == 2 and bad == [] and item["due_date"] == "2030-01-01" and item["amount"] == "1"
