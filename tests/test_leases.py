"""Leases per claim: a worker that paused past its lease sends nothing more, a takeover pins the
payment to the provider a late request may reach, and one claim's outcome never counts twice.

The pauses are simulated in one process (a claim kept aside, its lease run out in the database and
its send deadline moved); tests/test_workers_pause.py freezes real worker processes with SIGSTOP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from harness import Env, hub_env
from paymux.db.base import utcnow
from paymux.ledger.models import JournalEntry
from paymux.ledger.service import verify_ledger
from paymux.payments.models import Payment, PaymentAttempt
from paymux.payments.processing import Claimed, _succeed, claim_due, process
from paymux.payments.recorder import Writes
from paymux.providers import send_guard
from paymux.providers.base import ProtocolResult
from paymux.providers.send_guard import LeaseExpired, SendGuard
from paymux.providers.transport import provider_client

FATAL_AT_P1 = {"p1": {"accounts": {"9000000001": {"pay": "fatal:7:refused by p1"}}}}
TEMPORARY_AT_P1 = {"p1": {"accounts": {"9000000002": {"pay": "temporary:1:try later"}}}}


async def _row(env: Env, pid: int) -> Payment:
    async with env.hub.read_sessions() as s:
        p = await s.get(Payment, pid)
    assert p is not None
    return p


async def _lapse(env: Env, pid: int) -> None:
    """The claim's lease runs out in the database (its worker is paused)."""
    async with env.hub.sessions() as s:
        await s.execute(
            text("UPDATE payments SET next_attempt_at = :t WHERE id = :i"),
            {"t": _past(), "i": pid},
        )
        await s.commit()


def _past() -> dt.datetime:
    return utcnow() - dt.timedelta(seconds=1)


_due = _lapse  # a payment waiting for a retry becomes due at once


async def _entries(env: Env, pid: int) -> Counter[str]:
    async with env.hub.read_sessions() as s:
        kinds = (await s.scalars(select(JournalEntry.kind).where(JournalEntry.payment_id == pid))).all()
    return Counter(kinds)


async def _open_breaker(env: Env, code: str) -> None:
    snap = await env.hub.catalog.get()
    provider = next(p for p in snap.providers.values() if p.code == code)
    for _ in range(10):
        env.hub.breakers.record(provider.id, provider.breaker, False)
    assert not env.hub.breakers.allow(provider.id, provider.breaker)


async def _ledger_ok(env: Env) -> None:
    async with env.hub.read_sessions() as s:
        assert (await verify_ledger(s)).balanced


def _paused_before_its_check(c: Claimed) -> None:
    c.guard.deadline = time.monotonic() - 1  # woke up after the lease's deadline


def _paused_after_its_check(c: Claimed) -> None:
    c.guard.deadline = time.monotonic() + 60  # passed its check, then froze: it sends when it wakes


async def test_a_worker_that_paused_past_its_lease_sends_nothing_and_gives_the_payment_back(
    db_url: str,
) -> None:
    async with hub_env(db_url, run_workers=False) as env:
        pid = (await env.pay()).json()["id"]
        (paused,) = await claim_due(env.hub, "w-a", 10)
        _paused_before_its_check(paused)
        await process(env.hub, paused)
        assert env.pay_calls("p1") == {}
        p = await _row(env, pid)
        # never sent: due at once, as it was before the claim, and not pinned
        assert (p.status, p.in_doubt, p.lease_owner, p.provider_pinned) == ("accepted", False, None, False)
        (fresh,) = await claim_due(env.hub, "w-b", 10)
        assert not fresh.was_in_doubt and not fresh.pinned
        await process(env.hub, fresh)
        assert (await env.wait_final(pid, within=5))["status"] == "succeeded"
        assert env.pay_calls("p1") == {str(pid): 1}
        async with env.hub.read_sessions() as s:
            leases = (await s.scalars(select(PaymentAttempt.lease))).all()
        assert leases == [fresh.lease]  # the attempt names the claim that sent it


async def test_the_lease_is_checked_in_the_transport_right_before_the_request_leaves() -> None:
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(65536)
        received.append(data)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/pay"
    client = provider_client(httpx.Timeout(2.0))
    try:
        for send in (
            lambda: client.post_bytes(url, b"{}", {"Content-Type": "application/json"}, httpx.Timeout(2.0)),
            lambda: client.post(url, content=b"{}"),
        ):
            lapsed = SendGuard(time.monotonic() - 0.001)
            token = send_guard.current.set(lapsed)
            try:
                with pytest.raises(LeaseExpired):
                    await send()
            finally:
                send_guard.current.reset(token)
            assert lapsed.tripped and lapsed.sent == 0
            await asyncio.sleep(0.05)
            assert received == []  # nothing left for the provider
            held = SendGuard(time.monotonic() + 30)
            token = send_guard.current.set(held)
            try:
                await send()
            finally:
                send_guard.current.reset(token)
            assert held.sent == 1 and not held.tripped
            await asyncio.sleep(0.05)
            assert len(received) == 1 and received[0].startswith(b"POST /pay ")
            received.clear()
        assert issubclass(LeaseExpired, httpx.ConnectError)  # every protocol: certainly not delivered
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


