"""Several ``paymux worker`` processes on one PostgreSQL database never send a payment twice.

The hub in the test process only accepts payments (no in-process workers) and keeps the emulated
providers running; the real console script does the processing in separate processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import requires_postgres
from harness import FINAL, Env, hub_env
from paymux.ledger.service import verify_ledger
from paymux.payments.models import Payment, PaymentAttempt

pytestmark = [requires_postgres, pytest.mark.postgres]

PAYMUX = Path(sys.executable).parent / "paymux"
N = 300
RELIABLE = {"latency_ms": 20, "jitter_ms": 30}
EMULATORS = {code: dict(RELIABLE) for code in ("p1", "p2", "p3")}


@dataclass
class WorkerProc:
    proc: asyncio.subprocess.Process
    out: Path
    err: Path

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    async def lease(self) -> str:
        """The lease owner name the worker prints when it starts."""
        deadline = time.monotonic() + 30
        while True:
            m = re.search(r"^worker (w-[0-9a-f]+) processing payments", self.out.read_text(), re.M)
            if m:
                return m[1]
            if self.proc.returncode is not None or time.monotonic() > deadline:
                pytest.fail(f"worker did not start (exit {self.proc.returncode}):\n{self.output()}")
            await asyncio.sleep(0.05)

    async def stop(self) -> int:
        """SIGTERM, then wait without blocking the loop (the emulators run in it); kill on timeout."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
                pytest.fail(f"worker ignored SIGTERM:\n{self.output()}")
        return self.proc.returncode  # type: ignore[return-value]


async def start_worker(db_url: str, tmp_path: Path, name: str, **settings: Any) -> WorkerProc:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")}
    env.update(
        PAYMUX_DATABASE_URL=db_url,
        PAYMUX_LOG_LEVEL="warning",
        PAYMUX_POLL_INTERVAL_MS="30",
        PAYMUX_CATALOG_CACHE_SECONDS="1",
        # few payments at a time, so that the work is shared and a kill catches some mid-flight
        PAYMUX_WORKERS="4",
        PAYMUX_CLAIM_BATCH="4",
        PAYMUX_RETRY_BASE_MS="100",
        PAYMUX_RETRY_MAX_MS="500",
    )
    env.update({f"PAYMUX_{k.upper()}": str(v) for k, v in settings.items()})
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with out.open("w") as o, err.open("w") as e:
        proc = await asyncio.create_subprocess_exec(str(PAYMUX), "worker", env=env, stdout=o, stderr=e)
    return WorkerProc(proc, out, err)


@contextlib.asynccontextmanager
async def workers_stopped_at_exit(procs: list[WorkerProc]):  # type: ignore[no-untyped-def]
    try:
        yield
    finally:
        for w in procs:
            if w.proc.returncode is None:
                w.proc.kill()
                await w.proc.wait()


async def accept_payments(env: Env, n: int) -> list[int]:
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> int:
        async with sem:
            r = await env.pay(external_id=f"mw-{i}", account=f"9{i:09d}", amount=f"{100 + i % 50}.00")
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "accepted"
        return int(r.json()["id"])

    ids = await asyncio.gather(*(one(i) for i in range(n)))
    assert len(set(ids)) == n
    return ids


async def count_final(env: Env) -> int:
    async with env.hub.read_sessions() as s:
        return int(await s.scalar(select(func.count()).where(Payment.status.in_(FINAL))) or 0)


async def wait_final(env: Env, n: int, procs: list[WorkerProc], at_least: int | None = None) -> int:
    deadline = time.monotonic() + 60
    target = n if at_least is None else at_least
    while True:
        done = await count_final(env)
        if done >= target:
            return done
        if time.monotonic() > deadline:
            logs = "\n".join(w.output()[-3000:] for w in procs)
            pytest.fail(f"only {done} of {n} payments final after 60 s\n{logs}")
        await asyncio.sleep(0.05)


async def payments(env: Env) -> list[Payment]:
    async with env.hub.read_sessions() as s:
        return list((await s.scalars(select(Payment).order_by(Payment.id))).all())


async def assert_ledger_balanced(env: Env) -> None:
    async with env.hub.read_sessions() as s:
        check = await verify_ledger(s)
    assert check.balanced, check
    assert check.entries >= 2 * N  # accept and success of every payment


def pay_calls(env: Env) -> dict[str, Counter[str]]:
    """Pay requests by txn id, per provider."""
    calls: dict[str, Counter[str]] = {}
    for code, engine in env.emulators.items():
        for txn, n in engine.ledger.all_pay_calls().items():
            calls.setdefault(txn, Counter())[code] += n
    return calls


