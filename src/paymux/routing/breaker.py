"""Per-provider circuit breakers: a provider failing too often is skipped for a while.

Each process keeps its own board. A breaker opens when, within ``window_seconds``, at least
``min_calls`` calls were made and ``failure_rate_percent`` of them failed (unreachable, lost
answers, temporary errors). After ``open_seconds`` one probe call is let through (half-open): its
success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

DEFAULTS = {"window_seconds": 60, "min_calls": 10, "failure_rate_percent": 50, "open_seconds": 30}


@dataclass(slots=True)
class Breaker:
    window_ns: int
    min_calls: int
    failure_rate_percent: int
    open_ns: int
    calls: deque[tuple[int, bool]] = field(default_factory=deque)
    failures: int = 0
    opened_at: int | None = None
    probing: bool = False

    def _trim(self, now: int) -> None:
        cut = now - self.window_ns
        while self.calls and self.calls[0][0] < cut:
            _, ok = self.calls.popleft()
            if not ok:
                self.failures -= 1

    def state(self, now: int) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if now - self.opened_at >= self.open_ns else "open"

    def allow(self, now: int) -> bool:
        st = self.state(now)
        if st == "closed":
            return True
        if st == "half_open" and not self.probing:
            return True
        return False

    def begin_probe(self, now: int) -> None:
        if self.state(now) == "half_open":
            self.probing = True

    def abandon(self) -> None:
        """A call begun was never made: a half-open breaker may let another probe through."""
        self.probing = False

    def record(self, ok: bool, now: int) -> None:
        st = self.state(now)
        if st == "open":
            return  # a call begun before the breaker opened: only the half-open probe decides
        if st != "closed":
            self.probing = False
            if ok:
                self.opened_at = None
                self.calls.clear()
                self.failures = 0
            else:
                self.opened_at = now
            return
        self.calls.append((now, ok))
        if not ok:
            self.failures += 1
        self._trim(now)
        n = len(self.calls)
        if n >= self.min_calls and self.failures * 100 >= self.failure_rate_percent * n:
            self.opened_at = now


class BreakerBoard:
    def __init__(self) -> None:
        self._breakers: dict[int, Breaker] = {}

    def _get(self, provider_id: int, settings: dict[str, Any]) -> Breaker:
        b = self._breakers.get(provider_id)
        if b is None:
            cfg = {**DEFAULTS, **(settings or {})}
            b = Breaker(
                window_ns=int(cfg["window_seconds"]) * 1_000_000_000,
                min_calls=int(cfg["min_calls"]),
                failure_rate_percent=int(cfg["failure_rate_percent"]),
                open_ns=int(cfg["open_seconds"]) * 1_000_000_000,
            )
            self._breakers[provider_id] = b
        return b

    def allow(self, provider_id: int, settings: dict[str, Any]) -> bool:
        return self._get(provider_id, settings).allow(time.monotonic_ns())

    def begin_call(self, provider_id: int, settings: dict[str, Any]) -> None:
        self._get(provider_id, settings).begin_probe(time.monotonic_ns())

    def abandon_call(self, provider_id: int, settings: dict[str, Any]) -> None:
        self._get(provider_id, settings).abandon()

    def record(self, provider_id: int, settings: dict[str, Any], ok: bool) -> None:
        self._get(provider_id, settings).record(ok, time.monotonic_ns())

    def state(self, provider_id: int, settings: dict[str, Any]) -> dict[str, Any]:
        b = self._get(provider_id, settings)
        now = time.monotonic_ns()
        b._trim(now)
        return {"state": b.state(now), "calls": len(b.calls), "failures": b.failures}

    def reset(self) -> None:
        self._breakers.clear()
