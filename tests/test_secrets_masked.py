"""Secrets are masked in every read: a distinctive secret is planted in each secret-bearing field, then
every admin GET route of the app's OpenAPI, every back-office page (and its Excel export), the audit
log and ``paymux catalog export`` are read, and no secret may appear in any of them.

The routes are enumerated from the app (OpenAPI for the admin API, the router for the back office):
a new route is read without changing this file. Path parameters are filled from real objects (every
id and code found in the database for that parameter's name); a parameter this file does not know
fails the test with a message saying where to add it. Writes that send a read back (the admin API's
PUTs, the catalog file applied again, back-office forms saved unchanged in Chromium) must keep the
stored secrets.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import itertools
import json
import os
import re
import secrets
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import Select, select

from browser_support import chromium, login, needs_chromium, screenshot, serving_backoffice
from harness import Env, hub_env
from paymux.api.app import create_app
from paymux.audit.models import AuditEvent
from paymux.auth.models import AdminToken, ChannelKey
from paymux.auth.tokens import issue_token
from paymux.auth.user_models import ApiToken, Organization, Role, User
from paymux.backoffice.sections.catalog import KINDS
from paymux.cashdesks.models import CashDay, CashDesk, CashOperation, RedeemRequest
from paymux.catalog.models import Agent, Channel, ChannelGroup, Provider, Service
from paymux.gateways.models import InboundGateway
from paymux.invoices.models import (
    Biller,
    BillerKey,
    Invoice,
    InvoicePayment,
    InvoicePayout,
    InvoiceReceipt,
    InvoiceRefund,
    InvoiceUploadMapping,
)
from paymux.kyc.files import check as check_file
from paymux.kyc.models import KycDocument
from paymux.notifications.models import Notification, WebhookEndpoint
from paymux.notifications.service import Action, Recipient, notify
from paymux.payments.models import Payment
from paymux.providers.cyberplat_envelope import generate_key_pair
from paymux.reconciliation.models import Reconciliation, ReconciliationMapping
from paymux.recurring.models import Customer, RecurringAgent, Subscription
from paymux.registers.models import RegisterTask, RegisterTemplate
from paymux.registers.settings import RegisterSettings
from paymux.registers.worker import RegisterWorker
from paymux.routing.models import RouteSwitch
from paymux.settlement import orders as order_service
from paymux.settlement.models import BalanceAlertRule, BankStatement, PaymentOrder
from paymux.support import service as support_service
from paymux.support.models import Ticket, TicketAttachment
from paymux.tariffs.proposals import TariffProposal
from paymux.wallets.contract_models import WalletContractProposal
from paymux.wallets.models import Issuer, Wallet, WalletCustomer, WalletOperation
from reconciliation_helpers import MAPPING, line_of, write_csv
from registers_helpers import catalog as registers_catalog
from registers_helpers import place_in_period, yesterday
from statements_support import Entry, camt
from test_backoffice_permissions import app_routes
from test_backoffice_support import add_user, session_for
from test_settlement_statements import camt053

A = "/api/v1/admin"
B = "/backoffice"
PAYMUX = Path(sys.executable).parent / "paymux"
STATIC = Path(__file__).parent.parent / "src" / "paymux" / "backoffice" / "static"


def secret(label: str) -> str:
    """A distinctive secret for one field (letters, digits and '-': the same in JSON, HTML, URLs)."""
    return f"{label}-{secrets.token_hex(8)}"


def pem_line(pem: str) -> str:
    """A line from the middle of a PEM block: what would show if the key leaked."""
    lines = [x for x in pem.splitlines() if x and not x.startswith("-----")]
    return lines[len(lines) // 2]


@dataclass
class Planted:
    """The secrets planted, by the field they were planted in."""

    secrets: dict[str, str] = field(default_factory=dict)
    template_id: int = 0
    stored: dict[str, Any] = field(default_factory=dict)  # what the database held right after planting

    def add(self, label: str, value: str | None = None) -> str:
        self.secrets[label] = value or secret(label)
        return self.secrets[label]

    def found_in(self, text: str) -> list[str]:
        return [label for label, value in self.secrets.items() if value in text]


def service_with_pin(cat: dict[str, Any]) -> None:
    """Payments of topup carry a field whose name says it is secret; water is paid to p2 (postpaid)."""
    cat["services"][0]["fields"] = [{"name": "pin_secret", "required": False}]
    cat["services"].append(
        {
            "code": "water",
            "name": "Water",
            "currency": "RUB",
            "route": {"candidates": [{"provider": "p2", "code": "W2"}]},
        }
    )


def more_catalog(planted: Planted) -> dict[str, Any]:
    """Providers of every protocol, a signing channel and a gateway, each with its secrets."""
    key = generate_key_pair(passphrase=planted.add("cyberplat-passphrase"))
    planted.add("cyberplat-private-key", pem_line(key.private_pem))
    provider_key = generate_key_pair()
    dead = "http://127.0.0.1:9"
    return {
        "providers": [
            {
                "code": "osmp-sec",
                "name": "OSMP with secrets",
                "protocol": "osmp",
                "config": {
                    "url": f"{dead}/osmp",
                    "username": "hub",
                    "password": planted.add("osmp-password"),
                    "key_password": planted.add("osmp-key-password"),
                    "params": {"prv_id": "17", "prv_password": planted.add("osmp-param-password")},
                },
            },
            {
                "code": "cyber-sec",
                "name": "Cyberplat with secrets",
                "protocol": "cyberplat",
                "config": {
                    "check_url": f"{dead}/check",
                    "pay_url": f"{dead}/pay",
                    "status_url": f"{dead}/status",
                    "sd": "17031",
                    "ap": "17032",
                    "op": "17034",
                    "key_serial": "17031",
                    "provider_key_serial": "64182",
                    "private_key": key.private_pem,
                    "private_key_passphrase": planted.secrets["cyberplat-passphrase"],
                    "provider_public_key": provider_key.public_pem,
                },
            },
            {
                "code": "url-sec",
                "name": "JSON/HTTP with a password in its URL and undeclared secrets",
                "protocol": "jsonhttp",
                "config": {
                    "url": f"http://hub:{planted.add('jsonhttp-url-password')}@127.0.0.1:9/api",
                    "client_secret": planted.add("jsonhttp-client-secret"),
                    "headers": {"X-Api-Key": planted.add("jsonhttp-header-api-key")},
                },
            },
        ],
        "channels": [
            {
                "code": "signed",
                "name": "Signing channel",
                "kind": "internet_bank",
                "signing": {
                    "mode": "hmac",
                    "required": True,
                    "hmac_secret": planted.add("channel-hmac-secret"),
                },
            },
            {"code": "qiwi", "name": "QIWI", "kind": "gateway"},
        ],
        "gateways": [
            {
                "code": "qiwi",
                "name": "QIWI wallet",
                "services": ["topup"],
                "auth": {"login": "qiwi", "password": planted.add("gateway-password")},
            }
        ],
    }


def templates(planted: Planted) -> list[dict[str, Any]]:
    """A register template with every delivery's secrets and a signing key, and a plain one."""
    full = {
        "code": "full",
        "name": "Every secret",
        "format": "csv",
        "columns": [{"field": "id"}, {"field": "amount"}],
        "deliveries": [
            {
                "kind": "email",
                "host": "127.0.0.1",
                "port": 9,
                "username": "mailer",
                "password": planted.add("smtp-password"),
                "from_addr": "hub@example.com",
                "to": ["provider@example.com"],
            },
            {
                "kind": "ftp",
                "host": "127.0.0.1",
                "port": 9,
                "username": "u",
                "password": planted.add("ftp-password"),
            },
            {
                "kind": "sftp",
                "host": "127.0.0.1",
                "port": 9,
                "username": "u",
                "password": planted.add("sftp-password"),
                "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\n"
                + planted.add("sftp-private-key")
                + "\n-----END OPENSSH PRIVATE KEY-----\n",
                "private_key_passphrase": planted.add("sftp-passphrase"),
                "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfTheProvider",
            },
        ],
        "encryption": {
            "public_key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\nx\n-----END PGP PUBLIC KEY BLOCK-----",
            "sign_key": "-----BEGIN PGP PRIVATE KEY BLOCK-----\n"
            + planted.add("pgp-sign-key")
            + "\n-----END PGP PRIVATE KEY BLOCK-----\n",
            "sign_passphrase": planted.add("pgp-sign-passphrase"),
        },
    }
    plain = {
        "code": "plain",
        "name": "Plain",
        "format": "xlsx",
        "columns": [{"field": "id"}, {"field": "amount"}, {"field": "account"}],
    }
    return [full, plain]


