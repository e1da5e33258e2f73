"""Real `paymux worker` processes frozen with SIGSTOP on PostgreSQL (a GC pause, a stopped VM).

* Frozen between its claim and its send, for longer than its lease, with the first provider's
  breaker open at the worker that takes over: no payment is paid at two providers or paid while
  failed, and every provider's account in the ledger matches what that provider was paid.
* Frozen inside its outcome transaction (holding ledger locks): acceptances on the API node go on
  within the idle-in-transaction timeout, and nothing is lost or counted twice.

The workers stop themselves at a fault-injection point (``PAYMUX_FAILPOINTS``, :mod:`paymux.failpoints`)
and the test wakes them with SIGCONT.
"""

from __future__ import annotations

import asyncio
import copy
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import requires_postgres
from harness import BASE_CATALOG, FINAL, Env, hub_env
from paymux.catalog.snapshot import ProviderView
from paymux.ledger.models import Account, JournalEntry
from paymux.ledger.service import verify_ledger
from paymux.payments.models import Payment, PaymentAttempt
from paymux.payments.postings import provider_account
from test_workers_postgres import WorkerProc, start_worker, workers_stopped_at_exit

pytestmark = [requires_postgres, pytest.mark.postgres]

LEASE = 4  # seconds
BUSY = "9000000077"  # p1 answers this account's pays with a temporary error: it opens p1's breaker
EMULATORS: dict[str, dict[str, Any]] = {
    "p1": {"latency_ms": 5, "accounts": {BUSY: {"pay": "temporary:1:busy"}}},
    "p2": {"latency_ms": 5},
    "p3": {"latency_ms": 5},
}


def _catalog() -> dict[str, Any]:
    cat = copy.deepcopy(BASE_CATALOG)
    p1 = next(p for p in cat["providers"] if p["code"] == "p1")
    p1["breaker"] = {"window_seconds": 60, "min_calls": 4, "failure_rate_percent": 50, "open_seconds": 4}
    return cat