async def test_two_worker_processes_never_send_a_payment_twice(db_url: str, tmp_path: Path) -> None:
    async with hub_env(db_url, emulators=EMULATORS, run_workers=False) as env:
        ids = await accept_payments(env, N)
        assert await count_final(env) == 0  # nothing processes them in this process
        procs = [await start_worker(db_url, tmp_path, f"w{i}") for i in (1, 2)]
        async with workers_stopped_at_exit(procs):
            leases = {await w.lease() for w in procs}
            assert len(leases) == 2
            started = time.monotonic()
            await wait_final(env, N, procs)
            elapsed = time.monotonic() - started
            codes = [await w.stop() for w in procs]
        assert codes == [0, 0], [w.output()[-3000:] for w in procs]

        rows = await payments(env)
        assert [p.id for p in rows] == sorted(ids)
        assert Counter(p.status for p in rows) == {"succeeded": N}, Counter(p.status for p in rows)
        calls = pay_calls(env)
        assert set(calls) == {str(i) for i in ids}
        doubled = {t: dict(c) for t, c in calls.items() if sum(c.values()) != 1}
        assert doubled == {}, f"sent more than once: {doubled}"
        snap = await env.hub.catalog.get()
        for p in rows:
            assert env.succeeded_at(str(p.id)) == [snap.providers[p.provider_id].code], p.id
        # both processes did part of the work, and nobody else did any; every lease was released
        assert {p.lease_owner for p in rows} == {None}
        async with env.hub.read_sessions() as s:
            sent = (await s.execute(select(PaymentAttempt.step, PaymentAttempt.lease))).all()
        assert Counter(step for step, _ in sent) == {"pay": N}
        owners = Counter(lease.rsplit(".", 1)[0] for _, lease in sent)
        assert set(owners) == leases, owners
        assert min(owners.values()) >= N // 10, owners
        await assert_ledger_balanced(env)
        assert elapsed < 45


async def test_a_killed_worker_leaves_no_payment_lost_or_paid_twice(db_url: str, tmp_path: Path) -> None:
    async with hub_env(db_url, emulators=EMULATORS, run_workers=False) as env:
        ids = await accept_payments(env, N)
        procs = [await start_worker(db_url, tmp_path, f"w{i}", lease_seconds=2) for i in (1, 2)]
        async with workers_stopped_at_exit(procs):
            victim, survivor = procs
            victim_lease = await victim.lease()
            await survivor.lease()
            await wait_final(env, N, procs, at_least=N // 3)
            victim.proc.send_signal(signal.SIGKILL)
            assert await victim.proc.wait() == -signal.SIGKILL
            async with env.hub.read_sessions() as s:
                orphans = list(
                    (
                        await s.scalars(
                            select(Payment.id).where(
                                Payment.lease_owner.startswith(victim_lease + "."),
                                Payment.status.not_in(FINAL),
                            )
                        )
                    ).all()
                )
            newcomer = await start_worker(db_url, tmp_path, "w3", lease_seconds=2)
            procs.append(newcomer)
            await newcomer.lease()
            await wait_final(env, N, procs)
            codes = [await w.stop() for w in (survivor, newcomer)]
        assert codes == [0, 0], [w.output()[-3000:] for w in procs]

        rows = await payments(env)
        assert [p.id for p in rows] == sorted(ids)
        assert Counter(p.status for p in rows) == {"succeeded": N}, Counter(p.status for p in rows)
        assert all(not p.in_doubt and p.next_attempt_at is None for p in rows)
        codes_by_id = {p.id: p.provider_id for p in rows}
        snap = await env.hub.catalog.get()
        calls = pay_calls(env)
        assert set(calls) == {str(i) for i in ids}
        for pid in ids:
            txn = str(pid)
            where = env.succeeded_at(txn)
            assert where == [snap.providers[codes_by_id[pid]].code], (pid, where, dict(calls[txn]))
            # a second pay call may only be a payment the killed worker held, sent again to the same
            # provider (after asking it for the status first); never a payment taken twice
            most = 2 if pid in orphans else 1
            assert len(calls[txn]) == 1 and sum(calls[txn].values()) <= most, (pid, dict(calls[txn]))

        # the payments the killed worker held were taken over once its lease ran out
        assert orphans, "the killed worker held no payment: the test did not test the takeover"
        orphaned = [p for p in rows if p.id in set(orphans)]
        assert all(p.lease_owner is None and p.provider_pinned for p in orphaned)
        assert not any(p.provider_pinned for p in rows if p.id not in set(orphans))
        async with env.hub.read_sessions() as s:
            steps = Counter(
                (
                    await s.scalars(select(PaymentAttempt.step).where(PaymentAttempt.payment_id.in_(orphans)))
                ).all()
            )
        assert steps["status"] >= 1, steps  # in doubt: the provider was asked before anything else
        await assert_ledger_balanced(env)