def mapping(planted: Planted) -> dict[str, Any]:
    return {
        **MAPPING,
        "fetch": {
            "source": {
                "kind": "sftp",
                "host": "127.0.0.1",
                "port": 9,
                "username": "u",
                "password": planted.add("recon-sftp-password"),
                "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\n"
                + planted.add("recon-sftp-private-key")
                + "\n-----END OPENSSH PRIVATE KEY-----\n",
                "private_key_passphrase": planted.add("recon-sftp-passphrase"),
                "insecure_skip_host_key": True,
            },
            "schedule": {"enabled": False},
        },
    }


async def ok(r: Any, status: int = 200) -> Any:
    response = await r
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    return response.json() if "json" in response.headers.get("content-type", "") else response


DEBTOR = {
    "PAYMUX_SETTLEMENT_DEBTOR_NAME": "Paymux Hub SRL",
    "PAYMUX_SETTLEMENT_DEBTOR_IBAN": "MD24AG000225100013104168",
    "PAYMUX_SETTLEMENT_DEBTOR_BIC": "AGRNMD2X",
}


@contextlib.asynccontextmanager
async def planted_env(db_url: str, tmp: Path) -> AsyncIterator[tuple[Env, httpx.AsyncClient, Planted]]:
    """The hub (back office over loopback HTTP) with a secret in every secret-bearing field, planted
    through the admin API and the catalog file, and an object behind every route's parameters."""
    planted = Planted()
    cat = registers_catalog()
    service_with_pin(cat)
    token = planted.add("jsonhttp-token")
    cat["providers"][0]["config"] = {"token": token}
    async with (
        hub_env(db_url, catalog=cat, emulators={"p1": {"token": token}}) as env,
        serving_backoffice(env.hub) as base,
        httpx.AsyncClient(base_url=base, headers=env.admin, timeout=30) as api,
    ):
        # the catalog file through the admin API
        body = yaml.safe_dump(more_catalog(planted))
        await ok(api.post(f"{A}/catalog", content=body, headers={"Content-Type": "application/yaml"}))
        async with env.hub.read_sessions() as s:
            gw = await s.scalar(select(InboundGateway).where(InboundGateway.code == "qiwi"))
            assert gw is not None and gw.password_hash
            planted.add("gateway-password-hash", gw.password_hash)
        # registers, reconciliation, alerts
        full, plain = templates(planted)
        planted.template_id = (await ok(api.post(f"{A}/providers/p1/register-templates", json=full), 201))[
            "id"
        ]
        plain_id = (await ok(api.post(f"{A}/providers/p1/register-templates", json=plain), 201))["id"]
        await ok(api.put(f"{A}/providers/p1/reconciliation-mapping", json=mapping(planted)))
        rule = {
            "threshold": "1.00",
            "emails": ["ops@example.com"],
            "webhook_url": f"https://hook:{planted.add('webhook-url-password')}@127.0.0.1:9/alert",
            "webhook_secret": planted.add("webhook-secret"),
        }
        await ok(api.put(f"{A}/providers/p1/balance-alert-rules/RUB", json=rule))

        # payments (a secret-looking field), in yesterday's register and reconciliation
        pin = planted.add("payment-pin-secret")
        ids = []
        for i in range(3):
            r = await env.pay(account=f"900123456{i}", fields={"pin_secret": pin})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        r = await env.pay(channel="web", service="water", account="77")
        assert r.status_code == 201, r.text
        for pid in ids:
            assert (await env.wait_final(pid))["status"] == "succeeded"
        assert (await env.wait_final(r.json()["id"], "web"))["status"] == "succeeded"
        await place_in_period(env.hub, ids, yesterday())
        await ok(
            api.post(
                f"{A}/register-templates/{plain_id}/regenerate",
                json={"date": yesterday().key, "deliver": False},
            ),
            201,
        )
        worker = RegisterWorker(env.hub, RegisterSettings(settle_seconds=0))
        for _ in range(20):
            await worker.run_once()
            tasks = await ok(api.get(f"{A}/register-tasks"))
            if all(t["status"] == "done" for t in tasks):
                break
        assert [t["status"] for t in tasks] == ["done"], tasks
        async with env.hub.read_sessions() as s:
            done = (await s.scalars(select(Payment).where(Payment.id.in_(ids)).order_by(Payment.id))).all()
        their = write_csv(tmp / "their.csv", [line_of(p) for p in done])
        await ok(
            api.post(
                f"{A}/providers/p1/reconciliations",
                files={"file": (their.name, their.read_bytes(), "text/csv")},
                data={"date_from": yesterday().first.isoformat()},
            ),
            201,
        )

        # an object behind every other route: switch, tariff proposal, payment order, bank statement
        await ok(api.post(f"{A}/switches", json={"off": "p3"}), 201)
        proposal = {
            "kind": "fee",
            "channel": "web",
            "currency": "RUB",
            "effective_from": "2030-01-01T00:00:00Z",
            "rule": {"percent": "2"},
        }
        await ok(api.post(f"{A}/tariff-proposals", json=proposal), 201)
        rate = {"base": "EUR", "quote": "RUB", "rate": "98.4512", "effective_from": "2026-01-01T00:00:00Z"}
        await ok(api.post(f"{A}/exchange-rates", json=rate), 201)
        snap = await env.hub.catalog.get()
        async with env.hub.sessions() as s:
            today = dt.datetime.now(snap.providers_by_code["p2"].tz).date()
            made = await order_service.create_orders(
                s,
                snap,
                actor="user:maker",
                provider_code="p2",
                through=today,
                now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2),
            )
            assert made
            await s.commit()
        statement = camt053([{"amount": "10.00", "bank_ref": "B-1", "iban": "DE89370400440532013000"}])
        await ok(api.post(f"{A}/bank-statements", params={"file_name": "s.xml"}, content=statement), 201)
        # notifications: the agent's webhook secret (shown once, here) and a notice with an action token
        hook = await ok(
            api.put(f"{A}/agents/dealer/webhook-endpoint", json={"url": "https://bank.example/hook"}), 201
        )
        planted.add("notification-webhook-secret", hook["secret"])
        async with env.hub.sessions() as s:
            dealer = await s.scalar(select(Agent.id).where(Agent.code == "dealer"))
            assert dealer is not None
            await notify(
                s,
                agent_id=dealer,
                event="debt.confirm",
                recipient=Recipient(phone="+37369123456", email="c@example.com", reference="c-1"),
                data={"service": "Water", "amount": 100, "currency": "RUB"},
                key="planted",
                actions=[
                    Action("confirm", "https://bank.example/c", planted.add("notification-action-token"))
                ],
            )
            await s.commit()
        # recurring payments: the dealer's funding source, and a customer with a subscription
        funding = {
            "channel": "term",
            "funding_protocol": "jsonhttp",
            "funding_config": {
                "url": "https://core.bank.example/funding",
                "token": planted.add("funding-token"),
                "hmac_secret": planted.add("funding-hmac-secret"),
            },
        }
        await ok(api.put(f"{A}/recurring/agents/dealer", json=funding), 201)
        customers = "/api/v1/customers/CUST-1"
        await ok(api.put(customers, json={"currency": "RUB"}, headers=env.headers()), 201)
        tpl = {"key": "t", "name": "Phone", "service": "topup", "account": "9001234567", "amount": "10.00"}
        tid = (await ok(api.post(f"{customers}/templates", json=tpl, headers=env.headers()), 201))["id"]
        sub = {"key": "s", "template_id": tid, "kind": "scheduled", "period": "weekly", "weekday": 1}
        await ok(api.post(f"{customers}/subscriptions", json=sub, headers=env.headers()), 201)
        # invoice collection: a biller's webhook secret (shown once) and API key, the webhook of a change
        biller = {"code": "power", "name": "Power", "webhook_url": "https://power.example/hook"}
        made = await ok(api.post(f"{A}/billers", json=biller), 201)
        planted.add("biller-webhook-secret", made["webhook_secret"])
        # its own settings of the card method: the callback secret and a password in the URL
        own = {
            "merchant": "power-mid",
            "secret": planted.add("biller-method-secret"),
            "url": f"https://mid:{planted.add('biller-method-url-password')}@acquirer.example",
        }
        await ok(api.put(f"{A}/billers/power/methods/card", json=own))
        biller_key = (await ok(api.post(f"{A}/billers/power/keys", json={"name": "billing"}), 201))["key"]
        await ok(
            api.put(f"{A}/billers/power/upload-mappings/monthly", json={"columns": {"number": "Invoice"}})
        )
        planted.add("auth-biller-api-key", biller_key)
        bh = {"Authorization": f"Bearer {biller_key}"}
        inv = {"number": "INV-1", "amount": "10.00", "currency": "EUR", "due_date": "2030-01-01"}
        await ok(api.post("/api/v1/invoices", json=inv, headers=bh), 201)
        await ok(api.post("/api/v1/invoices/INV-1/cancel", headers=bh))
        # invoices paid by transfer: a receipt matched, one waiting; a payout to the biller (its file
        # needs our own bank details)
        account = {"holder": "Power", "iban": "MD21EX000000000001234567", "bic": "AGRNMD2X"}
        await ok(api.patch(f"{A}/billers/power", json={"account": account}))
        inv2 = {"number": "INV-2", "amount": "7.00", "currency": "EUR", "due_date": "2030-01-01"}
        rf = (await ok(api.post("/api/v1/invoices", json=inv2, headers=bh), 201))["reference"]
        lines = [Entry("7.00", "IR-1", "Payer", rf=rf), Entry("3.00", "IR-2", "Nobody", text="?")]
        await ok(api.post(f"{A}/invoices/statements", files={"file": ("s.xml", camt(lines))}))
        # a payment to the paid invoice, refunded by a payment order (its pain.001 is read)
        late = camt([Entry("2.00", "IR-3", "Payer", rf=rf)], msg="MSG3")
        await ok(api.post(f"{A}/invoices/statements", files={"file": ("s3.xml", late)}))
        async with env.hub.read_sessions() as s:
            held = await s.scalar(select(InvoicePayment.id).where(InvoicePayment.method_reference == "IR-3"))
        await ok(api.post(f"{A}/invoices/payments/{held}/refund-decision", json={"decision": "refund"}))
        saved = {k: os.environ.get(k) for k in DEBTOR}
        os.environ.update(DEBTOR)
        today = dt.datetime.now(env.hub.settings.business_tz).date().isoformat()
        assert (await ok(api.post(f"{A}/invoices/payouts", json={"date": today})))["items"]
        async with env.hub.read_sessions() as s:
            for i, h in enumerate((await s.scalars(select(BillerKey.key_hash))).all()):
                planted.add(f"auth-biller-key-hash-{i}", h)
        # e-money: an issuer, a wallet customer with a topped-up wallet; its token is a credential
        issuer = {"code": "rube", "name": "RUB e-money", "kind": "emoney", "currency": "RUB"}
        await ok(api.post(f"{A}/wallets/issuers", json=issuer), 201)
        wc = {"external_ref": "holder-1", "email": "holder@example.com"}
        await ok(api.post("/api/v1/wallet/customers", json=wc, headers=env.headers()), 201)
        minted = await ok(api.post("/api/v1/wallet/customers/holder-1/tokens", headers=env.headers()), 201)
        planted.add("auth-wallet-customer-token", minted["token"])
        topup = {"customer": "holder-1", "issuer": "rube", "amount": "10.00"}
        held = await ok(
            api.post("/api/v1/wallet/topups", json=topup, headers={**env.headers(), "Idempotency-Key": "t1"}),
            201,
        )
        # a contract and a cashback profile proposed for them
        shop = {"external_ref": "shop-1", "kind": "merchant"}
        shop_id = (await ok(api.post("/api/v1/wallet/customers", json=shop, headers=env.headers()), 201))[
            "id"
        ]
        contract = {"issuer": "rube", "group": "vip", "terms": {"p2p": {"fee": {"percent": "1"}}}}
        await ok(api.post(f"{A}/wallets/contract-proposals", json=contract), 201)
        cashback = {"merchant": shop_id, "issuer": "rube", "mode": "fixed", "fixed": "1.00"}
        await ok(api.post(f"{A}/wallets/cashback-proposals", json=cashback), 201)
        # identification and support: a document, a ticket with an attachment
        holder = {"Authorization": f"Bearer {minted['token']}"}
        doc = {"file": ("id.pdf", b"%PDF-1.4 planted", "application/pdf")}
        await ok(
            api.post(
                "/api/v1/wallet/identification/documents",
                data={"kind": "passport"},
                files=doc,
                headers=holder,
            ),
            201,
        )
        ticket = {"subject": "Help", "message": "Where is my top-up?"}
        made = await ok(api.post("/api/v1/wallet/tickets", json=ticket, headers=holder), 201)
        async with env.hub.sessions() as s:
            t = await s.get(Ticket, made["id"])
            assert t is not None
            await support_service.add_attachment(s, t, check_file(b"%PDF-1.4 receipt", "r.pdf"), "test")
            await s.commit()
        # cash desks: a desk with a day, a cash top-up, and a redeem request
        desk = {"code": "d1", "name": "Hall", "organization": "operator", "currencies": ["RUB"]}
        desk_id = (await ok(api.post(f"{A}/cashdesks", json=desk), 201))["id"]
        await ok(api.post(f"{A}/cashdesks/{desk_id}/days", json={"counts": {"RUB": "0.00"}}), 201)
        cash_topup = {"type": "topup", "wallet": held["to_wallet"], "amount": "5.00"}
        await ok(
            api.post(
                f"{A}/cashdesks/{desk_id}/operations", json=cash_topup, headers={"Idempotency-Key": "c1"}
            ),
            201,
        )
        redeem = {"from_wallet": held["to_wallet"], "amount": "1.00", "method": "cash"}
        customer_h = {"Authorization": f"Bearer {minted['token']}", "Idempotency-Key": "r1"}
        await ok(api.post("/api/v1/wallet/redeem-requests", json=redeem, headers=customer_h), 201)
        await add_user(env.hub, "root", "administrator")
        planted.stored = await stored_secrets(env)
        await plant_credentials(env, planted)
        try:
            yield env, api, planted
        finally:
            for k, old in saved.items():
                if old is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = old


