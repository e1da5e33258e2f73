"""The back-office pages "Contracts" and "Cashback profiles" (area E-money): a Financial specialist
proposes through the forms, a CFO approves or rejects, nobody decides their own proposal, and the
lists export to Excel."""

from __future__ import annotations

import io
import re

import httpx
from openpyxl import load_workbook
from sqlalchemy import func, select

from paymux.catalog.file import apply_catalog
from paymux.catalog.models import Channel
from paymux.ledger.service import AccountCache
from paymux.wallets import service
from paymux.wallets.contract_models import WalletCashbackProfile, WalletContract
from test_backoffice_support import Bo, bo_app, form_token, login

CATALOG = {
    "channel_groups": [{"code": "g", "name": "G"}],
    "channels": [{"code": "c", "name": "C", "kind": "terminal", "group": "g"}],
}
TERMS = """p2p:
  fee: {percent: "0.5", min: 100}
  limits:
    - {name: p2p-max, max_amount: "15000.00", monthly_count: 30}
"""


async def _setup(bo: Bo) -> int:
    """Issuers rub and bonus, a merchant customer; returns the merchant's id."""
    accounts = AccountCache()
    async with bo.hub.sessions() as s:
        await apply_catalog(s, CATALOG, actor="test")
        channel_id = await s.scalar(select(Channel.id).where(Channel.code == "c"))
        assert channel_id is not None
        for code, kind, cur in (("rub", "emoney", "RUB"), ("bonus", "points", "PTS")):
            await service.create_issuer(
                s,
                accounts,
                code=code,
                name=code,
                kind=kind,
                currency=cur,
                precision=None,
                emission_limit=None,
                fee_rules={},
                exchange_spread_percent="0",
            )
        shop, _ = await service.signup(
            s,
            channel_id=channel_id,
            agent_id=None,
            external_ref="shop",
            kind="merchant",
            identification="identified",
            name="Shop",
            email=None,
            phone=None,
        )
        await s.commit()
        return shop.id


async def _client(bo: Bo, username: str, role: str) -> httpx.AsyncClient:
    await bo.user(username, role)
    http = bo.client()
    r = await login(http, username)
    assert r.status_code in (302, 303), r.text
    return http


async def _propose(http: httpx.AsyncClient, path: str, data: dict[str, str]) -> httpx.Response:
    page = await http.get(f"/backoffice/wallets/{path}/proposals/new")
    assert page.status_code == 200, page.text
    return await http.post(
        f"/backoffice/wallets/{path}/proposals", data={"csrf_token": form_token(page.text), **data}
    )


async def _decide(http: httpx.AsyncClient, path: str, pid: int, what: str) -> httpx.Response:
    page = await http.get(f"/backoffice/wallets/{path}/proposals/{pid}")
    return await http.post(
        f"/backoffice/wallets/{path}/proposals/{pid}/{what}",
        data={"csrf_token": form_token(page.text), "note": "n"},
    )


def _id(r: httpx.Response) -> int:
    assert r.status_code == 303, r.text
    m = re.search(r"/proposals/(\d+)$", r.headers["location"])
    assert m, r.headers["location"]
    return int(m.group(1))


async def test_contracts_and_cashback_pages_with_maker_checker(db_url: str) -> None:
    async with bo_app(db_url) as bo:
        shop_id = await _setup(bo)
        fin = await _client(bo, "fin", "financial_specialist")
        cfo = await _client(bo, "cfo", "cfo")
        support = await _client(bo, "help", "support")

        home = await fin.get("/backoffice/")
        assert "E-money" in home.text and "/backoffice/wallets/contracts" in home.text
        assert (await support.get("/backoffice/wallets/contracts")).status_code == 403

        contract = {
            "issuer": "rub",
            "customer": "",
            "group": "vip",
            "effective_from": "",
            "terms": TERMS,
            "note": "VIP",
        }
        bad = await _propose(fin, "contracts", {**contract, "terms": "p2p: [unclosed"})
        assert bad.status_code == 422 and "not readable YAML" in bad.text
        bad = await _propose(fin, "contracts", {**contract, "customer": str(shop_id)})
        assert bad.status_code == 422 and "exactly one" in bad.text
        pid = _id(await _propose(fin, "contracts", contract))
        home = await cfo.get("/backoffice/")
        assert "/backoffice/wallets/contracts/proposals?status=pending" in home.text  # waits for the CFO
        page = await fin.get(f"/backoffice/wallets/contracts/proposals/{pid}")
        assert 'id="own-proposal"' in page.text and "p2p-max" in page.text
        assert (await _decide(fin, "contracts", pid, "approve")).status_code == 403
        r = await _decide(cfo, "contracts", pid, "approve")
        assert r.status_code == 303, r.text
        page = await cfo.get(f"/backoffice/wallets/contracts/proposals/{pid}")
        assert 'id="version-created"' in page.text and "status-approved" in page.text
        async with bo.hub.read_sessions() as s:
            row = await s.scalar(select(WalletContract))
            assert row is not None and row.group_code == "vip"
            assert row.terms["p2p"]["fee"]["percent"] == "0.5"
            assert row.terms["p2p"]["limits"][0]["max_amount"] == 1_500_000

        listing = await fin.get("/backoffice/wallets/contracts")
        assert listing.status_code == 200 and "vip" in listing.text
        xlsx = await fin.get("/backoffice/wallets/contracts?export=xlsx")
        assert xlsx.status_code == 200
        cells = [
            c
            for row in load_workbook(io.BytesIO(xlsx.content)).active.iter_rows(values_only=True)
            for c in row
        ]
        assert "vip" in cells and "rub" in cells

        cashback = {
            "merchant": str(shop_id),
            "issuer": "bonus",
            "mode": "percent",
            "percent": "1.5",
            "fixed": "",
            "per_operation_cap": "100",
            "monthly_cap": "1000",
            "funding": "issuer",
            "operation_types": "p2p",
            "enabled": "1",
            "effective_from": "",
            "note": "",
        }
        bad = await _propose(fin, "cashback", {**cashback, "percent": "150"})
        assert bad.status_code == 422 and "at most 100" in bad.text
        pid = _id(await _propose(fin, "cashback", cashback))
        r = await _decide(cfo, "cashback", pid, "reject")
        assert r.status_code == 303
        assert "status-rejected" in (await cfo.get(f"/backoffice/wallets/cashback/proposals/{pid}")).text
        # the CFO's own proposal: another person must decide
        own = _id(await _propose(cfo, "cashback", cashback))
        home = await cfo.get("/backoffice/")
        assert "/backoffice/wallets/cashback/proposals?status=pending" not in home.text  # only its own waits
        r = await _decide(cfo, "cashback", own, "approve")
        assert r.status_code == 403 and "another person" in r.text
        async with bo.hub.read_sessions() as s:
            assert await s.scalar(select(func.count()).select_from(WalletCashbackProfile)) == 0
        proposals = await fin.get("/backoffice/wallets/cashback/proposals?status=pending")
        assert f"/backoffice/wallets/cashback/proposals/{own}" in proposals.text
        xlsx = await fin.get("/backoffice/wallets/cashback/proposals?export=xlsx")
        assert xlsx.status_code == 200 and load_workbook(io.BytesIO(xlsx.content)).active.max_row == 3
        assert (await fin.get("/backoffice/wallets/cashback")).status_code == 200
        for c in (fin, cfo, support):
            await c.aclose()
