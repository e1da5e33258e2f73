"""Transaction ids of account checks: digits only, 20 of them, unique across processes and restarts,
and never a payment's id (``paymux.payments.check_ids``), on the real database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

from harness import test_settings as hub_settings
from paymux.payments.check_ids import BLOCK, check_id, is_check_id
from paymux.runtime import Hub

MAX_PAYMENT_ID = 2**63 - 1  # payment ids are 64-bit signed integers on PostgreSQL and SQLite


def test_the_scheme_never_meets_a_payment_id() -> None:
    assert check_id(0) == "10000000000000000000"
    assert len(check_id(0)) == 20 and int(check_id(0)) > MAX_PAYMENT_ID
    assert check_id(9 * 10**19 - 1) == "9" * 20  # the last one that has 20 digits
    with pytest.raises(ValueError, match="out of range"):
        check_id(9 * 10**19)
    with pytest.raises(ValueError, match="out of range"):
        check_id(-1)
    assert is_check_id(check_id(12345)) and not is_check_id(str(MAX_PAYMENT_ID)) and not is_check_id("chk-1")


async def _draw(hub: Hub, n: int) -> list[str]:
    return [await hub.check_ids.next(hub) for _ in range(n)]


DRAW_IN_A_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from paymux.runtime import Hub
    from paymux.settings import Settings

    async def main() -> None:
        hub = Hub(Settings(database_url=sys.argv[1]))
        try:
            ids = [await hub.check_ids.next(hub) for _ in range(int(sys.argv[2]))]
        finally:
            await hub.close()
        print(" ".join(ids))

    asyncio.run(main())
    """
)


async def test_ids_are_unique_across_processes_and_restarts(db_url: str) -> None:
    first, second = Hub(hub_settings(db_url)), Hub(hub_settings(db_url))
    try:
        # two processes at once, each crossing block boundaries, and tasks racing for a new block
        other_process = asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            DRAW_IN_A_PROCESS,
            db_url,
            str(BLOCK + 5),
            stdout=subprocess.PIPE,
            env={**os.environ},
        )
        proc = await other_process
        drawn = await asyncio.gather(
            _draw(first, BLOCK + 10), _draw(second, 2 * BLOCK + 1), *(_draw(first, 3) for _ in range(20))
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        from_the_other_process = out.decode().split()
        assert len(from_the_other_process) == BLOCK + 5
    finally:
        await first.close()
        await second.close()
    # a restart: a new process on the same database never repeats an id given out before
    restarted = Hub(hub_settings(db_url))
    try:
        after_restart = await _draw(restarted, 10)
    finally:
        await restarted.close()
    ids = [i for batch in drawn for i in batch] + from_the_other_process + after_restart
    assert len(ids) == len(set(ids)), "a check id was given out twice"
    assert all(is_check_id(i) and int(i) > MAX_PAYMENT_ID for i in ids)
    assert restarted.check_ids.blocks_taken == 1