async def plant_credentials(env: Env, planted: Planted) -> None:
    """The hub's own credentials (``auth-``): keys and tokens as issued, their hashes, users' password
    hashes and TOTP secrets. No read shows them either."""
    totp = "AUTHTOTPSECRET234567ABCDEFGHIJKL"
    otp = await add_user(env.hub, "otp", "support", second_factor="totp", totp_secret=totp)
    planted.add("auth-totp-secret", totp)
    async with env.hub.sessions() as s:
        user = await s.get(User, otp.id)
        assert user is not None
        personal, _ = await issue_token(s, user, "personal", None)
        await s.commit()
    planted.add("auth-api-token", personal)
    planted.add("auth-admin-token", env.admin_token)
    for code, key in env.keys.items():
        planted.add(f"auth-channel-key-{code}", key)
    async with env.hub.read_sessions() as s:
        for name, h in (await s.execute(select(User.username, User.password_hash))).all():
            planted.add(f"auth-password-hash-{name}", h)
        for i, h in enumerate((await s.scalars(select(AdminToken.token_hash))).all()):
            planted.add(f"auth-admin-token-hash-{i}", h)
        for i, h in enumerate((await s.scalars(select(ChannelKey.key_hash))).all()):
            planted.add(f"auth-channel-key-hash-{i}", h)
        for i, h in enumerate((await s.scalars(select(ApiToken.token_hash))).all()):
            planted.add(f"auth-api-token-hash-{i}", h)


