"""The billers' admin API on both databases: creating and changing billers (validated, audited),
secrets shown once and masked in every read and in the audit log, API keys issued / listed / revoked,
and the permissions (``invoices.read`` / ``invoices.write``: 403 without)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from invoices_support import AB, billing_env
from paymux.audit.models import AuditEvent
from paymux.auth.tokens import issue_token
from paymux.auth.user_models import User
from paymux.invoices.models import Biller, BillerKey
from test_backoffice_support import add_user

FULL: dict[str, Any] = {
    "code": "telco",
    "name": "Telco SRL",
    "brand": {
        "logo_url": "https://telco.example/logo.png",
        "primary_color": "#003366",
        "accent_color": "#FFCC00",
    },
    "legal": {"legal_name": "Telco SRL", "registration_number": "1002600000000", "address": "Chisinau"},
    "support": {"email": "help@telco.example", "phone": "+37322000000", "url": "https://telco.example/help"},
    "methods": ["bank_transfer", "card", "card"],
    "account": {"holder": "Telco SRL", "iban": "MD24AG000225100013104168", "bic": "AGRNMD2X"},
    "reminder_days": [14, -3, 0, 7],
    "fee": {"amount": "0.35", "currency": "EUR"},
    "webhook_url": "https://billing.telco.example/paymux?tenant=1",
}


async def token(b: Any, role: str) -> dict[str, str]:
    user = await add_user(b.env.hub, f"u_{role}", role)
    async with b.env.hub.sessions() as s:
        u = await s.get(User, user.id)
        assert u is not None
        raw, _ = await issue_token(s, u, "t", None)
        await s.commit()
    return {"Authorization": f"Bearer {raw}"}


async def test_biller_created_shown_once_masked_and_audited(db_url: str) -> None:
    async with billing_env(db_url) as b:
        admin = b.env.admin
        r = await b.http.post(AB, json=FULL, headers=admin)
        assert r.status_code == 201, r.text
        made = r.json()
        secret = made["webhook_secret"]
        assert secret.startswith("whsec_")
        assert made["methods"] == ["card", "bank_transfer"] and made["reminder_days"] == [-3, 0, 7, 14]
        assert made["fee"] == {"amount": "0.35", "currency": "EUR"}
        async with b.env.hub.read_sessions() as s:
            row = await s.scalar(select(Biller).where(Biller.code == "telco"))
            assert row is not None and row.fee_amount == 35 and row.webhook_secret
        for read in (
            await b.http.get(f"{AB}/telco", headers=admin),
            await b.http.get(AB, headers=admin),
            await b.http.patch(f"{AB}/telco", json={"name": "Telco"}, headers=admin),
        ):
            assert read.status_code == 200 and secret not in read.text and '"***"' in read.text
        assert (await b.http.post(AB, json=FULL, headers=admin)).status_code == 409
        # a new secret replaces the old one, shown once
        new = (await b.http.post(f"{AB}/telco/webhook/secret", headers=admin)).json()["webhook_secret"]
        assert new != secret and new.startswith("whsec_")
        async with b.env.hub.read_sessions() as s:
            events = (await s.scalars(select(AuditEvent).where(AuditEvent.action.like("biller.%")))).all()
            stored = await s.scalar(select(Biller.webhook_secret).where(Biller.code == "telco"))
        assert stored == new  # no sealing key configured in the tests: as it is
        assert {"biller.create", "biller.update", "biller.webhook_secret", "biller.key_issue"} <= {
            e.action for e in events
        }
        dump = str([(e.before, e.after) for e in events])
        assert secret not in dump and new not in dump and b.key not in dump


async def test_keys_issued_hashed_and_revoked(db_url: str) -> None:
    async with billing_env(db_url) as b:
        admin = b.env.admin
        r = await b.http.post(f"{AB}/power/keys", headers=admin)
        assert r.status_code == 201
        key = r.json()["key"]
        assert key.startswith("pmx_bl_")
        async with b.env.hub.read_sessions() as s:
            hashes = (await s.scalars(select(BillerKey.key_hash))).all()
        assert key not in hashes and b.key not in hashes and len(hashes) == 2
        listed = (await b.http.get(f"{AB}/power/keys", headers=admin)).json()
        assert [k["key"] for k in listed] == ["***", "***"] and key not in str(listed)
        r = await b.http.post(f"{AB}/power/keys/{listed[1]['id']}/revoke", headers=admin)
        assert r.status_code == 200
        assert (
            await b.http.get("/api/v1/invoices/changes", headers={"Authorization": f"Bearer {key}"})
        ).status_code == 401
        assert (await b.http.get("/api/v1/invoices/changes", headers=b.h)).status_code == 200
        assert (await b.http.post(f"{AB}/power/keys/999999/revoke", headers=admin)).status_code == 404
        assert (await b.http.post(f"{AB}/nope/keys", headers=admin)).status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        {"code": "Bad Code"},
        {"name": ""},
        {"brand": {"primary_color": "red"}},
        {"brand": {"logo_url": "javascript:alert(1)"}},
        {"methods": ["cash"]},
        {"account": {"iban": "not an iban"}},
        {"reminder_days": [400]},
        {"reminder_days": list(range(21))},
        {"fee": {"amount": "0.001", "currency": "EUR"}},
        {"fee": {"amount": "1", "currency": "ZZZ"}},
        {"webhook_url": "ftp://x.example/"},
        {"webhook_url": "https://x.example/" + "a" * 2000},
        {"name": "A\x00B"},
        {"unknown": 1},
    ],
)
async def test_invalid_billers_are_422(db_url: str, change: dict[str, Any]) -> None:
    async with billing_env(db_url) as b:
        r = await b.http.post(AB, json={**FULL, **change}, headers=b.env.admin)
        assert r.status_code == 422, (change, r.text)
        if "code" not in change:
            r = await b.http.patch(f"{AB}/power", json=change, headers=b.env.admin)
            assert r.status_code == 422, (change, r.text)


async def test_permissions(db_url: str) -> None:
    async with billing_env(db_url) as b:
        support = await token(b, "support")  # invoices.read only
        operator = await token(b, "operator")  # invoices.read and invoices.write
        cashier = await token(b, "cashier")  # neither
        assert (await b.http.get(AB, headers=support)).status_code == 200
        assert (await b.http.get(f"{AB}/power/keys", headers=support)).status_code == 200
        for method, path, body in (
            ("POST", AB, {**FULL, "code": "x1"}),
            ("PATCH", f"{AB}/power", {"name": "X"}),
            ("POST", f"{AB}/power/keys", None),
            ("POST", f"{AB}/power/webhook/secret", None),
        ):
            assert (await b.http.request(method, path, json=body, headers=support)).status_code == 403
            assert (await b.http.request(method, path, json=body, headers=cashier)).status_code == 403
        assert (await b.http.get(AB, headers=cashier)).status_code == 403
        assert (await b.http.post(AB, json={**FULL, "code": "x2"}, headers=operator)).status_code == 201
        assert (await b.http.get(AB)).status_code == 401
        # a biller's key is not an admin credential
        assert (await b.http.get(AB, headers=b.h)).status_code == 401
