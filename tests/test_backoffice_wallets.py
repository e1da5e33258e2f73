"""The E-money back office over HTTP: the anti-fraud specialist finds an application by e-mail and
exact amount, approves it (balances move), blocks a customer (refused after), adds a rule; the
administrator creates and edits an issuer and reads customers, coins with their history and the
transactions of a period; every list exports to Excel with the rows shown."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openpyxl
from sqlalchemy import select

from paymux.api.app import create_app
from paymux.audit.models import AuditEvent
from paymux.backoffice.settings import BackofficeSettings
from paymux.wallets.models import Issuer, WalletCustomer, WalletOperation
from test_backoffice_support import add_user, flash_of, follow, login, post_form
from wallets_support import AW, Wallets, wallets_env

E = "/backoffice/emoney"


@contextlib.asynccontextmanager
async def browser(w: Wallets, username: str, role: str) -> AsyncIterator[httpx.AsyncClient]:
    """A signed-in back-office client of ``role`` on the hub of ``w``."""
    await add_user(w.env.hub, username, role)
    app = create_app(w.env.hub)
    app.state.backoffice_settings = BackofficeSettings(cookie_secure=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        r = await login(http, username)
        assert r.status_code == 303, r.text[:300]
        yield http


def rows(html: str, table: str) -> list[str]:
    body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body, f"no table {table}"
    return [r for r in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S) if "Nothing found." not in r]


async def export(http: httpx.AsyncClient, url: str) -> list[tuple[Any, ...]]:
    sep = "&" if "?" in url else "?"
    r = await http.get(f"{url}{sep}export=xlsx")
    assert r.status_code == 200, r.text[:300]
    ws = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0]
    return [tuple(row) for row in ws.iter_rows(values_only=True)]


async def _held(w: Wallets) -> tuple[Any, Any, int]:
    a = await w.customer("alice", email="alice@example.md", name="Alice")
    b = await w.customer("bob", email="bob@example.md", name="Bob")
    r = await w.http.post(
        f"{AW}/fraud-rules",
        json={"name": "big-p2p", "kind": "amount", "type": "p2p", "issuer": "rub", "max_amount": "500.00"},
        headers=w.env.admin,
    )
    assert r.status_code == 201, r.text
    await w.topup(a, "rub", "2000.00")
    await w.open(b, "rub")
    r = await w.p2p(a, a.wallets["rub"], b.wallets["rub"], "700.00")
    assert r.status_code == 202, r.text
    return a, b, int(r.json()["id"])


async def test_anti_fraud_specialist_works_applications_blocks_and_rules(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        a, b, held = await _held(w)
        async with browser(w, "af", "anti_fraud") as http:
            assert 'id="add-issuer"' not in (await http.get(f"{E}/issuers")).text  # no wallets.manage
            home = (await http.get("/backoffice/")).text
            assert 'id="waiting-wallet-applications"' in home and f"{E}/applications" in home

            page = (await http.get(f"{E}/applications?email=alice@example.md")).text
            found = rows(page, "applications")
            assert len(found) == 1 and f"{E}/operations/{held}" in found[0] and "big-p2p" in found[0]
            assert rows((await http.get(f"{E}/applications?amount=700.00")).text, "applications")
            assert not rows((await http.get(f"{E}/applications?amount=700.01")).text, "applications")
            assert not rows((await http.get(f"{E}/applications?operation=abc")).text, "applications")
            sheet = await export(http, f"{E}/applications?operation={held}")
            assert len(sheet) == 2 and sheet[1][0] == held and sheet[1][5] == "alice@example.md"

            r = await post_form(
                http, f"{E}/operations/{held}", f"{E}/operations/{held}/reject", {"reason": ""}
            )
            assert flash_of((await follow(http, r)).text) == "Give a reason."
            r = await post_form(
                http, f"{E}/operations/{held}", f"{E}/operations/{held}/approve", {"reason": "called her"}
            )
            page = (await follow(http, r)).text
            assert flash_of(page) == "The operation is approved."
            assert 'id="operation-state" class="state-done"' in page and "called her" in page
            assert await w.balance(a, a.wallets["rub"]) == "1293.00"  # 2000 - 700 - 1 % fee
            assert await w.balance(b, b.wallets["rub"]) == "700.00"
            assert 'id="waiting-wallet-applications"' not in (await http.get("/backoffice/")).text

            r = await post_form(
                http, f"{E}/customers/{a.id}", f"{E}/customers/{a.id}/block", {"reason": "stolen phone"}
            )
            assert flash_of((await follow(http, r)).text) == "The customer is blocked."
            refused = await w.p2p(a, a.wallets["rub"], b.wallets["rub"], "10.00")
            assert refused.status_code == 403 and refused.json()["type"].endswith("/customer-blocked")
            blocked = rows((await http.get(f"{E}/blocks")).text, "blocked-customers")
            assert len(blocked) == 1 and "alice@example.md" in blocked[0]
            assert len(await export(http, f"{E}/blocks?what=customers")) == 2
            r = await post_form(
                http,
                f"{E}/coins/{b.wallets['rub']}",
                f"{E}/coins/{b.wallets['rub']}/block",
                {"reason": "mule"},
            )
            assert flash_of((await follow(http, r)).text) == "The wallet is blocked."
            assert len(rows((await http.get(f"{E}/blocks?what=wallets")).text, "blocked-wallets")) == 1

            r = await post_form(
                http,
                f"{E}/fraud-rules",
                f"{E}/fraud-rules",
                {
                    "name": "burst",
                    "kind": "velocity",
                    "type": "p2p",
                    "max_count": "3",
                    "window_minutes": "10",
                },
            )
            assert flash_of((await follow(http, r)).text) == "The rule was added."
            r = await post_form(
                http, f"{E}/fraud-rules", f"{E}/fraud-rules", {"name": "bad", "kind": "amount", "type": "p2p"}
            )
            assert "amount rule needs max_amount" in flash_of((await follow(http, r)).text)
            names = [row[0] for row in (await export(http, f"{E}/fraud-rules"))[1:]]
            assert names == ["big-p2p", "burst"]
        async with w.env.hub.read_sessions() as s:
            actions = set((await s.scalars(select(AuditEvent.action))).all())
        for act in (
            "wallet_operation.approve",
            "wallet_customer.block",
            "wallet.block",
            "wallet_fraud_rule.create",
        ):
            assert act in actions, act


async def test_administrator_manages_issuers_and_reads_customers_coins_and_transactions(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        a, _b, held = await _held(w)
        async with browser(w, "adm", "administrator") as http:
            page = (await http.get(f"{E}/issuers")).text
            rub = next(r for r in rows(page, "issuers") if "RUB e-money" in r)
            assert "2000.00 RUB" in rub and "-2000.00 RUB" in rub  # emitted, and the float
            r = await post_form(
                http,
                f"{E}/issuers",
                f"{E}/issuers",
                {
                    "code": "usd",
                    "name": "USD e-money",
                    "kind": "emoney",
                    "currency": "USD",
                    "emission_limit": "1000.00",
                },
            )
            assert flash_of((await follow(http, r)).text) == "The issuer was created."
            r = await post_form(
                http,
                f"{E}/issuers/usd",
                f"{E}/issuers/usd",
                {"name": "USD e-money", "emission_limit": "5000.50", "spread": "1", "enabled": "yes"},
            )
            page = (await follow(http, r)).text
            assert flash_of(page) == "The issuer was saved." and "5000.50" in page
            async with w.env.hub.read_sessions() as s:
                usd = await s.scalar(select(Issuer).where(Issuer.code == "usd"))
                assert usd is not None and usd.emission_limit == 500050
            r = await post_form(
                http, f"{E}/issuers/usd", f"{E}/issuers/usd", {"emission_limit": "1.001", "enabled": "yes"}
            )
            assert "more than 2 decimal places" in flash_of((await follow(http, r)).text)
            assert len(await export(http, f"{E}/issuers")) == 5  # head, rub, eur, bonus, usd

            found = rows((await http.get(f"{E}/customers?q=alice")).text, "customers")
            assert len(found) == 1 and f"{E}/customers/{a.id}" in found[0]
            page = (await http.get(f"{E}/customers/{a.id}")).text
            assert "2000.00 RUB" in page and "alice@example.md" in page
            assert len(rows(page, "operations")) == 2  # the top-up and the held transfer
            page = (await http.get(f"{E}/coins/{a.wallets['rub']}")).text
            assert 'id="wallet-balance">2000.00 RUB' in page and len(rows(page, "history")) == 1
            coins = await export(http, f"{E}/coins")
            assert len(coins) == 3

            today = dt.datetime.now(dt.UTC).date()
            later = today + dt.timedelta(days=2)
            period = f"{E}/transactions?from={today.isoformat()}&to={later.isoformat()}"
            assert len(rows((await http.get(period)).text, "transactions")) == 2
            assert len(rows((await http.get(period + "&type=p2p")).text, "transactions")) == 1
            assert len(rows((await http.get(period + "&state=done")).text, "transactions")) == 1
            gone = f"{E}/transactions?from={later.isoformat()}"
            assert not rows((await http.get(gone)).text, "transactions")
            assert len(await export(http, period)) == 3
            assert (await http.get(f"{E}/transactions?from=not-a-date")).status_code == 200
        async with w.env.hub.read_sessions() as s:
            op, c = await s.get(WalletOperation, held), await s.get(WalletCustomer, a.id)
            assert op is not None and op.state == "pending_review"  # reading changed nothing
            assert c is not None and c.status == "active"
