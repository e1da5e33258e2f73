"""The long-running commands' event loop: uvloop (accepting in bulk) when installed, asyncio's when
asked for."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from paymux import event_loop
from paymux.bulk_accept import BulkAcceptLoop
from paymux.settings import Settings


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_auto_and_uvloop_run_on_uvloop() -> None:
    for kind in ("auto", "uvloop"):
        loop_type = event_loop.run(_loop_type(), kind)
        assert loop_type is BulkAcceptLoop and issubclass(loop_type, uvloop.Loop)


def test_asyncio_runs_on_asyncios_own_loop() -> None:
    assert not issubclass(event_loop.run(_loop_type(), "asyncio"), uvloop.Loop)


def test_the_setting_takes_only_known_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMUX_EVENT_LOOP", "asyncio")
    assert Settings().event_loop == "asyncio"
    monkeypatch.setenv("PAYMUX_EVENT_LOOP", "trio")
    with pytest.raises(ValueError, match="event_loop"):
        Settings()
