"""A wallet's statement for a period: opening balance, postings with the running balance, totals,
closing balance equal to the wallet's balance; days in the viewer's timezone; JSON and Excel."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from paymux.ledger.models import Posting
from paymux.wallets.models import Wallet
from wallets_support import AW, W, wallets_env


async def test_statement_balances_agree_with_the_wallet(db_url: str) -> None:
    async with wallets_env(db_url) as w:
        ann, bob = await w.customer("ann"), await w.customer("bob")
        assert (await w.topup(ann, "rub", "100.00")).status_code == 201
        bob_wallet = await w.open(bob, "rub")
        ann_wallet = ann.wallets["rub"]
        assert (await w.p2p(ann, ann_wallet, bob_wallet, "30.00")).status_code == 201
        assert (await w.topup(ann, "rub", "5.00")).status_code == 201
        # the first top-up happened "yesterday" (Moscow time): it makes the opening balance
        async with w.env.hub.sessions() as s:
            account = await s.scalar(select(Wallet.account_id).where(Wallet.id == ann_wallet))
            first_posting = min(
                (await s.scalars(select(Posting.id).where(Posting.account_id == account))).all()
            )
            await s.execute(
                update(Posting)
                .where(Posting.id == first_posting)
                .values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1, hours=1))
            )
            await s.commit()
        today = dt.datetime.now(ZoneInfo("Europe/Moscow")).date()
        q = {"from": today.isoformat(), "to": today.isoformat(), "timezone": "Europe/Moscow"}
        r = await w.http.get(f"{W}/wallets/{ann_wallet}/statement", params=q, headers=ann.h)
        assert r.status_code == 200, r.text
        st = r.json()
        balance = await w.balance(ann, ann_wallet)
        assert st["closing_balance"] == balance
        assert st["timezone"] == "Europe/Moscow" and st["lines"][0]["at"].endswith("+03:00")
        opening, credits, debits = (Decimal(st[k]) for k in ("opening_balance", "credits", "debits"))
        assert st["opening_balance"] != "0.00"
        assert [ln["type"] for ln in st["lines"]] == ["p2p", "topup"]
        assert st["lines"][-1]["balance"] == balance
        assert opening + credits - debits == Decimal(balance)

        # a wide period starts at zero and lists every posting; the admin sees the same statement
        wide = {"from": (today - dt.timedelta(days=5)).isoformat(), "to": today.isoformat()}
        mine = (await w.http.get(f"{W}/wallets/{ann_wallet}/statement", params=wide, headers=ann.h)).json()
        admin = await w.http.get(f"{AW}/wallets/{ann_wallet}/statement", params=wide, headers=w.env.admin)
        assert admin.status_code == 200 and admin.json() == mine
        assert mine["opening_balance"] == "0.00" and len(mine["lines"]) == 3

        # Excel: the same lines and the closing balance
        x = await w.http.get(
            f"{W}/wallets/{ann_wallet}/statement", params={**wide, "format": "xlsx"}, headers=ann.h
        )
        assert x.status_code == 200 and x.headers["content-disposition"].endswith('.xlsx"')
        from openpyxl import load_workbook

        ws = load_workbook(io.BytesIO(x.content)).active
        assert ws is not None
        values = [row for row in ws.iter_rows(values_only=True)]
        assert values[-1][0] == "Closing balance" and Decimal(str(values[-1][1])) == Decimal(balance)

        # another customer's wallet, a bad period or zone: problems, never 500
        r = await w.http.get(f"{W}/wallets/{bob_wallet}/statement", params=wide, headers=ann.h)
        assert r.status_code == 404
        bad = {"from": today.isoformat(), "to": (today - dt.timedelta(days=1)).isoformat()}
        r = await w.http.get(f"{W}/wallets/{ann_wallet}/statement", params=bad, headers=ann.h)
        assert r.status_code == 422 and "ends before" in r.json()["detail"]
        long = {"from": "2024-01-01", "to": "2026-01-01"}
        r = await w.http.get(f"{W}/wallets/{ann_wallet}/statement", params=long, headers=ann.h)
        assert r.status_code == 422 and "366" in r.json()["detail"]
        r = await w.http.get(
            f"{W}/wallets/{ann_wallet}/statement", params={**wide, "timezone": "Mars/Base"}, headers=ann.h
        )
        assert r.status_code == 422 and "IANA" in r.json()["detail"]
