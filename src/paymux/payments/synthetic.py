"""Rows of succeeded payments for the benchmarks (bulk inserted through Core, without ledger entries)."""

from __future__ import annotations

import datetime as dt
from typing import Any


def succeeded_row(
    *,
    external_id: str,
    channel_id: int,
    service_id: int,
    provider_id: int,
    final: dt.datetime,
    amount: int,
    account: str = "9001234567",
    provider_txn_id: str | None = None,
    commission: int = 0,
    provider_service_code: str = "B1",
) -> dict[str, Any]:
    """A final, succeeded payment of ``amount`` with a 1 % fee and a 2 % remuneration."""
    return {
        "channel_id": channel_id,
        "external_id": external_id,
        "request_hash": "0" * 64,
        "service_id": service_id,
        "account": account,
        "currency": "RUB",
        "amount": amount,
        "fee": amount // 100,
        "total": amount + amount // 100,
        "remuneration": amount // 50,
        "commission": commission,
        "fields": {},
        "status": "succeeded",
        "provider_id": provider_id,
        "provider_service_code": provider_service_code,
        "route_reason": "",
        "tried_provider_ids": [provider_id],
        "attempts": 1,
        "failovers": 0,
        "in_doubt": False,
        "needs_attention": False,
        "provider_txn_id": provider_txn_id,
        "expires_at": final + dt.timedelta(days=1),
        "created_at": final - dt.timedelta(seconds=1),
        "updated_at": final,
        "final_at": final,
    }
