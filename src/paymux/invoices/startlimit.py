"""How often a payer may start a payment method on the hosted page (``POST /pay/{token}/methods/...``):
each start is counted against the payment link's token and the client's address in a sliding window
(``PAYMUX_PAYMETHOD_START_PER_TOKEN``, ``..._PER_ADDRESS``, ``..._WINDOW_SECONDS``); beyond either
limit the start is refused (429 with ``Retry-After``) before a processor is asked. Counted in the
process, like failed logins (:mod:`paymux.auth.throttle`)."""

from __future__ import annotations

import math
import time

from paymux.auth.throttle import SlidingWindow


class StartLimiter:
    """Method starts of one process, by payment link and by client address."""

    def __init__(self, per_token: int, per_address: int, window_seconds: float) -> None:
        self.tokens = SlidingWindow(per_token, window_seconds)
        self.addresses = SlidingWindow(per_address, window_seconds)

    def take(self, token: str, address: str, now: float | None = None) -> int:
        """Count a start; 0 when it may go on, else the seconds to wait (nothing is counted then)."""
        at = time.monotonic() if now is None else now
        wait = max(self.tokens.wait(token, at), self.addresses.wait(address, at) if address else 0.0)
        if wait > 0:
            return max(1, math.ceil(wait))
        self.tokens.add(token, at)
        if address:
            self.addresses.add(address, at)
        return 0