def _stopped(pid: int) -> bool:
    """Whether the process is stopped (state T in /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


async def _wait_stopped(w: WorkerProc, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not _stopped(w.proc.pid):
        if w.proc.returncode is not None or time.monotonic() > deadline:
            pytest.fail(f"the worker did not stop at its failpoint:\n{w.output()[-3000:]}")
        await asyncio.sleep(0.02)


async def _accept(env: Env, n: int, prefix: str, account: str | None = None) -> list[int]:
    ids = []
    for i in range(n):
        r = await env.pay(external_id=f"{prefix}-{i}", account=account or f"9{i:09d}", amount=f"{100 + i}.00")
        assert r.status_code == 201, r.text
        ids.append(int(r.json()["id"]))
    return ids


async def _wait_all_final(env: Env, procs: list[WorkerProc], within: float = 90) -> list[Payment]:
    deadline = time.monotonic() + within
    while True:
        async with env.hub.read_sessions() as s:
            rows = list((await s.scalars(select(Payment).order_by(Payment.id))).all())
        if all(p.status in FINAL for p in rows):
            return rows
        if time.monotonic() > deadline:
            open_ = [(p.id, p.status, p.in_doubt, p.error_message) for p in rows if p.status not in FINAL]
            logs = "\n".join(w.output()[-2000:] for w in procs)
            pytest.fail(f"payments not final after {within} s: {open_[:10]}\n{logs}")
        await asyncio.sleep(0.1)


async def _check_paid_once_and_deposits(env: Env, rows: list[Payment]) -> None:
    """No payment paid at two providers or paid while failed; each provider's ledger account moved
    by exactly what that provider was paid; the ledger balances."""
    snap = await env.hub.catalog.get()
    doubled = {p.id: env.succeeded_at(str(p.id)) for p in rows if len(env.succeeded_at(str(p.id))) > 1}
    assert doubled == {}, f"paid at two providers: {doubled}"
    paid_while_failed = [p.id for p in rows if p.status != "succeeded" and env.succeeded_at(str(p.id))]
    assert paid_while_failed == [], "paid although failed or cancelled"
    for p in rows:
        if p.status == "succeeded":
            assert env.succeeded_at(str(p.id)) == [snap.providers[p.provider_id].code], p.id
    async with env.hub.read_sessions() as s:
        assert (await verify_ledger(s)).balanced
        for provider in snap.providers.values():
            paid = sum(
                t.amount for t in env.emulators[provider.code].transactions() if t.status == "succeeded"
            )
            key = provider_account(provider.id, provider.settlement, "RUB")
            balance = await s.scalar(
                select(Account.balance).where(
                    Account.kind == key.kind, Account.owner_id == key.owner_id, Account.currency == "RUB"
                )
            )
            topped_up = 100_000_00 if provider.code == "p1" else 0
            assert (balance or 0) == topped_up - paid, (provider.code, balance, paid)


def _provider(snap_providers: dict[int, ProviderView], code: str) -> ProviderView:
    return next(p for p in snap_providers.values() if p.code == code)


async def test_a_worker_frozen_between_claim_and_send_past_its_lease_pays_nothing_twice(
    db_url: str, tmp_path: Path
) -> None:
    async with hub_env(db_url, emulators=EMULATORS, catalog=_catalog(), run_workers=False) as env:
        frozen_ids = await _accept(env, 12, "x")
        settings = {"lease_seconds": LEASE, "workers": 16, "claim_batch": 16}
        a = await start_worker(db_url, tmp_path, "a", failpoints="after_lease_check=stop", **settings)
        procs = [a]
        async with workers_stopped_at_exit(procs):
            await _wait_stopped(a)  # it claimed the payments, passed its lease check, and froze
            frozen_at = time.monotonic()
            async with env.hub.read_sessions() as s:
                leased = (
                    await s.scalars(select(Payment.lease_owner).where(Payment.id.in_(frozen_ids)))
                ).all()
            assert all(leased), "the frozen worker had not claimed every payment"
            # payments that open p1's breaker at the worker that takes over
            busy_ids = await _accept(env, 6, "busy", account=BUSY)
            b = await start_worker(db_url, tmp_path, "b", **settings)
            procs.append(b)
            await b.lease()
            # A stays frozen well past its lease: B takes its payments over meanwhile
            await asyncio.sleep(max(0.0, LEASE * 2 + 1 - (time.monotonic() - frozen_at)))
            async with env.hub.read_sessions() as s:
                opened = await s.scalar(
                    select(func.count())
                    .select_from(PaymentAttempt)
                    .where(PaymentAttempt.payment_id.in_(busy_ids), PaymentAttempt.outcome == "temporary")
                )
            assert (opened or 0) >= 4, "p1's breaker did not open at B: the test did not test the reroute"
            a.proc.send_signal(signal.SIGCONT)
            rows = await _wait_all_final(env, procs)
            codes = [await w.stop() for w in procs]
        assert codes == [0, 0], [w.output()[-3000:] for w in procs]

        await _check_paid_once_and_deposits(env, rows)
        # the frozen worker did send after waking (to p1, where B settles the payment too)
        assert "lease lost, outcome left to the new owner" in a.output(), a.output()[-3000:]
        calls = env.pay_calls("p1")
        assert any(calls.get(str(pid), 0) >= 2 for pid in frozen_ids), calls
        by_id = {p.id: p for p in rows}
        snap = await env.hub.catalog.get()
        p1 = _provider(snap.providers, "p1")
        for pid in frozen_ids:  # settled at p1 only, never moved
            assert by_id[pid].provider_id == p1.id and by_id[pid].failovers == 0, pid
            assert by_id[pid].status == "succeeded", (pid, by_id[pid].error_message)
        assert not any(
            env.emulators[c].ledger.all_pay_calls().get(str(pid)) for c in ("p2", "p3") for pid in frozen_ids
        )
        assert all(by_id[pid].provider_pinned for pid in frozen_ids)  # taken over: pinned
        async with env.hub.read_sessions() as s:
            successes = Counter(
                (
                    await s.scalars(
                        select(JournalEntry.payment_id).where(JournalEntry.kind == "payment_success")
                    )
                ).all()
            )
        assert set(successes.values()) == {1}, successes


async def test_a_worker_frozen_inside_its_outcome_transaction_does_not_stop_acceptance(
    db_url: str, tmp_path: Path
) -> None:
    idle_ms = 2000
    async with hub_env(db_url, emulators=EMULATORS, catalog=_catalog(), run_workers=False) as env:
        first = await _accept(env, 8, "first")
        a = await start_worker(
            db_url,
            tmp_path,
            "a",
            failpoints="in_outcome_transaction=stop",
            db_idle_in_transaction_timeout_ms=idle_ms,
            lease_seconds=LEASE,
        )
        procs = [a]
        async with workers_stopped_at_exit(procs):
            await _wait_stopped(a)  # its outcomes' entries are written, their accounts locked
            latencies: list[float] = []
            accepted: list[int] = []
            until = time.monotonic() + 6
            i = 0
            while time.monotonic() < until:
                started = time.monotonic()
                try:
                    r = await asyncio.wait_for(env.pay(external_id=f"during-{i}", amount="10.00"), 10)
                except TimeoutError:
                    pytest.fail("an acceptance waited 10 s for the frozen worker's locks")
                latencies.append(time.monotonic() - started)
                assert r.status_code == 201, r.text
                accepted.append(int(r.json()["id"]))
                i += 1
            assert max(latencies) < idle_ms / 1000 + 1.5, max(latencies)
            assert len(accepted) >= 20, len(accepted)
            a.proc.send_signal(signal.SIGCONT)
            b = await start_worker(db_url, tmp_path, "b", lease_seconds=LEASE)
            procs.append(b)
            await b.lease()  # started (it handles SIGTERM from now on)
            rows = await _wait_all_final(env, procs)
            codes = [await w.stop() for w in procs]
        assert codes == [0, 0], [w.output()[-3000:] for w in procs]
        assert {p.id for p in rows} == set(first) | set(accepted)
        assert Counter(p.status for p in rows) == {"succeeded": len(rows)}
        await _check_paid_once_and_deposits(env, rows)
        async with env.hub.read_sessions() as s:
            successes = Counter(
                (
                    await s.scalars(
                        select(JournalEntry.payment_id).where(JournalEntry.kind == "payment_success")
                    )
                ).all()
            )
        assert set(successes.values()) == {1} and len(successes) == len(rows), successes
