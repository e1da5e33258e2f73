"""State-changing requests sent many times at once over real HTTP: the losers of a row lock answer from
the state the winner left (the answer a repeat gets), never with a conflict they did not meet nor with
a second effect.

On PostgreSQL a conditional ``UPDATE`` that waited for another transaction's row lock re-checks its
condition against the committed row and matches nothing, and an unconditional one overwrites; an
answer built from the row read before the wait is wrong. SQLite runs one writer at a time, so there
these pass by construction; they check the same answers on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from harness import Env, hub_env
from paymux.auth.principal import Principal
from paymux.catalog.models import Agent
from paymux.catalog.schemas import TariffIn
from paymux.db.base import utcnow
from paymux.db.engine import create_engine
from paymux.ledger.models import JournalEntry, TopUp
from paymux.ledger.service import verify_ledger
from paymux.notifications.models import Notification
from paymux.notifications.service import Recipient, notify
from paymux.payments.models import Payment
from paymux.payments.processing import claim_due
from paymux.rates.models import ExchangeRate
from paymux.reconciliation.models import ReconciliationFetch, ReconciliationLine
from paymux.registers.models import RegisterTask
from paymux.routing.models import RouteCandidate, RouteSwitch
from paymux.settlement.models import BalanceAlert, BalanceAlertRule, PaymentOrder
from paymux.tariffs import proposals as prop
from paymux.tariffs.models import TariffVersion
from reconciliation_helpers import line_of, money, payments, recon_env, reconcile, set_mapping, write_csv
from test_settlement_statements import camt053
from test_settlement_support import P2_IBAN

PAY = "/api/v1/payments"
A = "/api/v1/admin"
TIMES = 20


Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def at_once(env: Env, n: int, send: Send) -> list[httpx.Response]:
    """``send`` (a client, its number) on ``n`` connections of their own at the same moment, so the
    server runs the requests side by side."""
    clients = [httpx.AsyncClient(base_url=env.base, timeout=30) for _ in range(n)]
    try:
        return list(await asyncio.gather(*(send(c, i) for i, c in enumerate(clients))))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


def statuses(answers: list[httpx.Response]) -> list[int]:
    return sorted(r.status_code for r in answers)


async def count(env: Env, model: Any, *where: Any) -> int:
    async with env.hub.read_sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def entries_of(env: Env, kind: str) -> int:
    return await count(env, JournalEntry, JournalEntry.kind == kind)


async def ledger_ok(env: Env) -> None:
    async with env.hub.read_sessions() as s:
        check = await verify_ledger(s)
    assert check.balanced, check


async def added(env: Env, row: Any) -> Any:
    async with env.hub.sessions() as s:
        s.add(row)
        await s.commit()
        await s.refresh(row)
    return row


async def provider_id(env: Env, code: str) -> int:
    return (await env.hub.catalog.get()).providers_by_code[code].id


# --- payments: the channel's cancel -------------------------------------------------------------------------


async def test_concurrent_cancels_all_answer_the_cancelled_payment(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        pid = (await env.pay()).json()["id"]
        answers = await at_once(env, TIMES, lambda c, _: c.post(f"{PAY}/{pid}/cancel", headers=env.headers()))
        assert statuses(answers) == [200] * TIMES, [r.text for r in answers if r.status_code != 200]
        assert {(r.json()["id"], r.json()["status"]) for r in answers} == {(pid, "cancelled")}
        assert await entries_of(env, "payment_cancel") == 1
        # a repeat of a cancelled payment's cancel answers it again
        again = await env.http.post(f"{PAY}/{pid}/cancel", headers=env.headers())
        assert again.status_code == 200 and again.json()["status"] == "cancelled"
        assert await entries_of(env, "payment_cancel") == 1
        await ledger_ok(env)


async def test_concurrent_cancels_of_a_claimed_payment_are_all_409(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        pid = (await env.pay()).json()["id"]
        assert [c.payment.id for c in await claim_due(env.hub, "w", 10)] == [pid]
        answers = await at_once(env, 5, lambda c, _: c.post(f"{PAY}/{pid}/cancel", headers=env.headers()))
        assert statuses(answers) == [409] * 5
        assert all("has been sent to a provider" in r.json()["detail"] for r in answers)
        assert await entries_of(env, "payment_cancel") == 0
        await ledger_ok(env)


# --- maker-checker decisions --------------------------------------------------------------------------------


async def _proposal(env: Env) -> int:
    maker = Principal(kind="user", name="maker", permissions=frozenset(), user_id=990001)
    data = TariffIn(
        kind="fee",
        service="topup",
        currency="RUB",
        effective_from=utcnow() + dt.timedelta(days=1),
        rule={"percent": "2"},
    )
    async with env.hub.sessions() as s:
        row = await prop.propose(s, data, maker)
        await s.commit()
        return row.id


async def test_concurrent_tariff_decisions_create_one_version(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        versions = await count(env, TariffVersion)
        pid = await _proposal(env)
        answers = await at_once(
            env, TIMES, lambda c, _: c.post(f"{A}/tariff-proposals/{pid}/approve", headers=env.admin)
        )
        assert statuses(answers) == [200] + [409] * (TIMES - 1), [r.text for r in answers]
        assert {r.json()["type"].rsplit("/", 1)[1] for r in answers if r.status_code == 409} == {
            "already-decided"
        }
        assert await count(env, TariffVersion) == versions + 1

        # approve and reject at once: one of them wins, and the tariffs agree with it
        pid = await _proposal(env)
        answers = await at_once(
            env,
            TIMES,
            lambda c, i: c.post(
                f"{A}/tariff-proposals/{pid}/{('approve', 'reject')[i % 2]}", headers=env.admin
            ),
        )
        assert statuses(answers) == [200] + [409] * (TIMES - 1), [r.text for r in answers]
        decided = next(r.json()["status"] for r in answers if r.status_code == 200)
        assert await count(env, TariffVersion) == versions + 1 + (decided == "approved")


async def _order(env: Env, status: str = "created") -> int:
    order = PaymentOrder(
        number=f"PO-T-{status}",
        provider_id=await provider_id(env, "p2"),
        currency="RUB",
        period_start=dt.date(2026, 3, 1),
        period_end=dt.date(2026, 3, 1),
        payments=1,
        gross=10_000,
        amount=10_000,
        purpose="test",
        status=status,
        created_by="user:maker",
    )
    return int((await added(env, order)).id)


async def test_concurrent_order_decisions_answer_from_the_decided_order(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        oid = await _order(env)
        answers = await at_once(
            env, TIMES, lambda c, _: c.post(f"{A}/payment-orders/{oid}/approve", headers=env.admin)
        )
        assert statuses(answers) == [200] + [409] * (TIMES - 1), [r.text for r in answers]
        # each refusal says what the order is now, as a repeat's does
        refused = {r.json()["detail"] for r in answers if r.status_code == 409}
        assert refused == {"order PO-T-created is approved"}, refused

        answers = await at_once(
            env, TIMES, lambda c, _: c.post(f"{A}/payment-orders/{oid}/mark-paid", headers=env.admin)
        )
        assert statuses(answers) == [200] + [409] * (TIMES - 1), [r.text for r in answers]
        refused = {r.json()["detail"] for r in answers if r.status_code == 409}
        assert refused == {"order PO-T-created is paid, not approved"}, refused
        assert await entries_of(env, "provider_payment") == 1
        await ledger_ok(env)


async def test_a_statement_matching_an_order_paid_meanwhile_leaves_it_to_that_payment(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        oid = await _order(env, "approved")
        async with env.hub.sessions() as s:
            order = await s.get(PaymentOrder, oid)
            assert order is not None
            order.payee = {"provider": "p2", "iban": P2_IBAN}
            await s.commit()
        data = camt053([{"amount": "100.00", "bank_ref": "B-1", "e2e": "PO-T-approved", "iban": P2_IBAN}])
        async with changed_meanwhile(db_url, "payment_orders", oid, "status = 'paid', paid_by = 'user:bank'"):
            imported = asyncio.create_task(
                env.http.post(
                    f"{A}/bank-statements", params={"file_name": "camt.xml"}, content=data, headers=env.admin
                )
            )
            await waiting_for_a_lock(env)
        r = await imported
        assert r.status_code == 201, r.text  # not a 409 for the whole statement
        assert r.json()["orders_paid"] == [] and [ln["status"] for ln in r.json()["new"]] == ["unmatched"]
        async with env.hub.read_sessions() as s:
            paid = await s.get(PaymentOrder, oid)
        assert paid is not None and (paid.status, paid.paid_by, paid.entry_id) == ("paid", "user:bank", None)


# --- retries of background jobs against a worker's claim ----------------------------------------------------


@contextlib.asynccontextmanager
async def changed_meanwhile(db_url: str, table: str, row_id: int, values: str) -> AsyncIterator[None]:
    """Another transaction's ``UPDATE table SET values`` of the row, left open for the block (holding the
    row) and committed at its end: a worker's claim, a payment order marked paid by hand."""
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"UPDATE {table} SET {values} WHERE id = :id"), {"id": row_id})
            yield
            await conn.commit()
    finally:
        await engine.dispose()