async def stored_secrets(env: Env) -> dict[str, Any]:
    """Everything secrets are stored in, straight from the database."""
    async with env.hub.read_sessions() as s:
        return {
            "providers": {p.code: p.config for p in (await s.scalars(select(Provider))).all()},
            "channels": {c.code: c.hmac_secret for c in (await s.scalars(select(Channel))).all()},
            "gateways": {g.code: g.password_hash for g in (await s.scalars(select(InboundGateway))).all()},
            "templates": {t.code: t.config for t in (await s.scalars(select(RegisterTemplate))).all()},
            "mappings": [m.config for m in (await s.scalars(select(ReconciliationMapping))).all()],
            "alert_rules": [
                (r.webhook_url, r.webhook_secret) for r in (await s.scalars(select(BalanceAlertRule))).all()
            ],
            "webhook_endpoints": list((await s.scalars(select(WebhookEndpoint.secret))).all()),
            "notifications": list((await s.scalars(select(Notification.payload))).all()),
            "billers": {b.code: b.webhook_secret for b in (await s.scalars(select(Biller))).all()},
            "biller_methods": {b.code: b.method_config for b in (await s.scalars(select(Biller))).all()},
            "recurring_agents": {
                r.agent_id: r.funding_config for r in (await s.scalars(select(RecurringAgent))).all()
            },
        }


