"""Invoice collections in the ledger and the daily payouts to billers, on both databases: each payment
(any method) posts a balanced entry (collected, the biller's fee as revenue, what is owed the biller,
what is held for a refund decision); a day's payout sends what was collected less fees and not paid
out before, as a pain.001 file valid against the ISO 20022 schema, once; and, with Hypothesis, random
orders of callback payments (with repeats), statement lines and cancellations never pay an invoice
twice and always leave the ledger balanced."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from harness import test_settings as hub_settings
from invoices_support import billing_env, invoice
from paymux.db.base import utcnow
from paymux.errors import Problem
from paymux.invoices import receipts, service
from paymux.invoices.ledger import COLLECTED, FEES, HOLD, PAYABLE
from paymux.invoices.models import Biller, Invoice, InvoicePayment, InvoicePayout
from paymux.ledger.models import Account, JournalEntry
from paymux.ledger.service import SYSTEM, verify_ledger
from paymux.runtime import Hub
from statements_support import OUR_IBAN, Entry, camt, cli
from test_settlement_orders import pain001_schema

PO = "/api/v1/admin/invoices/payouts"
ACCOUNT = {"holder": "Power Co SRL", "iban": "MD21EX000000000001234567", "bic": "AGRNMD2X"}
DEBTOR = {
    "PAYMUX_SETTLEMENT_DEBTOR_NAME": "Paymux Hub SRL",
    "PAYMUX_SETTLEMENT_DEBTOR_IBAN": "MD24AG000225100013104168",
    "PAYMUX_SETTLEMENT_DEBTOR_BIC": "AGRNMD2X",
}
PAIN = "{urn:iso:std:iso:20022:tech:xsd:pain.001.001.03}"


async def balances(hub: Hub, biller_id: int, currency: str = "EUR") -> dict[str, int]:
    async with hub.read_sessions() as s:
        rows = (
            await s.execute(
                select(Account.kind, Account.owner_id, Account.balance).where(Account.currency == currency)
            )
        ).all()
    out = {kind: bal for kind, owner, bal in rows if owner == biller_id and kind.startswith("biller_")}
    out.update({kind: bal for kind, owner, bal in rows if owner == SYSTEM and kind == FEES})
    return out


async def pay(hub: Hub, number: str, amount: int, method: str, ref: str) -> InvoicePayment:
    async with hub.sessions() as s:
        inv = await s.scalar(select(Invoice).where(Invoice.number == number))
        assert inv is not None
        p = await service.record_payment(s, inv, amount, method, ref)
        await s.commit()
        return p


async def test_collections_posted_balanced_and_paid_out_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for k, v in DEBTOR.items():
        monkeypatch.setenv(k, v)
    async with billing_env(db_url, account=ACCOUNT, fee={"amount": "0.35", "currency": "EUR"}) as b:
        hub = b.env.hub
        for number, amount in (("P1", "100.00"), ("P2", "50.00"), ("P3", "20.00")):
            assert (await b.post(invoice(number, amount=amount))).status_code == 201
        async with hub.read_sessions() as s:
            biller = await s.scalar(select(Biller).where(Biller.code == "power"))
        assert biller is not None
        async with hub.read_sessions() as s:
            entries_before = await s.scalar(select(func.count()).select_from(JournalEntry))
        await pay(hub, "P1", 10000, "card", "c-1")
        await pay(hub, "P1", 10000, "card", "c-1")  # a repeated callback: nothing posted
        await pay(hub, "P2", 6000, "card", "c-2")  # over by 10.00
        await pay(hub, "P1", 500, "card", "c-3")  # to a paid invoice: all held
        bal = await balances(hub, biller.id)
        assert bal == {
            COLLECTED: 16500,
            PAYABLE: -(10000 - 35 + 5000 - 35),
            HOLD: -(1000 + 500),
            FEES: -70,
        }
        async with hub.read_sessions() as s:
            assert await s.scalar(select(func.count()).select_from(JournalEntry)) == entries_before + 3
            assert (await verify_ledger(s)).balanced

        today = utcnow().astimezone(hub.settings.business_tz).date()
        r = await b.http.post(PO, json={"date": today.isoformat()}, headers=b.env.admin)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert [(i["biller"], i["amount"], i["currency"], i["created"]) for i in items] == [
            ("power", "149.30", "EUR", True)
        ]
        number = items[0]["number"]
        # again the same day: the same payout, nothing more
        r = await b.http.post(PO, json={"date": today.isoformat()}, headers=b.env.admin)
        assert [(i["number"], i["created"]) for i in r.json()["items"]] == [(number, False)]
        bal = await balances(hub, biller.id)
        assert bal[PAYABLE] == 0 and bal[COLLECTED] == 16500 - 14930

        # the pain.001 file: valid against the ISO schema, our account debited, the biller's credited
        r = await b.http.get(f"{PO}/power/{today.isoformat()}/pain001", headers=b.env.admin)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/xml")
        doc = pain001_schema().to_dict(r.content)
        hdr = doc["CstmrCdtTrfInitn"]["GrpHdr"]
        assert hdr["NbOfTxs"] == "1" and str(hdr["CtrlSum"]) == "149.30"
        pmt = doc["CstmrCdtTrfInitn"]["PmtInf"][0]
        assert pmt["DbtrAcct"]["Id"]["IBAN"] == DEBTOR["PAYMUX_SETTLEMENT_DEBTOR_IBAN"]
        assert pmt["Dbtr"]["Nm"] == "Paymux Hub SRL"
        tx = pmt["CdtTrfTxInf"][0]
        assert tx["PmtId"]["EndToEndId"] == number
        assert str(tx["Amt"]["InstdAmt"]["$"]) == "149.30" and tx["Amt"]["InstdAmt"]["@Ccy"] == "EUR"
        assert tx["Cdtr"]["Nm"] == "Power Co SRL" and tx["CdtrAcct"]["Id"]["IBAN"] == ACCOUNT["iban"]
        assert tx["CdtrAgt"]["FinInstnId"]["BIC"] == "AGRNMD2X"

        # the next day: nothing new collected, nothing paid out; then a new collection, only it
        tomorrow = today + dt.timedelta(days=1)
        r = await b.http.post(PO, json={"date": tomorrow.isoformat()}, headers=b.env.admin)
        assert r.json()["items"] == []
        assert (await b.http.get(f"{PO}/power/{tomorrow}/pain001", headers=b.env.admin)).status_code == 404
        await pay(hub, "P3", 2000, "transfer", "t-1")
        r = await b.http.post(PO, json={"date": tomorrow.isoformat(), "biller": "power"}, headers=b.env.admin)
        assert [(i["amount"], i["created"]) for i in r.json()["items"]] == [("19.65", True)]
        async with hub.read_sessions() as s:
            payouts = (await s.scalars(select(InvoicePayout).order_by(InvoicePayout.id))).all()
            assert [p.amount for p in payouts] == [14930, 1965]
            check = await verify_ledger(s)
        assert check.balanced, check
        assert (await balances(hub, biller.id))[PAYABLE] == 0

        # the CLI: the day after, a new collection, a file per biller
        await pay(hub, "P2", 100, "card", "c-9")  # to a paid invoice: held, nothing owed the biller
        await pay(hub, "P3", 100, "card", "c-10")  # to a paid invoice: held
        async with hub.sessions() as s:
            assert (await s.scalar(select(Invoice).where(Invoice.number == "P1"))) is not None
        assert (await b.post(invoice("P4", amount="5.00"))).status_code == 201
        await pay(hub, "P4", 500, "card", "c-11")
        later = tomorrow + dt.timedelta(days=1)
        args = ("invoices", "payouts", "--date", later.isoformat(), "--out", str(tmp_path))
        done = await cli(monkeypatch, db_url, *args)
        assert done.exit_code == 0, done.output
        path = tmp_path / f"payout-power-{later.isoformat()}.xml"
        doc = pain001_schema().to_dict(path.read_bytes())
        tx = doc["CstmrCdtTrfInitn"]["PmtInf"][0]["CdtTrfTxInf"][0]
        assert str(tx["Amt"]["InstdAmt"]["$"]) == "4.65" and tx["PmtId"]["EndToEndId"].endswith("-EUR")
        again = await cli(monkeypatch, db_url, *args)
        assert again.exit_code == 0 and "465 EUR" in again.output
        async with hub.read_sessions() as s:
            assert await s.scalar(select(func.count()).select_from(InvoicePayout)) == 3
            assert (await verify_ledger(s)).balanced
        # without our bank details: refused before anything is made
        refused = await cli(
            monkeypatch,
            db_url,
            "invoices",
            "payouts",
            "--date",
            (later + dt.timedelta(days=1)).isoformat(),
            env=dict.fromkeys(DEBTOR),
        )
        assert refused.exit_code == 1 and "PAYMUX_SETTLEMENT_DEBTOR_NAME" in refused.output
        bad_date = await cli(monkeypatch, db_url, "invoices", "payouts", "--date", "2030-13-01")
        assert bad_date.exit_code == 2


async def test_payout_needs_an_account_and_our_details(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in DEBTOR:
        monkeypatch.delenv(k, raising=False)
    async with billing_env(db_url) as b:  # no account
        hub = b.env.hub
        assert (await b.post(invoice("N1", amount="3.00"))).status_code == 201
        await pay(hub, "N1", 300, "card", "n-1")
        today = utcnow().astimezone(hub.settings.business_tz).date()
        r = await b.http.post(PO, json={"date": today.isoformat()}, headers=b.env.admin)
        assert r.status_code == 200 and r.json() == {
            "date": today.isoformat(),
            "items": [],
            "skipped_no_account": ["power"],
        }
        r = await b.http.patch("/api/v1/admin/billers/power", json={"account": ACCOUNT}, headers=b.env.admin)
        assert r.status_code == 200
        r = await b.http.post(PO, json={"date": today.isoformat()}, headers=b.env.admin)
        assert [i["amount"] for i in r.json()["items"]] == ["3.00"]
        r = await b.http.get(f"{PO}/power/{today}/pain001", headers=b.env.admin)
        assert r.status_code == 409 and r.json()["type"].endswith("debtor-not-configured")
        for bad in ({"date": "2030-02-30"}, {"date": today.isoformat(), "biller": "NO SUCH"}, {}):
            assert (await b.http.post(PO, json=bad, headers=b.env.admin)).status_code == 422
        assert (await b.http.get(f"{PO}/Bad Code/{today}/pain001", headers=b.env.admin)).status_code == 404
        assert (await b.http.post(PO, json={"date": today.isoformat()})).status_code == 401


# --- Hypothesis: never paid twice, the ledger always balanced ------------------------------------------
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("callback"), st.integers(0, 2), st.integers(0, 3), st.integers(1, 9000)),
        st.tuples(st.just("statement"), st.integers(0, 2), st.integers(0, 3), st.integers(1, 9000)),
        st.tuples(st.just("cancel"), st.integers(0, 2), st.just(0), st.just(0)),
    ),
    min_size=1,
    max_size=10,
)


def test_random_payments_never_pay_twice_and_the_ledger_balances(db_url: str) -> None:
    loop = asyncio.new_event_loop()
    hub = Hub(hub_settings(db_url))
    counter = iter(range(10**6))

    async def scenario(ops: list[tuple[str, int, int, int]]) -> None:
        n = next(counter)
        async with hub.sessions() as s:
            biller = Biller(
                code=f"b{n}",
                name=f"B{n}",
                brand={},
                legal={},
                support={},
                methods=["bank_transfer"],
                account={},
                reminder_days=[],
                fee_amount=25,
                fee_currency="EUR",
                webhook_enabled=False,
                enabled=True,
            )
            s.add(biller)
            await s.flush()
            results = await service.intake(
                s,
                biller,
                [
                    invoice(f"H{n}X{i}", amount=amount, partial_allowed=i == 1, payer={"name": f"P{n}"})
                    for i, amount in enumerate(("50.00", "70.00", "90.00"))
                ],
            )
            assert [r.status for r in results] == [201, 201, 201]
            await s.commit()
            biller_id = biller.id
        arrived: dict[tuple[str, str], tuple[int, int]] = {}  # (method, reference) -> (invoice, amount)
        for kind, i, ref, amount in ops:
            number = f"H{n}X{i}"
            async with hub.sessions() as s:
                inv = await s.scalar(
                    select(Invoice).where(Invoice.biller_id == biller_id, Invoice.number == number)
                )
                assert inv is not None
                if kind == "callback":
                    await service.record_payment(s, inv, amount, "card", f"cb-{n}-{ref}")
                    arrived.setdefault(("card", f"cb-{n}-{ref}"), (inv.id, amount))
                elif kind == "statement":
                    bank_ref = f"bank-{n}-{ref}"
                    data = camt(
                        [Entry(f"{amount // 100}.{amount % 100:02d}", bank_ref, "x", rf=inv.reference)]
                    )
                    await receipts.import_statement(s, data, hub_accounts=[OUR_IBAN])
                    arrived.setdefault(("transfer", bank_ref), (inv.id, amount))
                else:
                    b = await s.get(Biller, biller_id)
                    assert b is not None
                    try:
                        await service.cancel(s, b, number, "test")
                    except Problem:
                        pass
                await s.commit()
        async with hub.read_sessions() as s:
            pays = (
                (
                    await s.execute(
                        select(InvoicePayment)
                        .join(Invoice, Invoice.id == InvoicePayment.invoice_id)
                        .where(Invoice.biller_id == biller_id)
                    )
                )
                .scalars()
                .all()
            )
            invs = (await s.scalars(select(Invoice).where(Invoice.biller_id == biller_id))).all()
            check = await verify_ledger(s)
        # each method reference once, as it first arrived
        assert {(p.method, p.method_reference): (p.invoice_id, p.amount) for p in pays} == arrived
        assert len(pays) == len(arrived)
        for inv in invs:
            mine = [p for p in pays if p.invoice_id == inv.id]
            assert inv.paid_amount == sum(p.applied for p in mine) <= sum(p.amount for p in mine)
            assert inv.paid_amount <= inv.amount
            assert all(p.applied + p.excess == p.amount for p in mine)
            assert (inv.status == "paid") == (inv.paid_amount == inv.amount)
        assert check.balanced, check
        bal = await balances(hub, biller_id)
        total = sum(p.amount for p in pays)
        assert bal.get(COLLECTED, 0) == total
        fees = sum(min(25, p.applied) for p in pays)
        assert bal.get(PAYABLE, 0) == -(sum(p.applied for p in pays) - fees)
        assert bal.get(HOLD, 0) == -sum(p.excess for p in pays)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(ops=OPS)
    def run(ops: list[tuple[str, int, int, int]]) -> None:
        loop.run_until_complete(scenario(ops))

    try:
        run()
    finally:
        loop.run_until_complete(hub.close())
        loop.close()