CLAIM = "status = 'running', lease_owner = 'w-test'"


async def waiting_for_a_lock(env: Env) -> None:
    """Until a request of the server waits for the other transaction's row lock (PostgreSQL), or a
    moment (SQLite: the server's writer waits for that transaction's write lock)."""
    if env.hub.sqlite:
        await asyncio.sleep(0.5)
        return
    for _ in range(500):
        async with env.hub.read_sessions() as s:
            n = await s.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
        if n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the request never waited for the other transaction")


async def _task(env: Env) -> int:
    r = await env.http.post(
        f"{A}/providers/p1/register-templates",
        json={
            "code": "daily",
            "name": "Daily",
            "kind": "daily",
            "format": "csv",
            "columns": [{"field": "id"}],
        },
        headers=env.admin,
    )
    assert r.status_code == 201, r.text
    now = utcnow()
    task = RegisterTask(
        template_id=r.json()["id"],
        provider_id=await provider_id(env, "p1"),
        period_key="2026-03-01",
        period_start=now - dt.timedelta(days=1),
        period_end=now,
        status="failed",
        due_at=now + dt.timedelta(days=1),
        attempts=3,
        max_attempts=3,
    )
    return int((await added(env, task)).id)


async def _fetch(env: Env) -> int:
    fetch = ReconciliationFetch(
        provider_id=await provider_id(env, "p1"),
        period_key="2026-03-01",
        status="failed",
        due_at=utcnow() + dt.timedelta(days=1),
        attempts=8,
    )
    return int((await added(env, fetch)).id)


