"""The lease check made immediately before a request leaves for a provider.

A worker may send a payment only while it holds the payment's lease. A worker that paused (a GC
pause, a stopped VM, SIGSTOP) may wake after its lease ran out and another worker took the payment
over: whatever it was about to send must then stay unsent. The delivery step sets a
:class:`SendGuard` for its task (:data:`current`); the provider transports call :func:`before_send`
right before the request's bytes are written (on the lean client, in the same synchronous step as the
write; on the httpx/aiohttp path, before the request is handed to the pool). A lease that has run
out raises :class:`LeaseExpired`, an ``httpx.ConnectError``: every protocol already treats that as
"certainly not delivered".

The check cannot close the window between it and the write completely (a process can be stopped
at any instruction); a takeover therefore pins the payment to its provider
(:mod:`paymux.payments.processing`).
"""

from __future__ import annotations

import contextvars
import time

import httpx

from paymux import failpoints


class LeaseExpired(httpx.ConnectError):
    """The lease ran out before the request left: it was not sent."""


class SendGuard:
    """The deadline (``time.monotonic()``) of one claim's lease, less a margin, and what was sent."""

    __slots__ = ("deadline", "sent", "tripped")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sent = 0  # requests let through
        self.tripped = False  # a request was stopped because the lease had run out

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def before_send(self) -> None:
        if time.monotonic() >= self.deadline:
            self.tripped = True
            raise LeaseExpired("the lease on this payment ran out before the request left: not sent")
        failpoints.hit("after_lease_check")
        self.sent += 1


current: contextvars.ContextVar[SendGuard | None] = contextvars.ContextVar("paymux_send_guard", default=None)


def before_send() -> None:
    """Called by the transports right before a request to a provider leaves."""
    guard = current.get()
    if guard is not None:
        guard.before_send()
