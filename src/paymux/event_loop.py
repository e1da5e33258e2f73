"""The event loop of the long-running commands (``serve``, ``worker``, ``demo``): uvloop when it is
installed (it comes with ``uvicorn[standard]``), else asyncio's own. ``PAYMUX_EVENT_LOOP`` chooses.

On uvloop, TCP servers accept every waiting connection per turn of the loop
(:mod:`paymux.bulk_accept`), as asyncio's own loop does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory(kind: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's (with servers that accept in bulk) for ``auto`` (when installed) and ``uvloop``; None
    for asyncio's."""
    if kind == "asyncio":
        return None
    try:
        from paymux import bulk_accept
    except ImportError:
        if kind == "uvloop":
            raise RuntimeError("PAYMUX_EVENT_LOOP=uvloop, but uvloop is not installed") from None
        return None
    return bulk_accept.new_event_loop


def run(main: Coroutine[Any, Any, T], kind: str = "auto") -> T:
    """Run ``main`` to completion in a new loop of ``kind`` (like ``asyncio.run``)."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)