async def _alert(env: Env) -> int:
    pid = await provider_id(env, "p1")
    rule = await added(env, BalanceAlertRule(provider_id=pid, currency="RUB", threshold=100))
    alert = BalanceAlert(
        rule_id=rule.id,
        provider_id=pid,
        currency="RUB",
        balance=1,
        threshold=100,
        status="failed",
        due_at=utcnow() + dt.timedelta(days=1),
        attempts=10,
    )
    return int((await added(env, alert)).id)


async def _notification(env: Env) -> int:
    async with env.hub.sessions() as s:
        agent = await s.scalar(select(Agent.id).where(Agent.code == "dealer"))
        assert agent is not None
        [nid] = await notify(
            s, agent_id=agent, event="run.paid", recipient=Recipient(phone="+37369123456"), data={}, key="k"
        )
        await s.execute(text("UPDATE notifications SET status = 'failed' WHERE id = :id"), {"id": nid})
        await s.commit()
    return nid


RETRIES: dict[str, tuple[Callable[[Env], Awaitable[int]], str, str, int]] = {
    # job: (create a failed one, its table, its retry URL, the answer while a worker runs it)
    "register task": (_task, "register_tasks", A + "/register-tasks/{id}/retry", 409),
    "reconciliation fetch": (_fetch, "reconciliation_fetches", A + "/reconciliation-fetches/{id}/retry", 409),
    "balance alert": (_alert, "balance_alerts", A + "/balance-alerts/{id}/retry", 200),
    "notification": (_notification, "notifications", A + "/notifications/{id}/redeliver", 409),
}


@pytest.mark.parametrize("job", list(RETRIES))
async def test_a_retry_waiting_for_a_claim_leaves_the_running_job_alone(db_url: str, job: str) -> None:
    make, table, url, answer = RETRIES[job]
    async with hub_env(db_url, run_workers=False) as env:
        row_id = await make(env)
        async with changed_meanwhile(db_url, table, row_id, CLAIM):
            retry = asyncio.create_task(env.http.post(url.format(id=row_id), headers=env.admin))
            await waiting_for_a_lock(env)
        r = await retry
        assert r.status_code == answer, r.text
        model = {
            "register_tasks": RegisterTask,
            "reconciliation_fetches": ReconciliationFetch,
            "notifications": Notification,
        }.get(table, BalanceAlert)
        async with env.hub.read_sessions() as s:
            row = await s.get(model, row_id)
        # still the claiming worker's: retried, another worker would run it a second time
        assert row is not None and (row.status, row.lease_owner) == ("running", "w-test")


# --- route switches -----------------------------------------------------------------------------------------


