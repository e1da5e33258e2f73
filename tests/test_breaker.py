"""Circuit breakers: opening on the failure rate, the sliding window, half-open probes."""

from __future__ import annotations

from typing import Any

from paymux.routing.breaker import DEFAULTS, Breaker, BreakerBoard

S = 1_000_000_000  # one second in ns
T0 = 1_000 * S


def breaker(*, window: int = 60, min_calls: int = 4, rate: int = 50, open_seconds: int = 30) -> Breaker:
    return Breaker(
        window_ns=window * S, min_calls=min_calls, failure_rate_percent=rate, open_ns=open_seconds * S
    )


def record_all(b: Breaker, outcomes: str, start: int = T0, step: int = S) -> int:
    """Record ``outcomes`` ("x" failure, "." success) one ``step`` apart; returns the last time."""
    now = start
    for i, ch in enumerate(outcomes):
        now = start + i * step
        b.record(ch == ".", now)
    return now


def open_breaker(b: Breaker, now: int = T0) -> int:
    t = record_all(b, "x" * b.min_calls, start=now)
    assert b.state(t) == "open"
    return t


# --- opening -------------------------------------------------------------------------------------------


def test_new_breaker_is_closed_and_allows() -> None:
    b = breaker()
    assert b.state(T0) == "closed"
    assert b.allow(T0)


def test_does_not_open_before_min_calls_even_if_all_fail() -> None:
    b = breaker(min_calls=4)
    t = record_all(b, "xxx")
    assert b.state(t) == "closed"
    assert b.allow(t)
    b.record(False, t + S)
    assert b.state(t + S) == "open"
    assert not b.allow(t + S)


def test_opens_exactly_at_the_failure_rate_threshold() -> None:
    # 50 %: 2 failures of 4 calls opens, 1 of 4 does not
    b = breaker(min_calls=4, rate=50)
    t = record_all(b, "x...")
    assert b.state(t) == "closed"
    b = breaker(min_calls=4, rate=50)
    t = record_all(b, ".x.x")
    assert b.state(t) == "open"
    # 60 %: 3 of 5 opens, 2 of 5 does not, whatever the order
    b = breaker(min_calls=5, rate=60)
    t = record_all(b, "x.x..")
    assert b.state(t) == "closed"
    assert b.failures == 2
    b.record(False, t + S)  # 3 of 6 = 50 % < 60 %
    assert b.state(t + S) == "closed"
    b.record(False, t + 2 * S)  # 4 of 7 = 57 % < 60 %
    assert b.state(t + 2 * S) == "closed"
    b.record(False, t + 3 * S)  # 5 of 8 = 62.5 %
    assert b.state(t + 3 * S) == "open"


def test_successes_dilute_failures() -> None:
    b = breaker(min_calls=4, rate=50)
    t = record_all(b, "." * 20 + "x" * 19)  # 19 of 39 < 50 %
    assert b.state(t) == "closed"
    b.record(False, t + S)  # 20 of 40 = 50 %
    assert b.state(t + S) == "open"


def test_failures_outside_the_window_are_forgotten() -> None:
    b = breaker(window=60, min_calls=4, rate=50)
    record_all(b, "xxx", start=T0)  # at T0, T0+1s, T0+2s
    # 70 s later those three are out of the window: one new failure is 1 call, below min_calls
    late = T0 + 70 * S
    b.record(False, late)
    assert b.state(late) == "closed"
    assert len(b.calls) == 1
    assert b.failures == 1
    # and the window slides: three successes and one failure within it do not reach 50 %
    t = record_all(b, "...", start=late + S)
    assert b.state(t) == "closed"
    assert b.failures == 1


def test_failures_still_inside_the_window_count() -> None:
    b = breaker(window=60, min_calls=4, rate=50)
    record_all(b, "xxx", start=T0)
    b.record(False, T0 + 60 * S)  # the first call (T0) is exactly 60 s old: still inside
    assert b.state(T0 + 60 * S) == "open"


def test_window_edge_drops_only_older_calls() -> None:
    b = breaker(window=10, min_calls=3, rate=100)
    b.record(False, T0)
    b.record(False, T0 + 5 * S)
    b.record(True, T0 + 11 * S)  # T0 dropped, T0+5s kept
    assert [ok for _, ok in b.calls] == [False, True]
    assert b.failures == 1
    assert b.state(T0 + 11 * S) == "closed"


