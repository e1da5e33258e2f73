"""The pain.001 transfer file of approved bank-transfer redeem requests: one request's and every
approved one's, marked sent once (a second download is the same bytes), audited, the customer notified;
refused (422, naming the setting) without our bank details; the back office's buttons."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from browser_support import serving_backoffice
from paymux.audit.models import AuditEvent
from paymux.cashdesks.models import RedeemRequest
from paymux.notifications.models import Notification
from test_backoffice_support import add_user, flash_of, follow, form_token, login
from test_cashdesks_api import problem, token
from wallets_support import W, invariants, wallets_env

C = "/api/v1/admin/cashdesks"
NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"}
DEBTOR = {"NAME": "Paymux SRL", "IBAN": "DE89370400440532013000", "BIC": "DEUTDEFF"}
IBANS = ["MD24AG000225100013104168", "MD21EX000000000000000001", "GB82WEST12345698765432"]


def transactions(data: bytes) -> list[tuple[str, str, str, str]]:
    """(end-to-end id, amount, currency, creditor IBAN) of each transaction of a pain.001 file."""
    root = ET.fromstring(data)
    out = []
    for tx in root.iterfind(".//p:CdtTrfTxInf", NS):
        amt = tx.find("p:Amt/p:InstdAmt", NS)
        assert amt is not None and amt.text
        out.append(
            (
                tx.findtext("p:PmtId/p:EndToEndId", "", NS),
                amt.text,
                amt.get("Ccy", ""),
                tx.findtext("p:CdtrAcct/p:Id/p:IBAN", "", NS),
            )
        )
    return out


async def count(env: Any, model: Any, *where: Any) -> int:
    async with env.hub.read_sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_transfer_files_of_redeem_requests(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("NAME", "IBAN", "BIC", "ACCOUNT", "BIK"):
        monkeypatch.delenv(f"PAYMUX_SETTLEMENT_DEBTOR_{k}", raising=False)
    async with wallets_env(db_url) as w:
        env, http = w.env, w.http
        acc = await token(env, "acc", "accountant")
        kass = await token(env, "kass", "cashier")
        bob = await w.customer("bob", phone="+37369000002")
        assert (await w.topup(bob, "rub", "1000.00")).status_code == 201
        wallet = bob.wallets["rub"]
        ids = []
        for i, (iban, amount) in enumerate(zip(IBANS, ("100.00", "50.00", "25.50"), strict=True)):
            body = {
                "from_wallet": wallet,
                "amount": amount,
                "method": "bank_transfer",
                "iban": iban,
                "beneficiary": f"Bob {i}",
            }
            r = await http.post(
                f"{W}/redeem-requests", json=body, headers={**bob.h, "Idempotency-Key": f"b{i}"}
            )
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        cash = {"from_wallet": wallet, "amount": "1.00", "method": "cash"}
        r = await http.post(f"{W}/redeem-requests", json=cash, headers={**bob.h, "Idempotency-Key": "c"})
        cash_id = r.json()["id"]
        a, b, c = ids
        for i in (a, b, c):
            assert (
                await http.post(f"{C}/redeem-requests/{i}/approve", json={}, headers=acc)
            ).status_code == 200

        # without our bank details: refused, nothing marked
        body = problem(
            await http.post(f"{C}/redeem-requests/{a}/transfer-file", headers=acc),
            422,
            "debtor-not-configured",
        )
        assert "PAYMUX_SETTLEMENT_DEBTOR_NAME" in body["detail"]
        problem(
            await http.post(f"{C}/redeem-requests/transfer-file", headers=acc), 422, "debtor-not-configured"
        )
        assert await count(env, RedeemRequest, RedeemRequest.state == "sent") == 0
        for k, v in DEBTOR.items():
            monkeypatch.setenv(f"PAYMUX_SETTLEMENT_DEBTOR_{k}", v)

        problem(await http.post(f"{C}/redeem-requests/{a}/transfer-file", headers=kass), 403, "forbidden")
        problem(
            await http.post(f"{C}/redeem-requests/{cash_id}/transfer-file", headers=acc), 404, "not-found"
        )

        # one request: its file, marked sent; again: the same bytes, nothing marked twice
        r = await http.post(f"{C}/redeem-requests/{a}/transfer-file", headers=acc)
        assert r.status_code == 200, r.text
        first = r.content
        assert transactions(first) == [(f"RDM-{a:08d}", "100.00", "RUB", IBANS[0])]
        root = ET.fromstring(first)
        assert root.findtext(".//p:DbtrAcct/p:Id/p:IBAN", "", NS) == DEBTOR["IBAN"]
        assert root.findtext(".//p:GrpHdr/p:CtrlSum", "", NS) == "100.00"
        again = await http.post(f"{C}/redeem-requests/{a}/transfer-file", headers=acc)
        assert again.status_code == 200 and again.content == first
        r = await http.get(f"{C}/redeem-requests", params={"state": "sent"}, headers=acc)
        assert [x["id"] for x in r.json()["items"]] == [a]
        assert await count(env, AuditEvent, AuditEvent.action == "redeem.send") == 1

        # every approved one not yet sent, in one file
        r = await http.post(f"{C}/redeem-requests/transfer-file", headers=acc)
        assert r.status_code == 200, r.text
        batch = r.content
        assert transactions(batch) == [
            (f"RDM-{b:08d}", "50.00", "RUB", IBANS[1]),
            (f"RDM-{c:08d}", "25.50", "RUB", IBANS[2]),
        ]
        assert ET.fromstring(batch).findtext(".//p:GrpHdr/p:CtrlSum", "", NS) == "75.50"
        problem(await http.post(f"{C}/redeem-requests/transfer-file", headers=acc), 409, "nothing-to-send")
        r = await http.post(f"{C}/redeem-requests/{c}/transfer-file", headers=acc)
        assert r.content == batch  # the file it was sent in, unchanged
        assert await count(env, AuditEvent, AuditEvent.action == "redeem.send") == 3
        assert await count(env, Notification, Notification.event == "wallet.redeem.sent") == 3
        r = await http.get(f"{W}/redeem-requests/{b}", headers=bob.h)
        assert r.json()["state"] == "sent" and r.json()["transfer_batch"]
        r = await http.post(f"{C}/redeem-requests/{cash_id}/cancel", json={"reason": "x"}, headers=acc)
        assert r.status_code == 200  # nothing held left for the ledger's invariants
        await invariants(env)


async def test_the_back_office_buttons(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in DEBTOR.items():
        monkeypatch.setenv(f"PAYMUX_SETTLEMENT_DEBTOR_{k}", v)
    async with wallets_env(db_url) as w, serving_backoffice(w.env.hub) as base:
        await add_user(w.env.hub, "acc", "accountant")
        acc_api = await token(w.env, "acc2", "accountant")
        alice = await w.customer("alice", name="Alice")
        assert (await w.topup(alice, "rub", "100.00")).status_code == 201
        body = {
            "from_wallet": alice.wallets["rub"],
            "amount": "10.00",
            "method": "bank_transfer",
            "iban": IBANS[0],
            "beneficiary": "Alice",
        }
        r = await w.http.post(f"{W}/redeem-requests", json=body, headers={**alice.h, "Idempotency-Key": "x"})
        rid = r.json()["id"]
        assert (
            await w.http.post(f"{C}/redeem-requests/{rid}/approve", json={}, headers=acc_api)
        ).status_code == 200
        async with httpx.AsyncClient(base_url=base) as acc:
            await login(acc, "acc")
            assert "1 bank transfers wait to be sent" in (await acc.get("/backoffice/")).text
            html = (await acc.get("/backoffice/cash/redeem?state=approved&method=bank_transfer")).text
            assert 'id="send-approved"' in html and f'name="request_id" value="{rid}"' in html
            r = await acc.post("/backoffice/cash/redeem/transfer-file", data={"csrf_token": form_token(html)})
            assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
            assert transactions(r.content) == [(f"RDM-{rid:08d}", "10.00", "RUB", IBANS[0])]
            again = await acc.post(
                "/backoffice/cash/redeem/transfer-file",
                data={"csrf_token": form_token(html), "request_id": str(rid)},
            )
            assert again.content == r.content
            r = await acc.post("/backoffice/cash/redeem/transfer-file", data={"csrf_token": form_token(html)})
            assert flash_of((await follow(acc, r)).text) == "no approved bank transfer waits to be sent"
            assert "bank transfers wait to be sent" not in (await acc.get("/backoffice/")).text
        assert await count(w.env, AuditEvent, AuditEvent.action == "redeem.send") == 1
