"""Fault injection at named points, for tests of what happens when a process pauses or dies there.

``PAYMUX_FAILPOINTS`` (read once, when this module is imported) lists points and what happens when
the process gets there: ``name=action[,name=action...]``. Actions:

``stop``    the process stops itself with SIGSTOP the first time (as a frozen VM or a long GC pause
            would); whoever started it sends SIGCONT to wake it
``stop:N``  the same, the N-th time the point is reached
``kill``    the process kills itself with SIGKILL the first time (``kill:N``: the N-th time)
``raise``   :class:`FailpointError` is raised the first time (``raise:N``: the N-th time): a crash of
            the task at that point, for tests that run the hub in their own process

Points (where they are hit):

``after_lease_check``       a request to a provider passed its lease check and is about to leave
``in_outcome_transaction``  delivery outcomes hold their ledger locks, not yet committed
``recurring.*``             the steps of a recurring run (:mod:`paymux.recurring.executor`)

Unset in production: a point then costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_actions: dict[str, tuple[str, int]] = {}


class FailpointError(RuntimeError):
    """Raised at a point configured with ``raise``."""


_hits: dict[str, int] = {}


def configure(spec: str) -> None:
    """Replace the configured points with ``spec`` (the variable's syntax); ValueError if invalid."""
    actions: dict[str, tuple[str, int]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, action = part.partition("=")
        kind, _, nth = action.partition(":")
        if not sep or kind not in ("stop", "kill", "raise") or (nth and not nth.isdigit()):
            raise ValueError(f"PAYMUX_FAILPOINTS: {part!r} is not name=stop|kill|raise[:N]")
        actions[name.strip()] = (kind, int(nth or 1))
    _actions.clear()
    _actions.update(actions)
    _hits.clear()


def hit(name: str) -> None:
    """The process reached point ``name``: do what is configured for it, if anything."""
    if not _actions:
        return
    action = _actions.get(name)
    if action is None:
        return
    n = _hits[name] = _hits.get(name, 0) + 1
    kind, nth = action
    if n != nth:
        return
    if kind == "raise":
        raise FailpointError(f"failpoint {name}")
    os.kill(os.getpid(), signal.SIGSTOP if kind == "stop" else signal.SIGKILL)


configure(os.environ.get("PAYMUX_FAILPOINTS", ""))
