"""The demo's e-money: issuers of each kind, customers of each kind with wallets and a month of
operations of every type, one transfer over the review limit waiting; loading it again changes nothing;
the ledger balances and each issuer's emission equals its wallets plus its fees."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from harness import test_settings as hub_settings
from paymux.demo.run import seed
from paymux.ledger.service import verify_ledger
from paymux.runtime import Hub
from paymux.wallets import service
from paymux.wallets.models import Issuer, Wallet, WalletCustomer, WalletOperation


async def test_demo_loads_wallets_with_a_month_of_operations_once(db_url: str) -> None:
    hub = Hub(hub_settings(db_url))
    try:
        info = await seed(hub, keys=False)
        assert info.wallet_operations > 50
        async with hub.read_sessions() as s:
            kinds = dict((await s.execute(select(Issuer.code, Issuer.kind))).all())
            assert kinds == {"rub": "emoney", "eur": "emoney", "bonus": "points"}
            holders = {(c.kind, c.identification) for c in (await s.scalars(select(WalletCustomer))).all()}
            assert holders == {
                ("individual", "unidentified"),
                ("individual", "identified"),
                ("merchant", "identified"),
            }
            assert await s.scalar(select(func.count()).select_from(Wallet)) == 8
            by_type = dict(
                (
                    await s.execute(select(WalletOperation.type, func.count()).group_by(WalletOperation.type))
                ).all()
            )
            assert set(by_type) == {"topup", "p2p", "exchange", "withdrawal"}
            states = dict(
                (
                    await s.execute(
                        select(WalletOperation.state, func.count()).group_by(WalletOperation.state)
                    )
                ).all()
            )
            assert states.get("failed", 0) == 0 and states["pending_review"] == 1, states
            first, last = (
                await s.execute(
                    select(func.min(WalletOperation.created_at), func.max(WalletOperation.created_at))
                )
            ).one()
            assert last - first >= dt.timedelta(days=28)  # a month of history
            assert (await verify_ledger(s)).balanced
            for issuer in (await s.scalars(select(Issuer))).all():
                t = await service.issuer_totals(s, hub.accounts, issuer)
                assert t["emitted"] == t["wallets"] + t["fees"] > 0, (issuer.code, t)
            count = await s.scalar(select(func.count()).select_from(WalletOperation))

        again = await seed(hub, keys=False)
        assert again.wallet_operations == 0
        async with hub.read_sessions() as s:
            assert await s.scalar(select(func.count()).select_from(WalletOperation)) == count
            assert await s.scalar(select(func.count()).select_from(Issuer)) == 3
            assert await s.scalar(select(func.count()).select_from(WalletCustomer)) == 4
    finally:
        await hub.close()
