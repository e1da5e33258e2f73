"""SQLite writers' turns: one at a time, acceptances first, first come first served, cancellation-safe."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import text

from paymux.db.write_turn import WriteTurn


async def test_one_at_a_time_urgent_first_then_arrival_order() -> None:
    turn = WriteTurn()
    order: list[str] = []
    inside = 0

    async def writer(name: str, urgent: bool) -> None:
        nonlocal inside
        async with turn.turn(urgent):
            inside += 1
            assert inside == 1
            order.append(name)
            await asyncio.sleep(0)
            inside -= 1

    await turn.acquire()  # held: everyone below queues
    tasks = [
        asyncio.create_task(writer(n, u))
        for n, u in (("o1", False), ("a1", True), ("o2", False), ("a2", True))
    ]
    await asyncio.sleep(0)
    assert turn.waiting() == 4
    turn.release()
    await asyncio.gather(*tasks)
    assert order == ["a1", "a2", "o1", "o2"]
    assert not turn.held


async def test_a_cancelled_waiter_never_strands_the_turn() -> None:
    turn = WriteTurn()
    await turn.acquire()
    waiter = asyncio.create_task(turn.acquire())
    later = asyncio.create_task(turn.acquire(urgent=True))
    await asyncio.sleep(0)
    waiter.cancel()  # cancelled while waiting
    with pytest.raises(asyncio.CancelledError):
        await waiter
    turn.release()  # goes to the live waiter
    await asyncio.wait_for(later, 1)
    assert turn.held
    # handed the turn, then cancelled before it ran: the turn passes on
    third = asyncio.create_task(turn.acquire())
    fourth = asyncio.create_task(turn.acquire())
    await asyncio.sleep(0)
    turn.release()
    third.cancel()
    with pytest.raises(asyncio.CancelledError):
        await third
    await asyncio.wait_for(fourth, 1)
    turn.release()
    assert not turn.held
    await asyncio.wait_for(turn.acquire(), 1)


async def test_a_hub_writer_session_closes_without_a_trip_round_the_loop(db_url: str) -> None:
    """On SQLite the writer's turn is held until the session is closed; closing must not wait for
    the loop to come round (SQLAlchemy's own ``async with`` closes in a task), or the writer sits
    idle for a whole loop iteration under load after every commit. On PostgreSQL a committed
    session closes the same way (the batch's clients are answered sooner); one still in a
    transaction rolls back over the network, the careful way."""
    sqlite = db_url.startswith("sqlite")
    from harness import test_settings
    from paymux.runtime import Hub

    hub = Hub(test_settings(db_url))
    try:
        async with hub.sessions() as s:  # the first one connects
            await s.execute(text("SELECT 1"))
        loop_came_round = False

        def mark() -> None:
            nonlocal loop_came_round
            loop_came_round = True

        for fail in (False, True):
            with contextlib.suppress(RuntimeError):
                async with hub.sessions(urgent=True) as s:
                    await s.execute(text("SELECT count(*) FROM payments"))
                    if not fail:
                        await s.commit()
                    asyncio.get_running_loop().call_soon(mark)  # runs when the loop comes round
                    if fail:
                        raise RuntimeError("rolled back")
            if sqlite or not fail:
                assert not loop_came_round
            assert not s.in_transaction()
            await asyncio.sleep(0)
            assert loop_came_round
            loop_came_round = False
    finally:
        await hub.close()
