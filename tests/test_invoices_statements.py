"""Invoices paid by bank transfer outside the platform, on both databases, over HTTP on 127.0.0.1:
camt.053, camt.054 and MT940 statements uploaded to the admin API, each credit matched to an invoice by
its RF reference (structured or in the text) or by amount and payer; part and over-payments; the
unmatched ones queued, matched or ignored by a person (audited); a statement imported again (or the
same entry in another format) applies nothing twice; the CLI import; the parsers themselves."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from invoices_support import Billing, billing_env, invoice
from paymux.audit.models import AuditEvent
from paymux.invoices.models import Invoice, InvoicePayment, InvoiceReceipt
from paymux.invoices.receipts import references_in
from paymux.invoices.reference import rf_print
from paymux.ledger.service import verify_ledger
from paymux.settlement.statements import StatementError, parse
from statements_support import OUR_IBAN, Entry, camt, cli, mt940

ST = "/api/v1/admin/invoices/statements"
RC = "/api/v1/admin/invoices/receipts"
ACCOUNT = {"holder": "Power Co SRL", "iban": "MD21EX000000000001234567", "bic": "AGRNMD2X"}


async def upload(b: Billing, data: bytes, fmt: str | None = None, name: str = "st.xml") -> dict[str, Any]:
    r = await b.http.post(
        ST,
        files={"file": (name, data, "application/octet-stream")},
        data={"format": fmt} if fmt else {},
        headers=b.env.admin,
    )
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def make(b: Billing, number: str, amount: str, **over: Any) -> dict[str, Any]:
    r = await b.post(invoice(number, amount=amount, **over))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def counts(res: dict[str, Any]) -> tuple[int, int, int]:
    return res["matched"], res["unmatched"], res["duplicates"]


async def payments(b: Billing) -> list[tuple[str, str, int, int, int]]:
    async with b.env.hub.read_sessions() as s:
        rows = (
            await s.execute(
                select(
                    Invoice.number,
                    InvoicePayment.method_reference,
                    InvoicePayment.amount,
                    InvoicePayment.applied,
                    InvoicePayment.excess,
                )
                .join(Invoice, Invoice.id == InvoicePayment.invoice_id)
                .order_by(InvoicePayment.id)
            )
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_camt053_camt054_mt940_matched_and_never_twice(db_url: str) -> None:
    async with billing_env(db_url, account=ACCOUNT, fee={"amount": "0.35", "currency": "EUR"}) as b:
        a = await make(b, "A1001", "120.50")
        c = await make(b, "C1003", "80.00")
        d = await make(b, "D1004", "50.00", partial_allowed=True)
        e = await make(b, "E1005", "30.00")
        await make(b, "F1006", "45.67", payer={"name": "Maria  Rusu"})
        await make(b, "G1007", "10.00")

        # camt.053: A by the structured reference; D a part by its printed reference in the text; a
        # debit skipped; one line nobody's
        st053 = camt(
            [
                Entry("120.50", "B-053-1", "Ion Popescu", rf=a["reference"]),
                Entry(
                    "20.00", "B-053-2", "Vasile", text=f"Plata factura {rf_print(d['reference'])} multumesc"
                ),
                Entry("99.00", "B-053-3", "Somebody", text="gift"),
                Entry("5.00", "B-053-4", "Bank", credit=False),
            ]
        )
        res = await upload(b, st053)
        assert res["format"] == "camt053" and res["lines"] == 4 and res["credits"] == 3
        assert counts(res) == (2, 1, 0)
        assert (await b.get("A1001"))["status"] == "paid"
        part = await b.get("D1004")
        assert part["status"] == "partially_paid" and part["paid_amount"] == "20.00"

        # camt.054: C over-paid (kept for a refund decision), F by amount and payer (no reference),
        # D's rest by reference in lower case
        st054 = camt(
            [
                Entry("100.00", "B-054-1", "Ion", rf=c["reference"]),
                Entry("45.67", "B-054-2", "maria rusu", text="for electricity"),
                Entry("30.00", "B-054-3", "Vasile", text=d["reference"].lower()),
            ],
            kind="054",
        )
        res = await upload(b, st054, "camt054")
        assert res["format"] == "camt054" and counts(res) == (3, 0, 0)
        over = await b.get("C1003")
        assert over["status"] == "paid" and over["refund_review"] is True and over["paid_amount"] == "80.00"
        assert (await b.get("F1006"))["status"] == "paid"
        assert (await b.get("D1004"))["status"] == "paid"

        # MT940: E by the reference in :86:; G by amount and payer name in :86:
        st940 = mt940(
            [
                Entry("30.00", "MT-1", "Ana Lungu", text=f"INVOICE {e['reference']} ELECTRICITY"),
                Entry("10.00", "MT-2", "Ion Popescu", text="December"),
                Entry("1.00", "MT-3", credit=False),
            ]
        )
        res = await upload(b, st940, name="st.sta")
        assert res["format"] == "mt940" and res["credits"] == 2 and counts(res) == (2, 0, 0)
        assert (await b.get("E1005"))["status"] == "paid"
        assert (await b.get("G1007"))["status"] == "paid"  # G's payer is Ion Popescu (the default)

        before = await payments(b)
        assert [p[:3] for p in before] == [
            ("A1001", "B-053-1", 12050),
            ("D1004", "B-053-2", 2000),
            ("C1003", "B-054-1", 10000),
            ("F1006", "B-054-2", 4567),
            ("D1004", "B-054-3", 3000),
            ("E1005", "MT-1", 3000),
            ("G1007", "MT-2", 1000),
        ]
        assert before[2][3:] == (8000, 2000)  # applied, excess
        # every file again, and the camt.053's entries as a camt.054: duplicates, nothing paid again
        assert counts(await upload(b, st053)) == (0, 0, 3)
        assert counts(await upload(b, st054)) == (0, 0, 3)
        assert counts(await upload(b, st940)) == (0, 0, 2)
        assert counts(
            await upload(
                b, camt([Entry("120.50", "B-053-1", "Ion Popescu", rf=a["reference"])], kind="054", msg="N2")
            )
        ) == (0, 0, 1)
        assert await payments(b) == before

        # a payment to a paid invoice (another bank entry): kept for a refund decision, nothing applied
        res = await upload(b, camt([Entry("120.50", "B-053-9", "Ion Popescu", rf=a["reference"])], msg="M9"))
        assert counts(res) == (1, 0, 0)
        late = (await payments(b))[-1]
        assert late[:2] == ("A1001", "B-053-9") and late[3:] == (0, 12050)
        assert (await b.get("A1001"))["refund_review"] is True

        async with b.env.hub.read_sessions() as s:
            check = await verify_ledger(s)
            receipts = (await s.scalars(select(InvoiceReceipt).order_by(InvoiceReceipt.id))).all()
        assert check.balanced, check
        assert [r.status for r in receipts].count("waiting") == 1 and len(receipts) == 9
        assert {r.matched_by for r in receipts if r.status == "matched"} == {"reference", "amount_payer"}


async def test_unmatched_queue_matched_or_ignored_by_a_person(db_url: str) -> None:
    async with billing_env(db_url, account=ACCOUNT) as b:
        await make(b, "Q1", "75.00", payer={"name": "Petru"})
        await make(b, "Q2", "75.00", payer={"name": "Petru"})  # amount and payer of two invoices
        res = await upload(
            b,
            camt(
                [
                    Entry("75.00", "U-1", "Petru", text="gaz"),
                    Entry("12.00", "U-2", "Stranger", text="RF00 nonsense"),
                ]
            ),
        )
        assert counts(res) == (0, 2, 0)
        r = await b.http.get(RC, params={"status": "waiting"}, headers=b.env.admin)
        assert r.status_code == 200
        body = r.json()
        assert body["waiting"] == 2 and len(body["items"]) == 2
        u1 = next(i for i in body["items"] if i["bank_reference"] == "U-1")
        u2 = next(i for i in body["items"] if i["bank_reference"] == "U-2")
        assert u1["amount"] == "75.00" and u1["payer"]["name"] == "Petru" and "2 open invoices" in u1["note"]
        assert u2["remittance"] == "RF00 nonsense" and u2["invoice"] is None

        # a person matches U-1 to Q2: Q2 paid
        bad = await b.http.post(
            f"{RC}/{u1['id']}/match", json={"invoice": "NOPE", "biller": "power"}, headers=b.env.admin
        )
        assert bad.status_code == 404 and bad.headers["content-type"].startswith("application/problem+json")
        for wrong in (
            {"invoice": "Q2"},
            {"invoice": "Q2", "biller": "Power Co"},
            {"invoice": "x" * 65, "biller": "power"},
        ):
            assert (
                await b.http.post(f"{RC}/{u1['id']}/match", json=wrong, headers=b.env.admin)
            ).status_code == 422
        r = await b.http.post(
            f"{RC}/{u1['id']}/match", json={"invoice": "Q2", "biller": "power"}, headers=b.env.admin
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "matched" and r.json()["invoice"]["number"] == "Q2"
        assert (await b.get("Q2"))["status"] == "paid" and (await b.get("Q1"))["status"] == "open"
        again = await b.http.post(
            f"{RC}/{u1['id']}/match", json={"invoice": "Q1", "biller": "power"}, headers=b.env.admin
        )
        assert again.status_code == 409
        # ignore U-2
        r = await b.http.post(f"{RC}/{u2['id']}/ignore", json={"note": "not ours"}, headers=b.env.admin)
        assert r.status_code == 200 and r.json()["status"] == "ignored"
        assert (await b.http.post(f"{RC}/{u2['id']}/ignore", headers=b.env.admin)).status_code == 409
        assert (await b.http.post(f"{RC}/999999/ignore", headers=b.env.admin)).status_code == 404
        assert (await b.http.get(RC, params={"status": "bogus"}, headers=b.env.admin)).status_code == 422
        assert (await b.http.get(RC, params={"status": "waiting"}, headers=b.env.admin)).json()[
            "waiting"
        ] == 0

        # the same statement again: nothing new, nothing paid twice
        res = await upload(
            b,
            camt([Entry("75.00", "U-1", "Petru", text="gaz"), Entry("12.00", "U-2", "Stranger", text="x")]),
        )
        assert counts(res) == (0, 0, 2)
        assert [p[:3] for p in await payments(b)] == [("Q2", "U-1", 7500)]

        async with b.env.hub.read_sessions() as s:
            actions = (
                await s.scalars(select(AuditEvent.action).where(AuditEvent.action.like("invoice_%")))
            ).all()
        assert {"invoice_statement.import", "invoice_receipt.match", "invoice_receipt.ignore"} <= set(actions)

        # unreadable files: 422, nothing stored
        async with b.env.hub.read_sessions() as s:
            n = await s.scalar(select(func.count()).select_from(InvoiceReceipt))
        for data, fmt in (
            (b"<Document><x/></Document>", None),
            (b"<not xml", None),
            (b"hello", None),
            (camt([Entry("1.00", "Z", "Z")]), "mt940"),
            (camt([Entry("1.00", "Z", "Z")], kind="054"), "camt053"),
            (b":20:X\n:25:Y\n:61:3001011C1,00NTRF//Z\n", None),  # no opening balance
            (b":20:X\n:60F:C300101EUR0,00\n:61:garbage\n", None),
            (b":20:X\n:60F:C300101EUR0,00\n:61:300101C1,001NTRF//Z\n", None),  # three decimals in EUR
        ):
            r = await b.http.post(
                ST, files={"file": ("f", data)}, data={"format": fmt} if fmt else {}, headers=b.env.admin
            )
            assert r.status_code == 422, (data, r.text)
        r = await b.http.post(ST, files={"file": ("f", b"x")}, data={"format": "pdf"}, headers=b.env.admin)
        assert r.status_code == 422
        assert (await b.http.post(ST, headers=b.env.admin)).status_code == 422
        async with b.env.hub.read_sessions() as s:
            assert await s.scalar(select(func.count()).select_from(InvoiceReceipt)) == n
        # permissions: no token, 401
        assert (await b.http.get(RC)).status_code == 401
        assert (await b.http.post(ST, files={"file": ("f", b"x")})).status_code == 401


async def test_cli_import_statement(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with billing_env(db_url, account=ACCOUNT) as b:
        inv = await make(b, "CLI1", "12.34")
        path = tmp_path / "statement.sta"
        path.write_bytes(mt940([Entry("12.34", "CLI-REF-1", "Ion", text=inv["reference"])]))
        # once through the installed command (a process of its own), then in this process
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")}
        env["PAYMUX_DATABASE_URL"] = db_url
        hub_accounts = {"PAYMUX_INVOICE_HUB_ACCOUNTS": f'["{OUR_IBAN}"]'}
        # the statement's account is no biller's and, without the setting, not the hub's: refused
        refused = await cli(
            monkeypatch,
            db_url,
            "invoices",
            "import-statement",
            str(path),
            env={"PAYMUX_INVOICE_HUB_ACCOUNTS": None},
        )
        assert refused.exit_code == 1 and "is no biller's collection account" in refused.output, (
            refused.output
        )
        env.update(hub_accounts)
        cmd = [str(Path(sys.executable).parent / "paymux"), "invoices", "import-statement", str(path)]
        first = await asyncio.to_thread(
            subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert first.returncode == 0, first.stderr
        assert "1 credit lines: 1 matched" in first.stdout
        second = await cli(
            monkeypatch,
            db_url,
            "invoices",
            "import-statement",
            str(path),
            "--format",
            "mt940",
            env=hub_accounts,
        )
        assert second.exit_code == 0 and "1 seen before" in second.output, second.output
        assert (await b.get("CLI1"))["status"] == "paid"
        bad = tmp_path / "bad.txt"
        bad.write_bytes(b"not a statement")
        third = await cli(monkeypatch, db_url, "invoices", "import-statement", str(bad))
        assert third.exit_code == 1 and "cannot be read" in third.output
        wrong = await cli(monkeypatch, db_url, "invoices", "import-statement", str(path), "--format", "pdf")
        assert wrong.exit_code == 2
        async with b.env.hub.read_sessions() as s:
            assert [p.method_reference for p in (await s.scalars(select(InvoicePayment))).all()] == [
                "CLI-REF-1"
            ]


def test_parsers_read_what_an_independent_reader_reads() -> None:
    """The files built here, read by the standard library's XML parser and by the hub's readers."""
    rf = "RF18539007547034"
    data = camt(
        [Entry("120.50", "R1", "Ion", rf=rf), Entry("1.00", "R2", "X", credit=False, text="fee")], kind="054"
    )
    root = ET.fromstring(data)
    ns = {"c": "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"}
    ntries = root.findall(".//c:Ntfctn/c:Ntry", ns)
    assert [n.findtext("c:Amt", namespaces=ns) for n in ntries] == ["120.50", "1.00"]
    assert root.findtext(".//c:CdtrRefInf/c:Ref", namespaces=ns) == rf
    parsed = parse(data)
    assert parsed.format == "camt054" and parsed.account == OUR_IBAN
    first = parsed.lines[0]
    assert (first.direction, first.amount, first.currency, first.creditor_reference) == (
        "credit",
        12050,
        "EUR",
        rf,
    )
    assert (
        first.bank_reference == "R1"
        and first.counterparty == "Ion"
        and first.booked_on == dt.date(2030, 1, 10)
    )
    assert parsed.lines[1].direction == "debit"
    # the same entry in a camt.053 is the same line
    assert parse(camt([Entry("120.50", "R1", "Ion", rf=rf)])).lines[0].uid == first.uid

    text = mt940(
        [
            Entry(
                "120.50",
                "M1",
                "Ion Popescu-Lungu de la Chisinau, str. Stefan cel Mare 1, ap. 2",
                text="Plata " + rf_print(rf),
            ),
            Entry("0.99", "M2", credit=False),
        ]
    )
    fields = [ln for ln in text.decode().split("\r\n") if ln.startswith(":61:")]
    assert fields[0].startswith(":61:3001100110C120,50NTRF")  # read back as a bank would write it
    parsed = parse(text)
    assert parsed.format == "mt940" and parsed.account == OUR_IBAN and len(parsed.lines) == 2
    first = parsed.lines[0]
    assert (first.direction, first.amount, first.currency, first.bank_reference) == (
        "credit",
        12050,
        "EUR",
        "M1",
    )
    assert first.counterparty == "Ion Popescu-Lungu de la Chisinau, str. Stefan cel Mare 1, ap. 2"
    assert references_in(first.purpose) == [rf]
    assert parsed.lines[1].direction == "debit" and parsed.lines[1].amount == 99
    assert parse(text).lines[0].uid == first.uid
    # German :86: subfields
    german = (
        b":20:S\r\n:25:DE89370400440532013000\r\n:28C:1\r\n:60F:C300101EUR0,\r\n"
        b":61:300102C5,NTRFNONREF\r\n:86:166?00GUTSCHRIFT?20RF18 5390 0754?217034?32ION POPESCU\r\n"
        b":62F:C300102EUR5,\r\n-"
    )
    line = parse(german).lines[0]
    assert line.amount == 500 and line.counterparty == "ION POPESCU" and references_in(line.purpose) == [rf]
    assert line.booked_on == dt.date(2030, 1, 2)


@pytest.mark.parametrize(
    "text,found",
    [
        ("RF18539007547034", ["RF18539007547034"]),
        ("pay rf18 5390 0754 7034 thanks", ["RF18539007547034"]),
        ("RF18539007547035", []),
        ("RF18 5390 0754 7034 and RF18 5390 0754 7034", ["RF18539007547034"]),
        ("", []),
        ("RF" + "9" * 200, []),
    ],
)
def test_references_found_in_text(text: str, found: list[str]) -> None:
    assert references_in(text) == found


def test_statement_errors_name_the_problem() -> None:
    with pytest.raises(StatementError, match="unknown statement format"):
        parse(b"<x/>", "pdf")
    with pytest.raises(StatementError, match=r"camt\.053 or camt\.054"):
        parse(b"<Document><Other/></Document>")


async def test_the_same_statement_uploaded_at_once_pays_once(db_url: str) -> None:
    async with billing_env(db_url, account=ACCOUNT) as b:
        invs = [await make(b, f"K{i}", "10.00") for i in range(4)]
        data = camt([Entry("10.00", f"K-{i}", "Ion", rf=inv["reference"]) for i, inv in enumerate(invs)])
        results = await asyncio.gather(*(upload(b, data) for _ in range(3)))
        assert sum(r["matched"] for r in results) == 4
        assert sum(r["duplicates"] for r in results) == 8
        assert sorted(p[1] for p in await payments(b)) == ["K-0", "K-1", "K-2", "K-3"]
        async with b.env.hub.read_sessions() as s:
            assert (await verify_ledger(s)).balanced
            assert await s.scalar(select(func.count()).select_from(InvoiceReceipt)) == 4
