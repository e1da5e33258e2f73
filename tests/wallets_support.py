"""Helpers for the wallet tests (no tests here): a hub on loopback with issuers, and customers signed
up by the channel ``term`` with their tokens."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from harness import Env, hub_env
from paymux.ledger.models import Account
from paymux.ledger.service import verify_ledger
from paymux.wallets import service
from paymux.wallets.models import Issuer, Wallet

W = "/api/v1/wallet"
AW = "/api/v1/admin/wallets"
_keys = itertools.count(1)

ISSUERS: list[dict[str, Any]] = [
    {
        "code": "rub",
        "name": "RUB e-money",
        "kind": "emoney",
        "currency": "RUB",
        "fee_rules": {"p2p": {"percent": "1", "min": 100}, "withdrawal": {"fixed": 500}},
        "exchange_spread_percent": "2",
    },
    {
        "code": "eur",
        "name": "EUR e-money",
        "kind": "emoney",
        "currency": "EUR",
        "exchange_spread_percent": "1.5",
    },
    {"code": "bonus", "name": "Bonus points", "kind": "points", "currency": "PTS", "precision": 0},
]


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"k-{next(_keys)}"}


@dataclass
class Customer:
    ref: str
    id: int
    token: str
    wallets: dict[str, int] = field(default_factory=dict)

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Wallets:
    env: Env

    @property
    def http(self) -> httpx.AsyncClient:
        return self.env.http

    async def customer(self, ref: str, identification: str = "identified", **extra: Any) -> Customer:
        r = await self.http.post(
            f"{W}/customers",
            json={"external_ref": ref, "identification": identification, **extra},
            headers=self.env.headers(),
        )
        assert r.status_code in (200, 201), r.text
        cid = r.json()["id"]
        r = await self.http.post(f"{W}/customers/{ref}/tokens", headers=self.env.headers())
        assert r.status_code == 201, r.text
        return Customer(ref, cid, r.json()["token"])

    async def open(self, c: Customer, issuer: str) -> int:
        r = await self.http.post(f"{W}/wallets", json={"issuer": issuer}, headers=c.h)
        assert r.status_code in (200, 201), r.text
        c.wallets[issuer] = r.json()["id"]
        return int(r.json()["id"])

    async def topup(self, c: Customer, issuer: str, amount: str, **headers: str) -> httpx.Response:
        h = {**self.env.headers(), **(headers or key())}
        r = await self.http.post(
            f"{W}/topups", json={"customer": c.ref, "issuer": issuer, "amount": amount}, headers=h
        )
        if r.status_code in (200, 201):
            c.wallets[issuer] = r.json()["to_wallet"]
        return r

    async def p2p(
        self, c: Customer, src: int, dst: int, amount: str, k: dict[str, str] | None = None
    ) -> httpx.Response:
        body = {"from_wallet": src, "to_wallet": dst, "amount": amount}
        return await self.http.post(f"{W}/transfers", json=body, headers={**c.h, **(k or key())})

    async def exchange(self, c: Customer, src: int, dst: int, amount: str) -> httpx.Response:
        body = {"from_wallet": src, "to_wallet": dst, "amount": amount}
        return await self.http.post(f"{W}/exchanges", json=body, headers={**c.h, **key()})

    async def withdraw(self, c: Customer, src: int, amount: str) -> httpx.Response:
        return await self.http.post(
            f"{W}/withdrawals", json={"from_wallet": src, "amount": amount}, headers={**c.h, **key()}
        )

    async def balance(self, c: Customer, wallet_id: int) -> str:
        r = await self.http.get(f"{W}/wallets/{wallet_id}", headers=c.h)
        assert r.status_code == 200, r.text
        return str(r.json()["balance"])

    async def check_invariants(self) -> None:
        await invariants(self.env)


async def invariants(env: Env) -> None:
    """Every entry balanced, balances equal their postings, no wallet below minus its overdraft, and
    per issuer: emitted (minus the float) == its wallets + its fees + what service payments hold."""
    async with env.hub.read_sessions() as session:
        check = await verify_ledger(session)
        assert check.balanced, check
        rows = (
            await session.execute(
                select(Wallet.id, Wallet.overdraft, Account.balance).join(
                    Account, Account.id == Wallet.account_id
                )
            )
        ).all()
        for wid, overdraft, bal in rows:
            assert bal >= -overdraft, f"wallet {wid} at {bal} below its overdraft {overdraft}"
        for issuer in (await session.scalars(select(Issuer))).all():
            t = await service.issuer_totals(session, env.hub.accounts, issuer)
            assert t["emitted"] == t["wallets"] + t["fees"] + t["held"], (issuer.code, t)
            if issuer.emission_limit is not None:
                assert t["emitted"] <= issuer.emission_limit


@contextlib.asynccontextmanager
async def wallets_env(
    db_url: str, issuers: list[dict[str, Any]] | None = None, **hub: Any
) -> AsyncIterator[Wallets]:
    async with hub_env(db_url, **{"run_workers": False, **hub}) as env:
        for body in issuers if issuers is not None else ISSUERS:
            r = await env.http.post(f"{AW}/issuers", json=body, headers=env.admin)
            assert r.status_code == 201, r.text
        r = await env.http.post(
            "/api/v1/admin/exchange-rates",
            json={"base": "EUR", "quote": "RUB", "rate": "98.4512", "effective_from": "2020-01-01T00:00:00Z"},
            headers=env.admin,
        )
        assert r.status_code in (200, 201), r.text
        yield Wallets(env)
