"""Bank statements tied to the billers' collection accounts, on both databases over HTTP: a statement
of a biller's account pays that biller's invoices only (a reference of another biller's invoice waits
in the queue, and a person cannot match it there); a statement of the hub-wide account pays anyone's;
a statement of an account nobody has is refused with a problem and stores nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from harness import hub_env
from invoices_support import AB, INV, invoice
from paymux.invoices.models import InvoicePayment, InvoiceReceipt
from paymux.invoices.receipts import normal_account
from statements_support import OUR_IBAN, Entry, camt, mt940

ST = "/api/v1/admin/invoices/statements"
RC = "/api/v1/admin/invoices/receipts"
POWER_IBAN = "MD21EX000000000001234567"
WATER_IBAN = "MD83EX000000000007654321"


async def test_statement_matches_only_the_account_owners_invoices(db_url: str) -> None:
    async with hub_env(
        db_url, run_workers=False, catalog={"providers": [], "channels": []}, deposits={}
    ) as env:
        keys: dict[str, str] = {}
        for code, iban in (("power", POWER_IBAN), ("water", WATER_IBAN)):
            body = {"code": code, "name": code.title(), "account": {"holder": code, "iban": iban}}
            assert (await env.http.post(AB, json=body, headers=env.admin)).status_code == 201
            r = await env.http.post(f"{AB}/{code}/keys", json={}, headers=env.admin)
            keys[code] = r.json()["key"]

        async def make(code: str, number: str, amount: str) -> dict[str, Any]:
            r = await env.http.post(
                INV, json=invoice(number, amount=amount), headers={"Authorization": f"Bearer {keys[code]}"}
            )
            assert r.status_code == 201, r.text
            out: dict[str, Any] = r.json()
            return out

        async def upload(data: bytes) -> Any:
            return await env.http.post(ST, files={"file": ("st.xml", data)}, headers=env.admin)

        p1 = await make("power", "P-1", "10.00")
        w1 = await make("water", "W-1", "20.00")
        w2 = await make("water", "W-2", "30.00")
        # the power account's statement: power's invoice paid; water's reference and water's amount and
        # payer are not looked for there
        st = camt(
            [
                Entry("10.00", "PA-1", "Ion", rf=p1["reference"]),
                Entry("20.00", "PA-2", "Ion", rf=w1["reference"]),
                Entry("30.00", "PA-3", "Ion Popescu", text="water"),
            ],
            account=POWER_IBAN,
        )
        r = await upload(st)
        assert r.status_code == 200, r.text
        assert (r.json()["matched"], r.json()["unmatched"]) == (1, 2)
        # the water account's (MT940, its :25: as BIC/account, in lower case): water's
        st = mt940(
            [Entry("20.00", "WA-1", "Ion", text=w1["reference"])],
            account="AGRNMD2X/" + WATER_IBAN.lower(),
        )
        r = await upload(st)
        assert r.status_code == 200 and r.json()["matched"] == 1, r.text
        # an account nobody has: refused, nothing stored
        async with env.hub.read_sessions() as s:
            before = await s.scalar(select(func.count()).select_from(InvoiceReceipt))
        r = await upload(
            camt([Entry("30.00", "XX-1", "Ion", rf=w2["reference"])], account="DE89370400440532013000")
        )
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert (
            problem["type"].endswith("unknown-statement-account")
            and problem["account"] == "DE89370400440532013000"
        )
        assert "no biller's collection account" in problem["detail"]
        async with env.hub.read_sessions() as s:
            assert await s.scalar(select(func.count()).select_from(InvoiceReceipt)) == before
        # the hub-wide account (PAYMUX_INVOICE_HUB_ACCOUNTS, set by the harness): anyone's invoices
        r = await upload(
            camt([Entry("30.00", "HUB-1", "Ion", rf=w2["reference"])], msg="H1", account=OUR_IBAN)
        )
        assert r.status_code == 200 and r.json()["matched"] == 1, r.text

        # a person cannot match the power account's line to water's invoice; to power's they can
        waiting = (await env.http.get(RC, params={"status": "waiting"}, headers=env.admin)).json()["items"]
        pa2 = next(i for i in waiting if i["bank_reference"] == "PA-2")
        r = await env.http.post(
            f"{RC}/{pa2['id']}/match", json={"biller": "water", "invoice": "W-2"}, headers=env.admin
        )
        assert r.status_code == 409 and r.json()["type"].endswith("receipt-other-biller")
        p2 = await make("power", "P-2", "20.00")
        r = await env.http.post(
            f"{RC}/{pa2['id']}/match", json={"biller": "power", "invoice": "P-2"}, headers=env.admin
        )
        assert r.status_code == 200 and r.json()["status"] == "matched", r.text
        assert p2["number"] == "P-2"

        async with env.hub.read_sessions() as s:
            paid = sorted((await s.scalars(select(InvoicePayment.method_reference))).all())
        assert paid == ["HUB-1", "PA-1", "PA-2", "WA-1"]
        for number, status in (("W-1", "paid"), ("W-2", "paid")):
            r = await env.http.get(f"{INV}/{number}", headers={"Authorization": f"Bearer {keys['water']}"})
            assert r.json()["status"] == status


def test_accounts_compared_without_spaces_case_or_bic() -> None:
    assert normal_account(" md21 ex00 0000 0000 0123 4567 ") == POWER_IBAN
    assert normal_account("AGRNMD2X/40702810900000001234") == "40702810900000001234"
    assert normal_account("") == ""
