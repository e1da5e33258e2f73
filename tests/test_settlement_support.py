"""Helpers for the settlement tests (no tests here): a hub with the test catalog, an API client, payments
with their real ledger postings at chosen times, servers that receive alerts."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from harness import BASE_CATALOG
from harness import test_settings as hub_settings
from paymux.api.app import create_app
from paymux.auth.keys import issue_admin_token
from paymux.catalog.file import apply_catalog
from paymux.ledger.models import JournalEntry
from paymux.ledger.service import AccountKey, post_entry
from paymux.payments.models import Payment
from paymux.payments.postings import accept_lines, provider_account, success_lines
from paymux.runtime import Hub
from paymux.settlement.models import SettlementDetails

UTC = dt.UTC
# real-looking bank details (valid IBAN check digits, 20-digit Russian accounts)
P2_IBAN = "DE89370400440532013000"
P2_ACCOUNT = "40702810900000000002"
P2_INN = "7701234567"
P1_IBAN = "GB82WEST12345698765432"
P1_ACCOUNT = "40702810900000000001"


def catalog(**timezones: str) -> dict[str, Any]:
    cat = copy.deepcopy(BASE_CATALOG)
    for p in cat["providers"]:
        p["config"] = {"url": "http://127.0.0.1:9"}
        if p["code"] in timezones:
            p["timezone"] = timezones[p["code"]]
    return cat


@dataclass
class SEnv:
    hub: Hub
    app: FastAPI
    http: httpx.AsyncClient
    token: str
    counter: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def provider_id(self, code: str) -> int:
        return (await self.hub.catalog.get()).providers_by_code[code].id

    async def pay(
        self,
        provider: str,
        amount: int,
        at: dt.datetime,
        *,
        remuneration: int = 0,
        status: str = "succeeded",
        currency: str = "RUB",
    ) -> int:
        """A payment of ``amount`` through channel term to ``provider``, final at ``at``, with the journal
        entries the hub posts for it (accept, then success or the reverse of accept)."""
        snap = await self.hub.catalog.get()
        p = snap.providers_by_code[provider]
        channel = snap.channels_by_code["term"]
        service = snap.services["topup"]
        self.counter += 1
        pay = Payment(
            channel_id=channel.id,
            external_id=f"s-{self.counter}",
            request_hash=hashlib.sha256(str(self.counter).encode()).hexdigest(),
            service_id=service.id,
            account="9001234567",
            currency=currency,
            amount=amount,
            fee=0,
            total=amount,
            remuneration=remuneration,
            commission=0,
            status=status,
            provider_id=p.id,
            provider_service_code="T",
            expires_at=at + dt.timedelta(days=1),
            created_at=at - dt.timedelta(seconds=2),
            updated_at=at,
            final_at=at,
        )
        async with self.hub.sessions() as s:
            s.add(pay)
            await s.flush()
            key = provider_account(p.id, p.settlement, currency)
            await post_entry(
                s,
                self.hub.accounts,
                "accept",
                accept_lines(pay, key),
                payment_id=pay.id,
                at=at - dt.timedelta(seconds=2),
            )
            if status == "succeeded":
                if remuneration:
                    await post_entry(
                        s, self.hub.accounts, "success", success_lines(pay, p.id), payment_id=pay.id, at=at
                    )
            else:
                rev = [type(ln)(ln.key, -ln.amount) for ln in accept_lines(pay, key)]
                await post_entry(s, self.hub.accounts, "reverse", rev, payment_id=pay.id, at=at)
            await s.commit()
            return pay.id

    async def balance(self, kind: str, provider: str, currency: str = "RUB") -> int:
        from paymux.ledger.service import balance

        owner = await self.provider_id(provider) if provider else 0
        async with self.hub.sessions() as s:
            return await balance(s, self.hub.accounts, AccountKey(kind, owner, currency))

    async def entries(self, kind: str) -> int:
        async with self.hub.read_sessions() as s:
            return int(
                await s.scalar(
                    select(func.count()).select_from(JournalEntry).where(JournalEntry.kind == kind)
                )
                or 0
            )

    async def details(self, provider: str, **values: Any) -> None:
        pid = await self.provider_id(provider)
        async with self.hub.sessions() as s:
            s.add(SettlementDetails(provider_id=pid, **values))
            await s.commit()


@contextlib.asynccontextmanager
async def settle_env(db_url: str, cat: dict[str, Any] | None = None, **settings: Any) -> AsyncIterator[SEnv]:
    hub = Hub(hub_settings(db_url, **settings))
    async with hub.sessions() as s:
        await apply_catalog(s, cat or catalog(), actor="test")
        token = await issue_admin_token(s, "test")
        await s.commit()
    hub.catalog_changed()
    app = create_app(hub)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http:
            yield SEnv(hub, app, http, token)
    finally:
        await hub.close()


@dataclass
class WebhookReceiver:
    """An HTTP server app that records the requests it gets (answers 200, or ``fail_with``)."""

    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    fail_with: int | None = None

    def app(self) -> Starlette:
        async def hook(request: Request) -> JSONResponse:
            body = await request.body()
            if self.fail_with:
                return JSONResponse({"error": "unavailable"}, status_code=self.fail_with)
            self.received.append(({k.lower(): v for k, v in request.headers.items()}, body))
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)