async def test_concurrent_switches_change_the_routes_once(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        answers = await at_once(
            env,
            TIMES,
            lambda c, _: c.post(f"{A}/switches", json={"off": "p1", "onto": "p2"}, headers=env.admin),
        )
        assert statuses(answers) == [200] * (TIMES - 1) + [201], [r.text for r in answers]
        changed = [r.json() for r in answers if r.json()["candidates_changed"]]
        assert len(changed) == 1, changed
        assert await count(env, RouteSwitch) == 1
        switch_id = changed[0]["switch_id"]

        answers = await at_once(
            env, TIMES, lambda c, _: c.post(f"{A}/switches/{switch_id}/revert", headers=env.admin)
        )
        assert statuses(answers) == [200] * TIMES, [r.text for r in answers]
        undone = [r.json() for r in answers if r.json()["candidates_changed"]]
        assert len(undone) == 1, undone
        assert {r.json()["message"] for r in answers if not r.json()["candidates_changed"]} == {
            f"nothing to change: switch #{switch_id} has nothing to undo"
        }
        assert await count(env, RouteCandidate, RouteCandidate.enabled.is_(False)) == 0


# --- things created once: top-ups by reference, rate and tariff versions ------------------------------------


async def test_concurrent_repeats_of_a_creation_answer_as_repeats(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        entries = await entries_of(env, "topup")
        body = {"amount": "500.00", "currency": "RUB", "reference": "bank-42"}
        answers = await at_once(
            env, TIMES, lambda c, _: c.post(f"{A}/providers/p1/topups", json=body, headers=env.admin)
        )
        assert statuses(answers) == [200] * (TIMES - 1) + [201], [r.text for r in answers]
        assert {r.json()["id"] for r in answers} == {answers[0].json()["id"]}
        assert await count(env, TopUp, TopUp.reference == "bank-42") == 1
        assert await entries_of(env, "topup") == entries + 1
        await ledger_ok(env)

        rate = {"base": "EUR", "quote": "RUB", "rate": "98.45", "effective_from": "2026-03-01T00:00:00Z"}
        answers = await at_once(
            env, TIMES, lambda c, _: c.post(f"{A}/exchange-rates", json=rate, headers=env.admin)
        )
        assert statuses(answers) == [200] * (TIMES - 1) + [201], [r.text for r in answers]
        assert await count(env, ExchangeRate) == 1

        versions = await count(env, TariffVersion)
        tariff = {
            "kind": "fee",
            "service": "topup",
            "currency": "RUB",
            "effective_from": "2027-01-01T00:00:00Z",
            "rule": {"percent": "3"},
        }
        answers = await at_once(
            env, TIMES, lambda c, _: c.post(f"{A}/tariffs", json=tariff, headers=env.admin)
        )
        assert statuses(answers) == [200] * (TIMES - 1) + [201], [r.text for r in answers]
        assert await count(env, TariffVersion) == versions + 1


# --- reconciliation: resolving one line at once -----------------------------------------------------------


async def test_concurrent_resolutions_of_a_line_book_it_once(db_url: str, tmp_path: Path) -> None:
    async with recon_env(db_url, n=3) as env:
        await set_mapping(env)
        ok = [p for p in await payments(env) if p.status == "succeeded"]
        their_own = ["99999999", "21.11.2026 10:00:00", "9009999999", money(1234_56), "OK"]
        recon = await reconcile(env, write_csv(tmp_path / "p1.csv", [*(line_of(p) for p in ok), their_own]))
        async with env.hub.read_sessions() as s:
            line_id = await s.scalar(
                select(ReconciliationLine.id).where(
                    ReconciliationLine.reconciliation_id == recon.id, ReconciliationLine.txn_ref == "99999999"
                )
            )
        body = {"action": "post", "line_ids": [line_id]}
        url = f"{A}/reconciliations/{recon.id}/resolve"
        answers = await at_once(env, TIMES, lambda c, _: c.post(url, json=body, headers=env.admin))
        assert statuses(answers) == [200] * TIMES, [r.text for r in answers]
        results = [r.json()["results"][0] for r in answers]
        done = [x for x in results if x["done"]]
        assert len(done) == 1, results
        # the others say what the line is now, with the payment it was booked as (as a second click does)
        assert {(x["message"], x["payment_id"]) for x in results if not x["done"]} == {
            ("already posted", done[0]["payment_id"])
        }
        assert await count(env, Payment, Payment.amount == 1234_56) == 1
        await ledger_ok(env)