# --- reading every route -----------------------------------------------------------------------------


def readable(r: httpx.Response) -> str:
    """Everything a response shows: headers, body, and each part of a zip (Excel) file."""
    parts = [json.dumps(dict(r.headers))]
    if r.content[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(r.content)) as z:
            parts += [z.read(name).decode("utf-8", "replace") for name in z.namelist()]
    else:
        parts.append(r.content.decode("utf-8", "replace"))
    return "\n".join(parts)


async def param_values(env: Env) -> dict[str, list[str]]:
    """Real values of every path parameter name the routes use, from the database."""

    async def all_of(query: Select[Any]) -> list[str]:
        async with env.hub.read_sessions() as s:
            return [str(v) for v in (await s.scalars(query)).all()]

    async def all_of_raw(query: Select[Any]) -> list[Any]:
        async with env.hub.read_sessions() as s:
            return list((await s.scalars(query)).all())

    codes: list[str] = []
    for model in (Provider, Service, Channel, ChannelGroup, Agent, InboundGateway, Biller, Issuer):
        codes += await all_of(select(model.code))
    return {
        "code": sorted(set(codes)),
        "provider": await all_of(select(Provider.code)),
        "slug": list(KINDS),
        "name": sorted(p.name for p in STATIC.iterdir()),
        "payment_id": await all_of(select(Payment.id)),
        "template_id": await all_of(select(RegisterTemplate.id)),
        "task_id": await all_of(select(RegisterTask.id)),
        "recon_id": await all_of(select(Reconciliation.id)),
        "order_id": await all_of(select(PaymentOrder.id)),
        "statement_id": await all_of(select(BankStatement.id)),
        "proposal_id": sorted(
            set(await all_of(select(TariffProposal.id)) + await all_of(select(WalletContractProposal.id)))
        ),
        "switch_id": await all_of(select(RouteSwitch.id)),
        "user_id": await all_of(select(User.id)),
        "role_id": await all_of(select(Role.id)),
        "org_id": await all_of(select(Organization.id)),
        "event_id": await all_of(select(AuditEvent.id)),
        "key_id": await all_of(select(ChannelKey.id)),
        # admin tokens and users' API tokens (each route finds its own kind)
        "token_id": sorted(set(await all_of(select(AdminToken.id)) + await all_of(select(ApiToken.id)))),
        "notification_id": await all_of(select(Notification.id)),
        "event": ["debt.confirm"],
        "channel": ["sms", "email"],
        "language": ["en", "ru"],
        "customer_id": sorted(
            set(await all_of(select(Customer.id)) + await all_of(select(WalletCustomer.id)))
        ),
        "subscription_id": await all_of(select(Subscription.id)),
        "receipt_id": await all_of(select(InvoiceReceipt.id)),
        "refund_id": await all_of(select(InvoiceRefund.id)),
        "invoice_id": await all_of(select(Invoice.id)),
        "payout_id": await all_of(select(InvoicePayout.id)),
        "mapping": await all_of(select(InvoiceUploadMapping.name)),
        "date": sorted({d.isoformat() for d in await all_of_raw(select(InvoicePayout.payout_date))}),
        "wallet_id": await all_of(select(Wallet.id)),
        "operation_id": await all_of(select(WalletOperation.id)) + await all_of(select(CashOperation.id)),
        "document_id": await all_of(select(KycDocument.id)),
        "ticket_id": await all_of(select(Ticket.id)),
        "attachment_id": await all_of(select(TicketAttachment.id)),
        "desk_id": await all_of(select(CashDesk.id)),
        "day_id": await all_of(select(CashDay.id)),
        "request_id": await all_of(select(RedeemRequest.id)),
    }


