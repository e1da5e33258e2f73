"""Schema-driven fuzzing of the recurring routes with a customer, templates and subscriptions that
exist (the whole-document fuzz of ``test_fuzz_openapi.py`` mostly meets unknown customers): the path
names are pinned to them, the bodies and queries are generated, valid and invalid. No 5xx, every 4xx a
problem document, no value reaching the database unchecked. ``PAYMUX_FUZZ_EXAMPLES`` sets the size."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from recurring_api_support import recurring_env
from test_fuzz_openapi import fuzz

PINNED: dict[str, list[Any]] = {
    "reference": ["CUST-1"],
    "template_id": [1, 2],
    "subscription_id": [1, 2, 3],
    "customer_id": [1],
    "code": ["dealer"],
}


def pinned(document: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(document)
    doc["paths"] = {
        p: ops
        for p, ops in doc["paths"].items()
        if p.startswith(("/api/v1/customers", "/api/v1/events", "/api/v1/admin/recurring"))
    }
    for ops in doc["paths"].values():
        for op in ops.values():
            for param in op.get("parameters", []):
                if param["in"] == "path" and param["name"] in PINNED:
                    param["schema"] = {"enum": PINNED[param["name"]]}
    return doc


async def test_recurring_routes_with_live_data(db_url: str) -> None:
    async with recurring_env(db_url) as api:
        await api.put_customer()
        tid = (await api.template()).json()["id"]
        await api.template(key="t2", amount=None)
        await api.scheduled(template_id=tid, day_of_month=31)
        r = await api.subscribe(key="th", template_id=tid, kind="threshold", amount="10.00", threshold="5.00")
        assert r.status_code == 201, r.text
        r = await api.subscribe(key="d", template_id=tid, kind="debt", period="weekly", weekday=2)
        assert r.status_code == 201, r.text
        document = pinned((await api.http.get("/openapi.json")).json())
        assert len(document["paths"]) >= 14
        f = await asyncio.to_thread(fuzz, document, api.env.base, api.env.admin, api.env.headers())
        print(f"answers by status {dict(sorted(f.statuses.items()))}")
        assert f.statuses.get(200, 0) + f.statuses.get(201, 0) > 20  # the live data was reached
        assert not f.found, "\n".join(sorted(f.found.values()))
