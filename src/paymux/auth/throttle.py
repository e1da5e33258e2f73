"""Throttling failed authentication: per client address and per credential, in memory.

Each failure (an unknown or revoked key or token, a rejected signature, a wrong password) is counted
against the client's address and against the credential: a key's or token's prefix (its first 12
characters, :func:`key_prefix`), a back-office user name, a gateway's login. Once ``limit``
failures fell within the last ``window`` seconds for either, every further attempt from that
address or with that credential is refused (429, with ``Retry-After``) without being checked, until
the oldest of them leaves the window. Successful requests are not counted, and nothing is refused
while nothing failed. A key or token that succeeded lately in this process (``vouch``) is still
checked while its address is throttled: one client with a wrong key behind an address it shares
with others (a NAT, a processing centre) does not lock the others out.

The counts live in the process (a sliding window of failure times per address and per credential):
with several API nodes each counts its own failures. At most ``MAX_KEYS`` addresses or credentials
are remembered; beyond that the oldest are forgotten first.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

from paymux.errors import Problem

MAX_KEYS = 100_000
PREFIX_LENGTH = 12


class SlidingWindow:
    """At most ``limit`` events per ``window`` seconds, per key."""

    __slots__ = ("_events", "limit", "window")

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}

    def __bool__(self) -> bool:
        return bool(self._events)

    def __len__(self) -> int:
        return len(self._events)

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        events = self._events.get(key)
        if events is None or self.limit <= 0:
            return 0.0
        while events and events[0] <= now - self.window:
            events.popleft()
        if not events:
            del self._events[key]
            return 0.0
        if len(events) < self.limit:
            return 0.0
        return events[0] + self.window - now

    def add(self, key: str, now: float) -> None:
        if self.limit <= 0:
            return
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= MAX_KEYS:
                self._forget(now)
            events = self._events[key] = deque(maxlen=self.limit)
        events.append(now)

    def sweep(self, now: float) -> None:
        """Drop the keys whose failures all left the window."""
        for key in [k for k, ev in self._events.items() if not ev or ev[-1] <= now - self.window]:
            del self._events[key]

    def _forget(self, now: float) -> None:
        """Drop keys whose failures all left the window; if that is not enough, the oldest keys."""
        self.sweep(now)
        while len(self._events) >= MAX_KEYS:
            del self._events[next(iter(self._events))]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an attempt is refused before it is checked, and for how long."""

    seconds: int
    by: str  # "address" or "credential"

    def problem(self) -> Problem:
        return Problem(
            429,
            "too-many-failures",
            "Too many failed authentication attempts",
            f"too many failed attempts from this {self.by}; try again in {self.seconds} s",
            headers={"Retry-After": str(self.seconds)},
        )


class AuthThrottle:
    """Failed authentication attempts of one process, by client address and by credential prefix."""

    def __init__(self, per_address: int, per_credential: int, window_seconds: float) -> None:
        self.addresses = SlidingWindow(per_address, window_seconds)
        self.credentials = SlidingWindow(per_credential, window_seconds)
        self.window = window_seconds
        self._vouched: dict[str, float] = {}  # digest of a secret that succeeded -> when
        self._swept_at = 0.0

    def vouch(self, digest: str, now: float | None = None) -> None:
        """The secret with this digest was accepted just now."""
        at = time.monotonic() if now is None else now
        if digest not in self._vouched and len(self._vouched) >= MAX_KEYS:
            self._vouched = {d: t for d, t in self._vouched.items() if t > at - self.window}
            while len(self._vouched) >= MAX_KEYS:
                del self._vouched[next(iter(self._vouched))]
        self._vouched.pop(digest, None)
        self._vouched[digest] = at

    def vouched(self, digest: str, now: float | None = None) -> bool:
        at = time.monotonic() if now is None else now
        when = self._vouched.get(digest)
        return when is not None and when > at - self.window

    @property
    def idle(self) -> bool:
        """Nothing failed lately: no attempt can be refused (the hot path checks only this)."""
        return not self.addresses and not self.credentials

    def refusal(self, address: str, credential: str, now: float | None = None) -> Refusal | None:
        """None when the attempt may be checked; otherwise how long to wait."""
        if self.idle:
            return None
        at = time.monotonic() if now is None else now
        if at - self._swept_at > self.window:  # forget what is over, so that idle holds again
            self._swept_at = at
            self.addresses.sweep(at)
            self.credentials.sweep(at)
            if self.idle:
                return None
        by_address = self.addresses.wait(address, at)
        by_credential = self.credentials.wait(credential, at) if credential else 0.0
        longest = max(by_address, by_credential)
        if longest <= 0:
            return None
        return Refusal(max(1, math.ceil(longest)), "address" if by_address >= by_credential else "credential")

    def failed(self, address: str, credential: str, now: float | None = None) -> None:
        at = time.monotonic() if now is None else now
        self.addresses.add(address, at)
        if credential:
            self.credentials.add(credential, at)


def key_prefix(secret: str) -> str:
    """What a bearer key or token is counted under: its first 12 characters (the prefix stored with
    a key), so that guesses at one key count together however they end."""
    return "key:" + secret[:PREFIX_LENGTH]