# required query parameters of GET routes, by name (OpenAPI says which are required)
QUERY_VALUES = {"amount": "100.00", "from": "EUR", "to": "RUB"}
# ... where a route gives a name another meaning (a statement's period)
PATH_QUERY_VALUES = {
    "/api/v1/admin/wallets/wallets/{wallet_id}/statement": {
        "from": (dt.date.today() - dt.timedelta(days=300)).isoformat(),
        "to": (dt.date.today() + dt.timedelta(days=30)).isoformat(),
    }
}


def urls_of(path: str, values: dict[str, list[str]]) -> list[str]:
    """``path`` with its parameters filled in every combination of their real values."""
    names = re.findall(r"\{(\w+)\}", path)
    unknown = [n for n in names if n not in values]
    assert not unknown, (
        f"{path}: the test cannot fill {unknown}; add where their values come from to param_values"
    )
    assert all(values[n] for n in names), f"{path}: no object for {[n for n in names if not values[n]]}"
    urls = []
    for combo in itertools.product(*(values[n] for n in names)):
        url = path
        for n, v in zip(names, combo, strict=True):
            url = url.replace("{" + n + "}", v)
        urls.append(url)
    return urls


@dataclass
class Sweep:
    """What was read: leaks found, calls that failed, routes never read successfully."""

    leaks: list[tuple[str, list[str]]] = field(default_factory=list)
    failures: list[tuple[str, int]] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)
    reads: int = 0

    async def route(
        self, http: httpx.AsyncClient, path: str, urls: list[str], planted: Planted, *, redirects_ok: bool
    ) -> None:
        read = False
        for url in urls:
            r = await http.get(url)
            self.reads += 1
            if found := planted.found_in(readable(r)):
                self.leaks.append((url, found))
            redirected = r.status_code in (302, 303) and "/login" not in r.headers.get("location", "")
            if r.status_code == 200 or (redirects_ok and redirected):
                read = True
            elif r.status_code >= 500 or r.status_code in (401, 403) or r.status_code in (302, 303):
                self.failures.append((url, r.status_code))
        if not read:
            self.unread.append(path)


