"""CPU-heavy work of a request (reading a large document), off the event loop and out of its way.

A thread alone is not enough: the event loop's thread needs the interpreter lock for every step of
every other request, and the heavy thread gives it up only every few milliseconds, and not at all
while a single C call runs. Two such calls come with large documents:

* the cyclic garbage collector, triggered by the allocations of the work, scans every young object
  (a 2 MB YAML document makes about a million) in one go, holding the lock for 50 to 200 ms;
* freeing a large structure at once (the last reference to its root goes) frees every object in it
  in one call: 170 ms for the nodes of 2 MB of YAML.

So :func:`in_thread` pauses the collector while the work runs (process-wide; pauses nest across
threads, and reference counting still frees everything that is not a cycle), and :func:`release`
frees a structure's list items one at a time, letting the lock go between them.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import sys
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_lock = threading.Lock()
_pauses = 0
_was_enabled = False


_interval = 0.005
SWITCH_INTERVAL = 0.001  # seconds a thread may keep the interpreter lock while heavy work runs


def _pause() -> None:
    global _pauses, _was_enabled, _interval
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
            _interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_interval, SWITCH_INTERVAL))
        _pauses += 1


def _resume() -> None:
    global _pauses
    with _lock:
        _pauses -= 1
        if _pauses == 0:
            sys.setswitchinterval(_interval)
            if _was_enabled:
                gc.enable()


def collector_paused(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` with the cyclic garbage collector paused."""
    _pause()
    try:
        return fn(*args, **kwargs)
    finally:
        _resume()


async def in_thread(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn(*args, **kwargs)`` in a thread, with the collector paused meanwhile."""
    return await asyncio.to_thread(functools.partial(collector_paused, fn, *args, **kwargs))


def release(data: Any) -> None:
    """Empty ``data`` if it is a list, else the lists among its values (a dict's) or attributes (an
    object's), one item at a time, so that each item is freed on its own. Only those lists are
    emptied: whatever else holds an item or its parts keeps them."""
    if isinstance(data, list):
        lists = [data]
    else:
        values = data.values() if isinstance(data, dict) else vars(data).values()
        lists = [v for v in values if isinstance(v, list)]
    for items in lists:
        while items:
            items.pop()


async def release_in_thread(data: Any) -> None:
    """:func:`release` in a thread (the event loop's thread is then left with a small skeleton)."""
    await asyncio.to_thread(release, data)
