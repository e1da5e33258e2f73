"""End to end through HTTP against emulated providers: delivery, retries, failover, doubt, switches."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text

from harness import hub_env
from paymux.ledger.service import verify_ledger
from paymux.payments.models import Payment
from paymux.payments.processing import claim_due, process


async def _ledger_ok(env) -> None:  # type: ignore[no-untyped-def]
    async with env.hub.read_sessions() as s:
        check = await verify_ledger(s)
    assert check.balanced, check


async def test_payment_succeeds_with_pricing_and_postings(db_url: str) -> None:
    async with hub_env(db_url) as env:
        r = await env.pay(amount="250.00")
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["status"] in ("accepted", "processing", "succeeded")
        assert (body["amount"], body["fee"], body["total"], body["provider"]) == (
            "250.00",
            "2.50",
            "252.50",
            "p1",
        )
        final = await env.wait_final(body["id"])
        assert final["status"] == "succeeded"
        assert final["provider_txn_id"]
        assert env.pay_calls("p1") == {str(body["id"]): 1}
        d = await env.details(body["id"])
        assert d["remuneration"] == "2.50" and d["commission"] == "1.25"
        assert all(d["tariff_versions"][k] is not None for k in ("fee", "remuneration", "commission"))
        kinds = [p["entry_kind"] for p in d["postings"]]
        assert kinds.count("payment_accept") == 3 and "payment_success" in kinds
        assert d["attempts"][0]["step"] == "pay" and d["attempts"][0]["exchanges"]
        assert "chose p1" in d["route_reason"]
        await _ledger_ok(env)


async def test_fatal_refusal_fails_over_to_next_provider(db_url: str) -> None:
    emus = {"p1": {"accounts": {"9001234567": {"pay": "fatal:5:account not found"}}}}
    async with hub_env(db_url, emulators=emus) as env:
        pid = (await env.pay()).json()["id"]
        final = await env.wait_final(pid)
        assert final["status"] == "succeeded" and final["provider"] == "p2"
        d = await env.details(pid)
        assert d["failovers"] == 1 and "failover from p1" in d["route_reason"]
        assert [a["provider"] for a in d["attempts"]] == ["p1", "p2"]
        assert env.succeeded_at(str(pid)) == ["p2"]
        await _ledger_ok(env)


async def test_fatal_everywhere_fails_and_reverses_postings(db_url: str) -> None:
    refuse = {"accounts": {"9001234567": {"pay": "fatal:7:payment forbidden"}}}
    async with hub_env(db_url, emulators={"p1": refuse, "p2": refuse, "p3": refuse}) as env:
        pid = (await env.pay()).json()["id"]
        final = await env.wait_final(pid)
        assert final["status"] == "failed"
        assert "forbidden" in final["error_message"]
        d = await env.details(pid)
        assert [a["provider"] for a in d["attempts"]] == ["p1", "p2", "p3"]
        assert "payment_fail" in {p["entry_kind"] for p in d["postings"]}
        # the deposit of prepaid p1 is whole again and nothing is left on the channel
        r = await env.http.get("/api/v1/admin/providers/p1/balance", headers=env.admin)
        assert r.json()["accounts"][0]["balance"] == "100000.00"
        await _ledger_ok(env)


async def test_temporary_errors_retry_same_provider_same_txn_then_succeed(db_url: str) -> None:
    emus = {"p1": {"accounts": {"9001234567": {"pay": "temporary_then_ok:2"}}}}
    async with hub_env(db_url, emulators=emus) as env:
        pid = (await env.pay()).json()["id"]
        final = await env.wait_final(pid)
        assert final["status"] == "succeeded" and final["provider"] == "p1"
        assert env.pay_calls("p1")[str(pid)] == 3  # same txn id three times, one transaction
        d = await env.details(pid)
        assert [a["outcome"] for a in d["attempts"]] == ["temporary", "temporary", "ok"]
        assert d["failovers"] == 0


async def test_temporary_errors_until_lifetime_ends_fail(db_url: str) -> None:
    later = {"accounts": {"9001234567": {"pay": "temporary:1:try later"}}}
    async with hub_env(db_url, emulators={"p1": later, "p2": later, "p3": later}) as env:
        async with env.hub.sessions() as s:
            from paymux.catalog.models import Service

            svc = await s.scalar(select(Service).where(Service.code == "topup"))
            assert svc is not None
            svc.lifetime_seconds = 1
            await s.commit()
        env.hub.catalog_changed()
        pid = (await env.pay()).json()["id"]
        final = await env.wait_final(pid)
        assert final["status"] == "failed" and "lifetime" in final["error_message"]
        assert env.pay_calls("p1")[str(pid)] >= 2
        assert env.succeeded_at(str(pid)) == []
        await _ledger_ok(env)


async def test_lost_answer_is_settled_by_status_at_the_same_provider(db_url: str) -> None:
    emus = {"p1": {"lost_hold_ms": 3000, "accounts": {"9001234567": {"pay": "lost_then_ok"}}}}
    async with hub_env(db_url, emulators=emus) as env:
        pid = (await env.pay()).json()["id"]
        final = await env.wait_final(pid)
        assert final["status"] == "succeeded" and final["provider"] == "p1"
        d = await env.details(pid)
        steps = [(a["step"], a["outcome"]) for a in d["attempts"]]
        assert steps[0] == ("pay", "unknown") and steps[-1] == ("status", "ok")
        assert env.pay_calls("p1")[str(pid)] == 1  # never sent again, never sent elsewhere
        assert env.succeeded_at(str(pid)) == ["p1"]
        assert env.pay_calls("p2") == {} and env.pay_calls("p3") == {}


async def test_unreachable_provider_fails_over_at_once(db_url: str) -> None:
    async with hub_env(db_url) as env:
        r = await env.http.get("/api/v1/admin/providers/p1", headers=env.admin)
        p1 = r.json()
        p1["config"]["url"] = "http://127.0.0.1:9"  # nothing listens there: connection refused
        r = await env.http.put("/api/v1/admin/providers/p1", json=p1, headers=env.admin)
        assert r.status_code == 200 and r.json()["change"] == "updated"
        pid = (await env.pay()).json()["id"]
        final = await env.wait_final(pid)
        assert final["status"] == "succeeded" and final["provider"] == "p2"
        d = await env.details(pid)
        assert [(a["provider"], a["outcome"]) for a in d["attempts"]] == [("p1", "unreachable"), ("p2", "ok")]


async def test_failing_provider_opens_its_circuit_breaker(db_url: str) -> None:
    async with hub_env(db_url) as env:
        env.emulators["p1"].set_down(True)  # answers 503 "temporarily unavailable" to everything
        ids = [(await env.pay()).json()["id"] for _ in range(6)]
        finals = [await env.wait_final(i) for i in ids]
        assert {f["status"] for f in finals} == {"succeeded"}
        assert {f["provider"] for f in finals} == {"p2"}
        r = await env.http.get("/api/v1/admin/health/providers", headers=env.admin)
        states = {h["provider"]: h["state"] for h in r.json()}
        assert states["p1"] == "open"
        # with the breaker open, new payments are routed straight to p2
        new = (await env.pay()).json()
        assert new["provider"] == "p2"
        d = await env.details(new["id"])
        assert "p1: circuit breaker open" in d["route_reason"]


async def test_one_click_switch_moves_new_and_queued_payments(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        queued = (await env.pay()).json()
        assert queued["provider"] == "p1"
        r = await env.http.post("/api/v1/admin/switches", json={"off": "p1", "onto": "p3"}, headers=env.admin)
        assert r.status_code == 201, r.text
        assert r.json()["services"] == ["topup"]
        new = (await env.pay()).json()
        assert new["provider"] == "p3"
        # process what is queued by hand: the payment still routed to p1 is moved before sending
        for _ in range(3):
            for c in await claim_due(env.hub, "test-worker", 10):
                await process(env.hub, c)
        assert (await env.wait_final(queued["id"], within=1))["provider"] == "p3"
        assert env.pay_calls("p1") == {}
        again = await env.http.post(
            "/api/v1/admin/switches", json={"off": "p1", "onto": "p3"}, headers=env.admin
        )
        assert again.status_code == 200 and again.json()["candidates_changed"] == 0
        await _ledger_ok(env)


async def test_prepaid_deposit_exhausted_routes_to_next_provider(db_url: str) -> None:
    async with hub_env(db_url, deposits={"p1": 150_00}) as env:
        first = (await env.pay(amount="100.00")).json()
        assert first["provider"] == "p1"
        second = (await env.pay(amount="100.00")).json()
        assert second["provider"] == "p2"
        d = await env.details(second["id"])
        assert "p1: deposit cannot cover" in d["route_reason"]
        r = await env.http.post(
            "/api/v1/admin/providers/p1/topups",
            headers=env.admin,
            json={"amount": "1000.00", "currency": "RUB", "reference": "bank-42"},
        )
        assert r.status_code == 201
        third = (await env.pay(amount="100.00")).json()
        assert third["provider"] == "p1"
        await env.wait_final(third["id"])
        await _ledger_ok(env)


def _hold_acceptances_after_their_lock(monkeypatch) -> tuple[asyncio.Event, asyncio.Event]:  # type: ignore[no-untyped-def]
    """Acceptance batches stop after locking their accounts (``holding`` is set) until ``release``."""
    from paymux.payments import acceptor

    holding, release = asyncio.Event(), asyncio.Event()
    real_insert = acceptor._insert

    async def insert_when_released(*args, **kwargs):  # type: ignore[no-untyped-def]
        holding.set()
        await release.wait()
        return await real_insert(*args, **kwargs)

    monkeypatch.setattr(acceptor, "_insert", insert_when_released)
    return holding, release


async def test_an_acceptance_holding_the_account_locks_lets_foreign_key_checks_through(  # type: ignore[no-untyped-def]
    db_url: str, monkeypatch
) -> None:
    """PostgreSQL: the acceptance batch locks its accounts FOR NO KEY UPDATE, so another
    transaction posting to those accounts meanwhile (the outcomes' writer inserting postings: a
    foreign-key check on each account) is not held up until the batch commits."""
    if db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL only: SQLite has one writer")
    async with hub_env(db_url, deposits={"p1": 1000_00}) as env:
        await env.pay(amount="1.00", external_id="warm")  # the accounts exist
        holding, release = _hold_acceptances_after_their_lock(monkeypatch)
        paying = asyncio.create_task(env.pay(amount="2.00", external_id="held"))
        await asyncio.wait_for(holding.wait(), 5)
        try:
            async with env.hub.engine.begin() as c:
                await c.execute(text("SET LOCAL lock_timeout = '1s'"))
                entry = (
                    await c.execute(
                        text(
                            "INSERT INTO journal_entries (kind, created_at)"
                            " VALUES ('probe', now()) RETURNING id"
                        )
                    )
                ).scalar_one()
                for aid in (await c.execute(text("SELECT id FROM accounts"))).scalars().all():
                    await c.execute(
                        text(
                            "INSERT INTO postings (entry_id, account_id, amount, currency, created_at)"
                            " VALUES (:e, :a, 0, 'RUB', now())"
                        ),
                        {"e": entry, "a": aid},
                    )
                await c.rollback()
        finally:
            release.set()
        assert (await paying).status_code == 201


async def test_no_provider_can_cover_is_503_and_stores_nothing(db_url: str) -> None:
    cat_only_p1 = {"deposits": {"p1": 10_00}}
    async with hub_env(db_url, **cat_only_p1) as env:
        async with env.hub.sessions() as s:
            from paymux.routing.switch import switch_provider

            await switch_provider(s, "p2", None, None, "test")
            await switch_provider(s, "p3", None, None, "test")
            await s.commit()
        env.hub.catalog_changed()
        r = await env.pay(amount="100.00")
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "deposit cannot cover" in r.json()["detail"]
        async with env.hub.read_sessions() as s:
            assert (await s.scalars(select(Payment))).all() == []


async def test_crash_after_claim_is_settled_by_status_then_paid_once(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False, lease_seconds=1) as env:
        pid = (await env.pay()).json()["id"]
        claimed = await claim_due(env.hub, "dead-worker", 10)
        assert [c.payment.id for c in claimed] == [pid]
        # the worker dies here, before sending. After the lease another worker takes over.
        assert await claim_due(env.hub, "other", 10) == []
        await asyncio.sleep(1.1)
        again = await claim_due(env.hub, "other", 10)
        assert [c.payment.id for c in again] == [pid] and again[0].was_in_doubt
        await process(env.hub, again[0])  # status: not found at p1 -> send again to p1
        for c in await claim_due(env.hub, "other", 10):
            await process(env.hub, c)
        final = await env.wait_final(pid, within=1)
        assert final["status"] == "succeeded" and final["provider"] == "p1"
        d = await env.details(pid)
        assert [(a["step"], a["outcome"]) for a in d["attempts"]] == [("status", "not_found"), ("pay", "ok")]
        # the dead worker, woken up: its lease ran out, so it sends nothing (and could record nothing)
        await process(env.hub, claimed[0])
        assert env.pay_calls("p1")[str(pid)] == 1
        assert env.succeeded_at(str(pid)) == ["p1"]
        async with env.hub.read_sessions() as s:
            p = await s.get(Payment, pid)
        assert p is not None and p.status == "succeeded" and p.provider_pinned and p.lease_owner is None
        await _ledger_ok(env)


async def test_a_claim_reads_every_column_as_the_orm_does_and_leases_the_payment(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        pid = (await env.pay()).json()["id"]
        async with env.hub.read_sessions() as s:
            before = await s.get(Payment, pid)
        assert before is not None and before.status == "accepted"
        (claimed,) = await claim_due(env.hub, "w-claims", 10)
        got = vars(claimed.payment)
        for column in Payment.__table__.columns:
            assert got[column.key] == getattr(before, column.key), column.key
        assert got["fields"] == {} and got["tried_provider_ids"] == []
        assert got["created_at"].tzinfo is not None
        assert claimed.was_in_doubt is False
        async with env.hub.read_sessions() as s:
            after = await s.get(Payment, pid)
        assert after is not None
        assert (after.status, after.in_doubt) == ("processing", True)
        assert after.lease_owner == claimed.lease and claimed.lease.startswith("w-claims.")
        assert after.next_attempt_at is not None and after.next_attempt_at > before.created_at
        assert await claim_due(env.hub, "w-other", 10) == []


async def test_payment_without_any_tariff_succeeds(db_url: str) -> None:
    from harness import BASE_CATALOG

    cat = {**BASE_CATALOG, "tariffs": []}
    async with hub_env(db_url, catalog=cat) as env:
        body = (await env.pay(amount="10.00")).json()
        assert (body["fee"], body["total"]) == ("0.00", "10.00")
        final = await env.wait_final(body["id"])
        assert final["status"] == "succeeded"
        d = await env.details(body["id"])
        assert {p["entry_kind"] for p in d["postings"]} == {"payment_accept"}
        await _ledger_ok(env)


async def test_admin_channel_list_masks_hmac_secret(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        web = {
            "code": "web",
            "name": "Internet bank",
            "kind": "internet_bank",
            "group": "online",
            "signing": {"mode": "hmac", "required": True, "hmac_secret": "a-very-secret-value-123"},
        }
        r = await env.http.put("/api/v1/admin/channels/web", json=web, headers=env.admin)
        assert r.status_code == 200, r.text
        r = await env.http.get("/api/v1/admin/channels", headers=env.admin)
        assert "a-very-secret-value-123" not in r.text
        assert {c["code"]: c["signing"].get("hmac_secret") for c in r.json()}["web"] == "***"


async def test_provider_reusing_a_txn_id_is_recorded_and_flagged(db_url: str) -> None:
    """A provider that numbers its transactions from 1 again (a restart) must not stall delivery on
    the unique (provider, provider_txn_id): the outcome is recorded, the payment flagged."""
    async with hub_env(db_url) as env:
        first = (await env.pay()).json()["id"]
        assert (await env.wait_final(first))["status"] == "succeeded"
        env.emulators["p1"].reset()  # the provider forgets its numbering
        second = (await env.pay(account="9001234568")).json()["id"]
        final = await env.wait_final(second)
        assert final["status"] == "succeeded" and final["provider"] == "p1"
        async with env.hub.read_sessions() as s:
            rows = {
                p.id: p for p in (await s.scalars(select(Payment).where(Payment.id.in_([first, second]))))
            }
        assert rows[first].provider_txn_id == "EMU-00000001" and not rows[first].needs_attention
        assert rows[second].provider_txn_id is None and rows[second].needs_attention
        assert f"EMU-00000001, which payment {first} already has" in (rows[second].error_message or "")
        d = await env.details(second)
        assert d["attempts"][-1]["provider_txn_id"] == "EMU-00000001"  # the attempt keeps the provider's id
        assert env.pay_calls("p1")[str(second)] == 1
        await _ledger_ok(env)


async def test_a_repeat_racing_its_own_outcome_does_not_deadlock(  # type: ignore[no-untyped-def]
    db_url: str, monkeypatch
) -> None:
    """PostgreSQL: an acceptance batch holds its accounts and inserts a repeat of a payment whose
    outcome is being recorded. The outcome batch takes the accounts before it updates the payment,
    so it waits for the acceptance instead of the two waiting for each other (a deadlock, broken
    after a second and retried one by one)."""
    if db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL only: SQLite has one writer")
    async with hub_env(db_url, run_workers=False) as env:
        assert (await env.pay(external_id="race")).status_code == 201
        (claimed,) = await claim_due(env.hub, "test-worker", 10)
        holding, release = _hold_acceptances_after_their_lock(monkeypatch)
        repeat = asyncio.create_task(env.pay(external_id="race"))
        await asyncio.wait_for(holding.wait(), 5)
        delivering = asyncio.create_task(process(env.hub, claimed))
        await asyncio.sleep(0.5)  # the outcome batch reaches the accounts' locks
        release.set()
        assert (await repeat).status_code == 200
        await delivering
        assert env.hub.acceptor.failed_batches == 0 and env.hub.recorder.failed_batches == 0
        assert (await env.wait_final(claimed.payment.id, within=5))["status"] == "succeeded"
        await _ledger_ok(env)
