"""Threshold and debt runs with the real observer (paymux.recurring.observe): the provider emulator's
check answers carry the balance and the debt, over real HTTP."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from harness import BASE_CATALOG
from recurring_support import ACCOUNT, T0, rec_env

pytest.importorskip("paymux.recurring.observe")

MAPPING = {"balance_field": "balance", "debt_field": "debt", "scale": "major"}
LOW, HIGH, OWES = "9001000001", "9001000002", "9001000003"
EMULATORS = {
    p: {
        "accounts": {
            LOW: {"balance": "12.00"},
            HIGH: {"balance": "900.00"},
            OWES: {"balance": "0.00", "debt": "310.07"},
        }
    }
    for p in ("p1", "p2", "p3")
}


def _catalog() -> dict[str, object]:
    cat = copy.deepcopy(BASE_CATALOG)
    for p in cat["providers"]:
        p["config"] = {**p.get("config", {}), "recurring": MAPPING}
    return cat


async def test_threshold_and_debt_observed_at_the_provider(db_url: str) -> None:
    async with rec_env(db_url, emulators=EMULATORS, catalog=_catalog()) as r:
        cid = await r.customer()
        low = await r.subscription(
            cid, kind="threshold", amount=20000, threshold=5000, poll_seconds=3600, account=LOW
        )
        high = await r.subscription(
            cid, kind="threshold", amount=20000, threshold=5000, poll_seconds=3600, account=HIGH
        )
        debt = await r.subscription(cid, kind="debt", amount=None, debt_limit=50000, account=OWES)
        r.now = T0 + dt.timedelta(hours=2)
        await r.drive(r.worker(real=True))
        [lo] = await r.runs(low)
        [hi] = await r.runs(high)
        [de] = await r.runs(debt)
        assert (lo.state, lo.observed, lo.amount) == ("paid", 1200, 20000)
        assert (hi.state, hi.observed) == ("not_needed", 90000)
        assert (de.state, de.observed, de.amount) == ("paid", 31007, 31007)
        assert r.balance(ACCOUNT) == 100000 - 20000 - 31007
        await r.check_books()