async def sweep_api(api: httpx.AsyncClient, env: Env, planted: Planted) -> Sweep:
    """Every GET route under /api/v1/admin in the app's OpenAPI, every object behind its parameters."""
    spec = await ok(api.get("/openapi.json"))
    values = await param_values(env)
    result = Sweep()
    routes = [
        (p, op) for p, ops in spec["paths"].items() if p.startswith(A) for m, op in ops.items() if m == "get"
    ]
    assert len(routes) > 40, [p for p, _ in routes]
    for path, op in routes:
        query = {
            q["name"]: PATH_QUERY_VALUES.get(path, {}).get(q["name"], QUERY_VALUES[q["name"]])
            for q in op.get("parameters", [])
            if q["in"] == "query" and q.get("required")
        }
        urls = [
            u + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
            for u in urls_of(path, values)
        ]
        await result.route(api, path, urls, planted, redirects_ok=False)
    return result


async def sweep_backoffice(env: Env, base: str, planted: Planted) -> Sweep:
    """Every GET page of the back office (and its Excel export) as the Administrator."""
    raw = await session_for(env.hub, "root")
    values = await param_values(env)
    result = Sweep()
    paths = sorted(p for m, p in app_routes(create_app(env.hub)) if m == "GET" and p.startswith(B))
    assert len(paths) > 40, paths
    async with httpx.AsyncClient(base_url=base, headers={"Cookie": f"pmx_session={raw}"}, timeout=30) as http:
        for path in paths:
            urls = urls_of(path, values)
            await result.route(
                http, path, urls + [u + "?export=xlsx" for u in urls], planted, redirects_ok=True
            )
    return result


