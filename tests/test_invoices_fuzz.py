"""The billers' invoice API fuzzed from its OpenAPI document with a real biller key (schemathesis,
valid and invalid requests): no 5xx, every 4xx a problem document, no value left for the database
to refuse."""

from __future__ import annotations

import asyncio
from typing import Any

import schemathesis
from schemathesis import GenerationMode

from invoices_support import billing_env
from test_fuzz_openapi import Fuzz


async def test_invoice_api_fuzzed_with_a_biller_key(db_url: str) -> None:
    async with billing_env(db_url) as b:
        await b.post({"number": "F-1", "amount": "1.00", "currency": "EUR", "due_date": "2030-01-01"})
        document: dict[str, Any] = (await b.http.get("/openapi.json")).json()
        document["paths"] = {p: v for p, v in document["paths"].items() if p.startswith("/api/v1/invoices")}
        assert len(document["paths"]) == 8  # with the file upload, the reminder sent now, stored mappings

        def run() -> Fuzz:
            f = Fuzz(b.env.base, b.env.admin, b.h)
            for result in schemathesis.openapi.from_dict(document).get_all_operations():
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    f.operation(result.ok(), mode)
            return f

        f = await asyncio.to_thread(run)
        assert sum(f.statuses.values()) > 40, f.statuses
        assert f.statuses.get(401, 0) == 0 and f.statuses.get(422, 0) > 0, f.statuses
        print(f"invoice API fuzz: answers by status {dict(sorted(f.statuses.items()))}")
        assert not f.found, "\n".join(sorted(f.found.values()))