async def test_a_takeover_pins_the_payment_so_an_open_breaker_never_moves_it(db_url: str) -> None:
    """The double payment of a paused worker: A claims X for p1 and freezes after its last check;
    B takes X over, p1 says "not found" and p1's breaker is open at B. Unpinned, B would move X to
    p2, which pays, and A would then pay it at p1 too."""
    async with hub_env(db_url, run_workers=False) as env:
        pid = (await env.pay()).json()["id"]
        (a,) = await claim_due(env.hub, "w-a", 10)
        _paused_after_its_check(a)
        await _lapse(env, pid)
        await _open_breaker(env, "p1")
        (b,) = await claim_due(env.hub, "w-b", 10)
        assert b.was_in_doubt and b.pinned
        await process(env.hub, b)  # status: not found at p1
        p = await _row(env, pid)
        assert p.provider_pinned and not p.in_doubt
        await _due(env, pid)
        (b2,) = await claim_due(env.hub, "w-b", 10)
        assert b2.pinned and not b2.was_in_doubt
        await process(env.hub, b2)  # p1's breaker is open: it waits, it does not move
        p = await _row(env, pid)
        snap = await env.hub.catalog.get()
        assert snap.providers[p.provider_id].code == "p1" and p.status == "processing"
        assert p.error_code == "pinned" and "p1" in (p.error_message or "")
        assert env.pay_calls("p2") == {} and env.pay_calls("p3") == {}
        # A wakes and sends to p1, which pays; its outcome is not recorded (B's claim holds X).
        # (A is another process: p1's breaker is closed there.)
        env.hub.breakers.reset()
        await process(env.hub, a)
        assert env.succeeded_at(str(pid)) == ["p1"]
        assert (await _row(env, pid)).status == "processing"
        # p1 comes back at B: X is settled there, once
        await _due(env, pid)
        (b3,) = await claim_due(env.hub, "w-b", 10)
        await process(env.hub, b3)
        p = await _row(env, pid)
        assert p.status == "succeeded" and snap.providers[p.provider_id].code == "p1"
        assert env.succeeded_at(str(pid)) == ["p1"] and env.pay_calls("p2") == {}
        entries = await _entries(env, pid)
        assert entries == {"payment_accept": 1, "payment_success": 1}, entries  # no reroute entry
        await _ledger_ok(env)


async def test_a_pinned_payment_is_failed_only_when_its_provider_refuses_it(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False, emulators=FATAL_AT_P1) as env:
        pid = (await env.pay(account="9000000001")).json()["id"]
        await claim_due(env.hub, "w-a", 10)  # and the worker dies
        await _lapse(env, pid)
        (b,) = await claim_due(env.hub, "w-b", 10)
        await process(env.hub, b)  # status: not found
        await _due(env, pid)
        (b2,) = await claim_due(env.hub, "w-b", 10)
        await process(env.hub, b2)  # pay: p1 refuses. Unpinned, it would fail over to p2
        p = await _row(env, pid)
        assert p.status == "failed" and p.failovers == 0 and p.provider_pinned
        assert env.pay_calls("p2") == {} and env.succeeded_at(str(pid)) == []
        assert (await _entries(env, pid)) == {"payment_accept": 1, "payment_fail": 1}
        await _ledger_ok(env)


async def test_a_pinned_payment_past_its_lifetime_waits_for_an_operator(db_url: str) -> None:
    async with hub_env(db_url, run_workers=False, emulators=TEMPORARY_AT_P1) as env:
        pid = (await env.pay(account="9000000002")).json()["id"]
        await claim_due(env.hub, "w-a", 10)
        await _lapse(env, pid)
        (b,) = await claim_due(env.hub, "w-b", 10)
        await process(env.hub, b)  # status: not found
        async with env.hub.sessions() as s:
            await s.execute(
                text("UPDATE payments SET expires_at = :t, next_attempt_at = :t WHERE id = :i"),
                {"t": _past(), "i": pid},
            )
            await s.commit()
        (b2,) = await claim_due(env.hub, "w-b", 10)
        await process(env.hub, b2)  # p1: temporary error, past the lifetime. Unpinned: failed
        p = await _row(env, pid)
        assert (p.status, p.in_doubt, p.needs_attention) == ("processing", True, True)
        assert p.next_attempt_at is not None
        assert (await _entries(env, pid)) == {"payment_accept": 1}


async def test_two_claims_of_one_payment_record_one_outcome(db_url: str) -> None:
    """A worker that claims its own payment again holds a new lease: the first claim's outcome is
    refused, also when both reach the recorder in one batch (one success entry, not two)."""
    async with hub_env(db_url, run_workers=False) as env:
        pid = (await env.pay()).json()["id"]
        (first,) = await claim_due(env.hub, "w-same", 10)
        await _lapse(env, pid)
        (second,) = await claim_due(env.hub, "w-same", 10)
        assert first.lease != second.lease
        assert first.lease.startswith("w-same.") and second.lease.startswith("w-same.")

        def succeed(c: Claimed) -> Any:
            async def apply(w: Writes) -> None:
                snap = await env.hub.catalog.get()
                _succeed(
                    w, c, snap.providers[c.payment.provider_id], ProtocolResult(outcome="ok"), 1, utcnow()
                )

            return apply

        results = await asyncio.gather(
            env.hub.recorder.record(pid, first.lease, None, succeed(first)),
            env.hub.recorder.record(pid, second.lease, None, succeed(second)),
        )
        assert results == [False, True]
        assert (await _entries(env, pid)) == {"payment_accept": 1, "payment_success": 1}
        p = await _row(env, pid)
        assert p.status == "succeeded" and p.lease_owner is None
        # the released lease is held by nobody: a late outcome of either claim writes nothing
        assert not await env.hub.recorder.record(pid, second.lease, None, succeed(second))
        async with env.hub.read_sessions() as s:
            n = await s.scalar(
                select(func.count()).select_from(JournalEntry).where(JournalEntry.payment_id == pid)
            )
        assert n == 2
        await _ledger_ok(env)