# --- open, half-open, probe ----------------------------------------------------------------------------


def test_open_rejects_until_open_seconds_then_half_open_allows_one_probe() -> None:
    b = breaker(open_seconds=30)
    t = open_breaker(b)
    assert not b.allow(t)
    assert not b.allow(t + 29 * S)
    assert b.state(t + 30 * S - 1) == "open"
    half = t + 30 * S
    assert b.state(half) == "half_open"
    assert b.allow(half)
    assert b.allow(half)  # allow alone does not consume the probe
    b.begin_probe(half)
    assert b.probing
    assert not b.allow(half)  # exactly one probe is in flight
    assert not b.allow(half + 100 * S)
    assert b.state(half + 100 * S) == "half_open"


def test_begin_probe_while_closed_or_open_does_nothing() -> None:
    b = breaker()
    b.begin_probe(T0)
    assert not b.probing
    t = open_breaker(b)
    b.begin_probe(t + S)
    assert not b.probing
    assert b.allow(t + 30 * S)


def test_probe_success_closes_and_starts_afresh() -> None:
    b = breaker(min_calls=4, open_seconds=30)
    t = open_breaker(b)
    half = t + 30 * S
    b.begin_probe(half)
    b.record(True, half + S)
    assert b.state(half + S) == "closed"
    assert b.allow(half + S)
    assert not b.probing
    assert len(b.calls) == 0 and b.failures == 0
    # the failures before opening no longer count: it takes min_calls new calls to open again
    t2 = record_all(b, "xxx", start=half + 2 * S)
    assert b.state(t2) == "closed"
    b.record(False, t2 + S)
    assert b.state(t2 + S) == "open"


def test_probe_failure_reopens_for_another_open_period() -> None:
    b = breaker(open_seconds=30)
    t = open_breaker(b)
    half = t + 30 * S
    b.begin_probe(half)
    fail_at = half + 2 * S
    b.record(False, fail_at)
    assert not b.probing
    assert b.state(fail_at) == "open"
    assert not b.allow(fail_at + 29 * S)
    assert b.state(fail_at + 30 * S) == "half_open"
    assert b.allow(fail_at + 30 * S)
    b.begin_probe(fail_at + 30 * S)
    b.record(True, fail_at + 31 * S)
    assert b.state(fail_at + 31 * S) == "closed"


def test_late_result_of_a_call_begun_before_opening_does_not_close_the_breaker() -> None:
    # Concurrent calls: the breaker opens while another call is in flight; that call's success,
    # arriving during the open period, is not a probe and must not close the breaker.
    b = breaker(open_seconds=30)
    t = open_breaker(b)
    b.record(True, t + S)
    assert b.state(t + S) == "open"
    assert not b.allow(t + S)
    # nor does a late failure extend the open period
    b.record(False, t + 10 * S)
    assert b.state(t + 30 * S) == "half_open"


# --- the board -----------------------------------------------------------------------------------------


def test_board_uses_defaults_and_per_provider_settings() -> None:
    board = BreakerBoard()
    cfg: dict[str, Any] = {"min_calls": 2, "open_seconds": 3600}
    assert board.state(1, {}) == {"state": "closed", "calls": 0, "failures": 0}
    b = board._get(1, {})
    assert b.min_calls == DEFAULTS["min_calls"]
    assert b.window_ns == DEFAULTS["window_seconds"] * S
    board.record(2, cfg, False)
    board.record(2, cfg, False)
    assert board.state(2, cfg) == {"state": "open", "calls": 2, "failures": 2}
    assert not board.allow(2, cfg)
    assert board.allow(1, {})  # breakers are per provider
    board.reset()
    assert board.allow(2, cfg)
    assert board.state(2, cfg)["state"] == "closed"


def test_board_begin_call_takes_the_probe() -> None:
    board = BreakerBoard()
    cfg = {"min_calls": 1, "open_seconds": 0}  # half-open as soon as it opens
    board.record(5, cfg, False)
    assert board.state(5, cfg)["state"] == "half_open"
    assert board.allow(5, cfg)
    board.begin_call(5, cfg)
    assert not board.allow(5, cfg)
    board.record(5, cfg, True)
    assert board.state(5, cfg)["state"] == "closed"
    assert board.allow(5, cfg)
