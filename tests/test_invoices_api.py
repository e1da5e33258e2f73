"""The billers' invoice API on both databases: intake of one invoice and of batches (idempotent by
number, 409 for other content, per-item answers), validation (422, never a 500), RF references,
changing and cancelling, the status history and the changes feed with its cursor."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from invoices_support import AB, INV, Billing, billing_env, invoice
from paymux.invoices.reference import rf_valid


async def test_single_invoice_created_then_same_answer_then_conflict(db_url: str) -> None:
    async with billing_env(db_url) as b:
        r = await b.post(invoice())
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["status"] == "open" and made["amount"] == "120.50" and made["paid_amount"] == "0.00"
        assert rf_valid(made["reference"]) and made["payment_link"].startswith("/pay/")
        assert len(made["payment_link"]) >= len("/pay/") + 32
        again = await b.post(invoice())
        assert again.status_code == 200 and again.json() == made
        other = await b.post(invoice(amount="99.00"))
        assert other.status_code == 409, other.text
        assert other.headers["content-type"].startswith("application/problem+json")
        assert other.json()["type"].endswith("/invoice-exists")
        got = await b.get("INV-1")
        assert got["amount"] == "120.50"  # unchanged by the conflicting body
        assert [(h["from"], h["to"]) for h in got["history"]] == [(None, "open")]


async def test_reference_kept_or_made(db_url: str) -> None:
    async with billing_env(db_url) as b:
        r = await b.post(invoice("A1", reference="rf18 5390 0754 7034"))
        assert r.status_code == 201 and r.json()["reference"] == "RF18539007547034"
        r = await b.post(invoice("A2", reference="RF19539007547034"))  # wrong check digits
        assert r.status_code == 422 and "reference" in r.text
        r = await b.post(invoice("ABC123"))
        assert r.json()["reference"].endswith("ABC123") and rf_valid(r.json()["reference"])
        r = await b.post(invoice("2030-000017_b"))
        ref = r.json()["reference"]
        assert rf_valid(ref) and len(ref) == 24


async def test_batch_answers_per_item(db_url: str) -> None:
    async with billing_env(db_url) as b:
        assert (await b.post(invoice("OLD-1"))).status_code == 201
        batch = [
            invoice("B-1"),
            invoice("OLD-1"),  # the same again
            invoice("OLD-1", amount="1.00"),  # other content
            invoice("B-2", amount="12.345"),  # too many decimals for EUR
            {"number": "B-3"},  # fields missing
            invoice("B-1"),  # repeated within the batch, same body
            invoice("B-1", amount="2.00"),  # repeated within the batch, other body
            "not an object",
        ]
        r = await b.post({"invoices": batch})
        assert r.status_code == 200, r.text
        out = r.json()
        assert [x["status"] for x in out["results"]] == [201, 200, 409, 422, 422, 200, 409, 422]
        assert [x["index"] for x in out["results"]] == list(range(len(batch)))
        assert out["created"] == 1 and out["existing"] == 2 and out["conflicts"] == 2 and out["invalid"] == 3
        assert "decimal" in out["results"][3]["problem"]["detail"]
        assert out["results"][5]["invoice"] == out["results"][0]["invoice"]
        # the same batch again: nothing new, the same answers
        r2 = await b.post({"invoices": batch})
        assert [x["status"] for x in r2.json()["results"]] == [200, 200, 409, 422, 422, 200, 409, 422]


@pytest.mark.parametrize(
    "body",
    [
        {"invoices": []},
        {"invoices": "x"},
        {"invoices": [], "extra": 1},
        [],
        "text",
        None,
        invoice(number="bad number"),
        invoice(number="x" * 65),
        invoice(number="A\x00B"),
        invoice(amount="-1.00"),
        invoice(amount="0"),
        invoice(amount="1e5"),
        invoice(amount=120.5),
        invoice(amount="9" * 40),
        invoice(currency="XXQ"),
        invoice(currency="eur"),
        invoice(due_date="2030-02-30"),
        invoice(due_date="9999-01-01"),
        invoice(payer={"phone": "12345"}),
        invoice(payer={"email": "no-at-sign"}),
        invoice(payer={"language": "de"}),
        invoice(payer={"name": "A\nB"}),
        invoice(payer={"email": "a\x7fb@example.com"}),
        invoice(description="x" * 501),
        invoice(lines=[{"description": "kWh", "amount": "1.001"}]),
        invoice(lines=[{"description": "kWh", "amount": "1.00", "quantity": 0}]),
        invoice(partial_allowed="yes"),
        invoice(unknown_field=1),
        invoice(reference="RF00"),
    ],
)
async def test_invalid_single_invoices_are_422(db_url: str, body: Any) -> None:
    async with billing_env(db_url) as b:
        r = await b.post(body)
        assert r.status_code == 422, (body, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


async def test_not_json_and_bad_paths(db_url: str) -> None:
    async with billing_env(db_url) as b:
        r = await b.http.post(INV, content=b"{not json", headers={**b.h, "content-type": "application/json"})
        assert r.status_code == 422
        for path in ("/x" * 40, "/%C3%A9t%C3%A9", "/a%20b", "/" + "9" * 70):
            r = await b.http.get(f"{INV}{path}", headers=b.h)
            assert r.status_code in (404, 422), (path, r.status_code)
        r = await b.http.get(f"{INV}/NOPE", headers=b.h)
        assert r.status_code == 404
        for q in ("after=-1", "after=99999999999999999999", "limit=0", "limit=1001", "after=x"):
            r = await b.http.get(f"{INV}/changes?{q}", headers=b.h)
            assert r.status_code == 422, (q, r.text)


async def test_authentication(db_url: str) -> None:
    async with billing_env(db_url) as b:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}, b.env.admin):
            r = await b.http.post(INV, json=invoice(), headers=headers)
            assert r.status_code == 401, (headers, r.text)
        keys = (await b.http.get(f"{AB}/power/keys", headers=b.env.admin)).json()
        assert keys[0]["key"] == "***" and b.key not in str(keys)
        r = await b.http.post(f"{AB}/power/keys/{keys[0]['id']}/revoke", headers=b.env.admin)
        assert r.status_code == 200 and r.json()["revoked_at"]
        assert (await b.post(invoice())).status_code == 401
        # another biller's key does not see this biller's invoices
        await b.http.post(AB, json={"code": "water", "name": "Water"}, headers=b.env.admin)
        k2 = (await b.http.post(f"{AB}/water/keys", headers=b.env.admin)).json()["key"]
        k3 = (await b.http.post(f"{AB}/power/keys", headers=b.env.admin)).json()["key"]
        assert (
            await b.http.post(INV, json=invoice("P-1"), headers={"Authorization": f"Bearer {k3}"})
        ).status_code == 201
        r = await b.http.get(f"{INV}/P-1", headers={"Authorization": f"Bearer {k2}"})
        assert r.status_code == 404
        # a disabled biller is refused
        await b.http.patch(f"{AB}/power", json={"enabled": False}, headers=b.env.admin)
        r = await b.http.get(f"{INV}/P-1", headers={"Authorization": f"Bearer {k3}"})
        assert r.status_code == 403


async def test_patch_cancel_history_and_feed(db_url: str) -> None:
    async with billing_env(db_url) as b:
        for n in ("C-1", "C-2", "C-3"):
            assert (await b.post(invoice(n))).status_code == 201
        r = await b.http.patch(
            f"{INV}/C-1",
            json={"amount": "130.00", "due_date": "2031-01-01", "payer": {"name": "X"}},
            headers=b.h,
        )
        assert r.status_code == 200, r.text
        assert r.json()["amount"] == "130.00" and r.json()["payer"]["name"] == "X"
        r = await b.http.patch(f"{INV}/C-1", json={"amount": "0.001"}, headers=b.h)
        assert r.status_code == 422
        r = await b.http.patch(f"{INV}/C-1", json={"number": "Z"}, headers=b.h)
        assert r.status_code == 422
        r = await b.http.post(f"{INV}/C-2/cancel", json={"reason": "sent twice"}, headers=b.h)
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        again = await b.http.post(f"{INV}/C-2/cancel", headers=b.h)
        assert again.status_code == 200 and again.json()["status"] == "cancelled"
        r = await b.http.patch(f"{INV}/C-2", json={"amount": "1.00"}, headers=b.h)
        assert r.status_code == 409
        hist = (await b.get("C-2"))["history"]
        assert [(h["from"], h["to"], h["reason"]) for h in hist] == [
            (None, "open", "created"),
            ("open", "cancelled", "sent twice"),
        ]
        # the feed: everything once, in order, paged by the cursor
        seen: list[dict[str, Any]] = []
        after = 0
        while True:
            r = await b.http.get(f"{INV}/changes", params={"after": after, "limit": 2}, headers=b.h)
            assert r.status_code == 200, r.text
            page = r.json()
            if not page["items"]:
                assert page["next"] == after
                break
            seen += page["items"]
            after = page["next"]
        assert [(x["number"], x["to"]) for x in seen] == [
            ("C-1", "open"),
            ("C-2", "open"),
            ("C-3", "open"),
            ("C-2", "cancelled"),
        ]
        ids = [x["id"] for x in seen]
        assert ids == sorted(ids) and len(set(ids)) == 4


async def _rate(b: Billing, n: int, prefix: str) -> float:
    batch = [invoice(f"{prefix}-{i}") for i in range(n)]
    started = time.perf_counter()
    r = await b.post({"invoices": batch})
    took = time.perf_counter() - started
    assert r.status_code == 200, r.text[:300]
    assert r.json()["created"] == n
    return n / took


async def test_batch_of_ten_thousand(db_url: str) -> None:
    async with billing_env(db_url) as b:
        rate = await _rate(b, 10_000, "BIG")
        print(f"\nbatch intake ({db_url.split(':')[0]}): {rate:,.0f} invoices/s")
        r = await b.http.get(f"{INV}/changes", params={"after": 0, "limit": 1000}, headers=b.h)
        assert len(r.json()["items"]) == 1000
        r = await b.post({"invoices": [invoice(f"X-{i}") for i in range(10_001)]})
        assert r.status_code == 422


async def test_concurrent_batches_with_the_same_numbers(db_url: str) -> None:
    async with billing_env(db_url) as b:
        batches = [[invoice(f"S-{i}") for i in range(300)] for _ in range(3)]
        answers = await asyncio.gather(*(b.post({"invoices": batch}) for batch in batches))
        assert all(r.status_code == 200 for r in answers), [r.text[:200] for r in answers]
        created = sum(r.json()["created"] for r in answers)
        existing = sum(r.json()["existing"] for r in answers)
        assert created == 300 and existing == 600
        tokens = {
            x["invoice"]["number"]: x["invoice"]["payment_link"] for r in answers for x in r.json()["results"]
        }
        assert len(tokens) == 300
        for r in answers:  # every answer shows the one stored invoice
            assert all(tokens[x["number"]] == x["invoice"]["payment_link"] for x in r.json()["results"])


def test_migration_0018_downgrades_and_upgrades(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import create_engine, inspect

    from paymux.db.migrate import alembic_config, upgrade

    path = tmp_path / "m.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    command.downgrade(alembic_config(url), "0017")
    engine = create_engine(f"sqlite:///{path}")
    tables = set(inspect(engine).get_table_names())
    assert not tables & {"billers", "invoices", "invoice_changes", "invoice_payments", "biller_keys"}
    assert "biller_id" not in {c["name"] for c in inspect(engine).get_columns("notifications")}
    engine.dispose()
    upgrade(url)
    engine = create_engine(f"sqlite:///{path}")
    assert "invoices" in inspect(engine).get_table_names()
    engine.dispose()