def cli_export(db_url: str, *args: str, token: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")}
    env |= {"PAYMUX_DATABASE_URL": db_url, "PAYMUX_LOG_LEVEL": "warning"}
    if token:
        env["PAYMUX_ADMIN_TOKEN"] = token
    return subprocess.run(
        [str(PAYMUX), "catalog", "export", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- the tests ---------------------------------------------------------------------------------------


async def send_reads_back(api: httpx.AsyncClient, planted: Planted) -> None:
    """Every admin read that can be written back is: the stored secrets must stay as they were."""
    for code in planted.stored["providers"]:
        body = await ok(api.get(f"{A}/providers/{code}"))
        body["name"] += " (renamed)"
        assert (await ok(api.put(f"{A}/providers/{code}", json=body)))["change"] == "updated"
    for ch in await ok(api.get(f"{A}/channels")):
        ch["name"] += " (renamed)"
        await ok(api.put(f"{A}/channels/{ch['code']}", json=ch))
    for gw in await ok(api.get(f"{A}/gateways")):
        gw["name"] += " (renamed)"
        await ok(api.put(f"{A}/gateways/{gw['code']}", json=gw))
    tpl = await ok(api.get(f"{A}/register-templates/{planted.template_id}"))
    tpl = {k: v for k, v in tpl.items() if k not in ("id", "provider", "created_at", "updated_at")}
    tpl["name"] += " (renamed)"
    await ok(api.put(f"{A}/register-templates/{planted.template_id}", json=tpl))
    await ok(
        api.put(
            f"{A}/providers/p1/reconciliation-mapping",
            json=await ok(api.get(f"{A}/providers/p1/reconciliation-mapping")),
        )
    )
    (rule,) = await ok(api.get(f"{A}/providers/p1/balance-alert-rules"))
    rule = {k: rule[k] for k in ("threshold", "emails", "webhook_url", "webhook_secret", "enabled")}
    await ok(api.put(f"{A}/providers/p1/balance-alert-rules/RUB", json={**rule, "threshold": "2.00"}))
    settings = await ok(api.get(f"{A}/recurring/agents/dealer"))
    settings = {k: v for k, v in settings.items() if k not in ("agent", "updated_at")}
    await ok(api.put(f"{A}/recurring/agents/dealer", json={**settings, "catch_up_hours": 24}))
    power = await ok(api.get(f"{A}/billers/power"))
    await ok(api.put(f"{A}/billers/power/methods/card", json=power["method_config"]["card"]))
    # the whole catalog, as read, applied again: nothing changes
    text = (await ok(api.get(f"{A}/catalog"))).text
    applied = await ok(api.post(f"{A}/catalog", content=text, headers={"Content-Type": "application/yaml"}))
    assert applied["changes"] == [], applied


def renamed_only(before: dict[str, Any], after: dict[str, Any]) -> None:
    """The stored secrets after the writes are those planted (names aside, nothing else changed)."""
    assert after["providers"] == before["providers"]
    assert after["channels"] == before["channels"]
    assert after["gateways"] == before["gateways"]
    assert after["mappings"] == before["mappings"]
    assert after["alert_rules"] == before["alert_rules"]
    assert after["templates"] == before["templates"]
    assert after["recurring_agents"] == before["recurring_agents"]
    assert after["biller_methods"] == before["biller_methods"]


async def test_no_read_shows_a_secret(db_url: str, tmp_path: Path) -> None:
    async with planted_env(db_url, tmp_path) as (env, api, planted):
        # every secret is stored as planted (the reads below have something to hide); the gateway's
        # password is stored as its hash, the payment's field with the payment
        stored = json.dumps(planted.stored)
        missing = {
            label
            for label, value in planted.secrets.items()
            if value not in stored and not label.startswith("auth-")
        }
        assert missing == {"gateway-password", "payment-pin-secret"}, missing
        await send_reads_back(api, planted)
        renamed_only(planted.stored, await stored_secrets(env))

        swept = await sweep_api(api, env, planted)
        assert swept.reads > 150 and len(planted.secrets) > 30, (swept.reads, planted.secrets)
        assert swept.leaks == [], swept.leaks
        assert swept.failures == [] and swept.unread == [], (swept.failures, swept.unread)
        office = await sweep_backoffice(env, str(api.base_url).rstrip("/"), planted)
        assert office.reads > 300, office.reads
        assert office.leaks == [], office.leaks
        assert office.failures == [] and office.unread == [], (office.failures, office.unread)

        # the audit log itself (what the pages above showed is what is stored)
        async with env.hub.read_sessions() as s:
            events = (await s.scalars(select(AuditEvent))).all()
        assert len(events) > 10
        assert [e.action for e in events if planted.found_in(json.dumps([e.before, e.after]))] == []

        # paymux catalog export: placeholders; the secrets only with an administrator's token
        r = cli_export(env.hub.settings.database_url)
        assert r.returncode == 0, r.stderr
        assert planted.found_in(r.stdout + r.stderr) == []
        assert "'***'" in r.stdout
        r = cli_export(env.hub.settings.database_url, "--with-secrets", token=env.admin_token)
        assert r.returncode == 0, r.stderr
        in_catalog = [
            label
            for label in planted.secrets
            if label.startswith(("jsonhttp", "osmp", "cyberplat", "channel"))
        ]
        assert set(in_catalog) <= set(planted.found_in(r.stdout)), planted.found_in(r.stdout)


@needs_chromium
async def test_forms_saved_unchanged_keep_the_secrets(db_url: str, tmp_path: Path) -> None:
    async with planted_env(db_url, tmp_path) as (env, api, planted), chromium() as browser:
        base = str(api.base_url).rstrip("/")
        page = await browser.new_page()
        await login(page, base, "root")
        # each form as shown, saved as it is: (page, its save button, what the page says after)
        forms: list[tuple[str, str, str]] = [
            *(
                (f"{B}/catalog/providers/{code}", "#save", "Nothing changed.")
                for code in planted.stored["providers"]
            ),
            (f"{B}/catalog/channels/signed", "#save", "Nothing changed."),
            (f"{B}/registers/templates/{planted.template_id}", "#save", "Saved."),
            (
                f"{B}/reconciliation-mappings/p1",
                f'form[action="{B}/reconciliation-mappings/p1"] button[type=submit]',
                "Saved.",
            ),
            (
                f"{B}/balances/p1?currency=RUB",
                f'form[action="{B}/balances/p1/alerts"] button[type=submit]',
                "The alert settings were saved.",
            ),
        ]
        for url, button, said in forms:
            await page.goto(base + url)
            assert planted.found_in(await page.content()) == [], url
            await page.click(button)
            await page.wait_for_load_state()
            await screenshot(page, f"secrets-saved-{url}")
            assert await page.locator(".flash").inner_text() == said, (url, await page.content())
        after = await stored_secrets(env)
        renamed_only(planted.stored, after)
