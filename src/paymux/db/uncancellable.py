"""Waiting for work that must not be abandoned half-way (a commit, a session's close)."""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


async def wait_through_cancellation(work: asyncio.Future[T]) -> T:
    """Wait for ``work`` to end, even when cancelled meanwhile; a cancellation received while
    waiting is raised once it has ended, so the caller never goes on while ``work`` still runs."""
    cancelled = False
    while not work.done():
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            cancelled = True
    result = work.result()
    if cancelled:
        raise asyncio.CancelledError
    return result
