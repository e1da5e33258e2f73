"""Route planning over hand-built catalog snapshots (no database), and tariff scope resolution."""

from __future__ import annotations

import datetime as dt
import random
import re
from collections import Counter
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from paymux.catalog.snapshot import (
    CandidateView,
    ChannelView,
    ProviderView,
    ServiceView,
    Snapshot,
    TariffView,
)
from paymux.routing.breaker import BreakerBoard
from paymux.routing.engine import Plan, plan_route
from paymux.tariffs.calc import TariffRule

UTC = dt.UTC
AT = dt.datetime(2024, 5, 15, 12, 0, tzinfo=UTC)
SERVICE_ID = 1
GROUP_SELF = 10
GROUP_ONLINE = 20

# --- builders ------------------------------------------------------------------------------------------


def provider(
    pid: int, *, enabled: bool = True, tz: str = "UTC", breaker: dict[str, Any] | None = None
) -> ProviderView:
    return ProviderView(
        id=pid,
        code=f"p{pid}",
        name=f"Provider {pid}",
        protocol="jsonhttp",
        config={},
        tz=ZoneInfo(tz),
        settlement="postpaid",
        overdraft={},
        breaker=breaker or {},
        enabled=enabled,
    )


_cand_ids = iter(range(1000, 10**6))


def cand(
    pid: int,
    *,
    priority: int = 100,
    weight: int = 1,
    min_amount: int | None = None,
    max_amount: int | None = None,
    group: int | None = None,
    hours: tuple[str, str] | None = None,
    enabled: bool = True,
    cid: int | None = None,
) -> CandidateView:
    return CandidateView(
        id=cid if cid is not None else next(_cand_ids),
        provider_id=pid,
        provider_service_code=f"S-{pid}",
        priority=priority,
        weight=weight,
        min_amount=min_amount,
        max_amount=max_amount,
        channel_group_id=group,
        hours_from=dt.time.fromisoformat(hours[0]) if hours else None,
        hours_to=dt.time.fromisoformat(hours[1]) if hours else None,
        enabled=enabled,
    )


def service(strategy: str = "priority", currency: str = "RUB") -> ServiceView:
    return ServiceView(
        id=SERVICE_ID,
        code="svc",
        name="Service",
        currency=currency,
        pattern=re.compile(r"^\d+$"),
        min_amount=None,
        max_amount=None,
        fields=(),
        lifetime_seconds=None,
        strategy=strategy,
        enabled=True,
    )


def channel(cid: int = 1, group: int | None = GROUP_SELF) -> ChannelView:
    return ChannelView(
        id=cid,
        code=f"ch{cid}",
        name=f"Channel {cid}",
        kind="terminal",
        group_id=group,
        agent_id=None,
        enabled=True,
        signing="none",
        signing_required=False,
        hmac_secret=None,
        rsa_public_key=None,
    )


_tariff_ids = iter(range(1, 10**6))


def tariff(
    kind: str = "fee",
    *,
    fixed: int = 0,
    percent: str = "0",
    currency: str = "RUB",
    since: dt.datetime = dt.datetime(2020, 1, 1, tzinfo=UTC),
    service_id: int | None = None,
    provider_id: int | None = None,
    group: int | None = None,
    channel_id: int | None = None,
    tid: int | None = None,
) -> TariffView:
    return TariffView(
        id=tid if tid is not None else next(_tariff_ids),
        kind=kind,
        service_id=service_id,
        provider_id=provider_id,
        channel_group_id=group,
        channel_id=channel_id,
        currency=currency,
        rule=TariffRule(fixed=fixed, percent=Decimal(percent)),
        effective_from=since,
    )


def snapshot(
    providers: list[ProviderView], candidates: list[CandidateView], tariffs: list[TariffView] = ()
) -> Snapshot:
    snap = Snapshot()
    snap.providers = {p.id: p for p in providers}
    snap.providers_by_code = {p.code: p for p in providers}
    snap.routes = {SERVICE_ID: tuple(candidates)}
    by_kind: dict[str, list[TariffView]] = {}
    for t in tariffs:
        by_kind.setdefault(t.kind, []).append(t)
    # the loader's order: newest effective_from first
    snap.tariffs = {
        k: sorted(v, key=lambda t: (t.effective_from, t.id), reverse=True) for k, v in by_kind.items()
    }
    return snap


def plan(
    snap: Snapshot,
    *,
    strategy: str = "priority",
    amount: int = 10_000,
    at: dt.datetime = AT,
    ch: ChannelView | None = None,
    breakers: BreakerBoard | None = None,
    exclude: frozenset[int] | set[int] = frozenset(),
    rng: random.Random | None = None,
) -> Plan:
    return plan_route(
        snap,
        service(strategy),
        ch or channel(),
        amount,
        at,
        breakers or BreakerBoard(),
        exclude=exclude,
        rng=rng,
    )


def codes(p: Plan) -> list[str]:
    return [o.provider.code for o in p.options]


# --- ordering strategies -------------------------------------------------------------------------------


def test_priority_orders_by_priority_then_candidate_id() -> None:
    snap = snapshot(
        [provider(1), provider(2), provider(3), provider(4)],
        [
            cand(1, priority=30, cid=1),
            cand(2, priority=10, cid=4),
            cand(3, priority=20, cid=2),
            cand(4, priority=10, cid=3),
        ],
    )
    p = plan(snap)
    assert codes(p) == ["p4", "p2", "p3", "p1"]
    assert p.skipped == []
    assert p.strategy == "priority"
    assert p.currency == "RUB"


def test_cheapest_prefers_highest_remuneration_and_breaks_ties_by_priority() -> None:
    snap = snapshot(
        [provider(1), provider(2), provider(3), provider(4)],
        [cand(1, priority=1), cand(2, priority=5), cand(3, priority=2), cand(4, priority=0)],
        [
            tariff("remuneration", provider_id=1, fixed=100, tid=501),
            tariff("remuneration", provider_id=2, percent="3", tid=502),  # 3% of 10 000 = 300
            tariff("remuneration", provider_id=3, fixed=300, tid=503),
            # provider 4 has no remuneration tariff: earns 0 despite the best priority
        ],
    )
    p = plan(snap, strategy="cheapest", amount=10_000)
    assert codes(p) == ["p3", "p2", "p1", "p4"]
    assert [o.remuneration for o in p.options] == [300, 300, 100, 0]
    assert [o.remuneration_tariff_id for o in p.options] == [503, 502, 501, None]
    # the percent tariff depends on the amount: at 20 000 provider 2 earns 600 and leads
    p = plan(snap, strategy="cheapest", amount=20_000)
    assert codes(p) == ["p2", "p3", "p1", "p4"]
    assert p.options[0].remuneration == 600


def test_cheapest_uses_remuneration_in_the_service_currency_only() -> None:
    snap = snapshot(
        [provider(1), provider(2)],
        [cand(1, priority=1), cand(2, priority=2)],
        [
            tariff("remuneration", provider_id=1, fixed=100),
            tariff("remuneration", provider_id=2, fixed=900, currency="USD"),
            tariff("remuneration", provider_id=2, fixed=50),
        ],
    )
    p = plan(snap, strategy="cheapest")
    assert codes(p) == ["p1", "p2"]
    assert [o.remuneration for o in p.options] == [100, 50]


def test_weighted_first_choice_follows_weights() -> None:
    snap = snapshot([provider(1), provider(2)], [cand(1, weight=3), cand(2, weight=1)])
    rng = random.Random(20240515)
    n = 10_000
    first: Counter[str] = Counter()
    for _ in range(n):
        p = plan(snap, strategy="weighted", rng=rng)
        assert sorted(codes(p)) == ["p1", "p2"]  # every eligible provider is still offered
        first[p.options[0].provider.code] += 1
    assert first["p1"] + first["p2"] == n
    # expected p1 share 3/4; binomial sd is ~43 plans, allow ~5.8 sd (250 plans) either way
    assert abs(4 * first["p1"] - 3 * n) <= 4 * 250, first
    assert abs(4 * first["p2"] - 1 * n) <= 4 * 250, first


def test_weighted_zero_weight_candidates_come_last() -> None:
    snap = snapshot(
        [provider(1), provider(2), provider(3), provider(4)],
        [cand(1, weight=0), cand(2, weight=5), cand(3, weight=0), cand(4, weight=1)],
    )
    rng = random.Random(7)
    firsts: set[str] = set()
    for _ in range(300):
        order = codes(plan(snap, strategy="weighted", rng=rng))
        assert sorted(order[:2]) == ["p2", "p4"]
        assert order[2:] == ["p1", "p3"]
        firsts.add(order[0])
    assert firsts == {"p2", "p4"}


def test_weighted_is_reproducible_with_the_same_seed() -> None:
    snap = snapshot([provider(i) for i in range(1, 6)], [cand(i, weight=i) for i in range(1, 6)])
    a = [codes(plan(snap, strategy="weighted", rng=random.Random(42))) for _ in range(3)]
    b = [codes(plan(snap, strategy="weighted", rng=random.Random(42))) for _ in range(3)]
    assert a == b


# --- eligibility criteria ------------------------------------------------------------------------------


def test_amount_range_is_inclusive() -> None:
    snap = snapshot(
        [provider(1), provider(2), provider(3)],
        [
            cand(1, priority=1, min_amount=1_000, max_amount=5_000),
            cand(2, priority=2, min_amount=5_001),
            cand(3, priority=3, max_amount=999),
        ],
    )
    assert codes(plan(snap, amount=1_000)) == ["p1"]
    assert codes(plan(snap, amount=5_000)) == ["p1"]
    assert codes(plan(snap, amount=5_001)) == ["p2"]
    assert codes(plan(snap, amount=999)) == ["p3"]
    assert codes(plan(snap, amount=10**12)) == ["p2"]


def test_channel_group_restriction() -> None:
    snap = snapshot(
        [provider(1), provider(2), provider(3)],
        [cand(1, priority=1, group=GROUP_SELF), cand(2, priority=2, group=GROUP_ONLINE), cand(3, priority=3)],
    )
    assert codes(plan(snap, ch=channel(1, GROUP_SELF))) == ["p1", "p3"]
    assert codes(plan(snap, ch=channel(2, GROUP_ONLINE))) == ["p2", "p3"]
    assert codes(plan(snap, ch=channel(3, None))) == ["p3"]


def test_hours_window_in_utc() -> None:
    snap = snapshot([provider(1)], [cand(1, hours=("09:00", "18:00"))])
    day = dt.datetime(2024, 5, 15, tzinfo=UTC)
    for hh, mm, inside in [(8, 59, False), (9, 0, True), (12, 0, True), (17, 59, True), (18, 0, False)]:
        p = plan(snap, at=day.replace(hour=hh, minute=mm))
        assert (codes(p) == ["p1"]) is inside, (hh, mm)
        assert (p.skipped == []) is inside
        if not inside:
            assert p.skipped == ["p1: outside hours"]


def test_hours_window_wrapping_midnight() -> None:
    snap = snapshot([provider(1)], [cand(1, hours=("22:00", "06:00"))])
    day = dt.datetime(2024, 5, 15, tzinfo=UTC)
    cases = [
        (21, 59, False),
        (22, 0, True),
        (23, 30, True),
        (0, 0, True),
        (5, 59, True),
        (6, 0, False),
        (12, 0, False),
    ]
    for hh, mm, inside in cases:
        p = plan(snap, at=day.replace(hour=hh, minute=mm))
        assert (codes(p) == ["p1"]) is inside, (hh, mm)
        if not inside:
            assert p.skipped == ["p1: outside hours"]


def test_hours_window_uses_the_provider_timezone() -> None:
    # 09:00-18:00 in Vladivostok (UTC+10, no DST); 01:30 UTC is 11:30 there.
    snap = snapshot(
        [provider(1, tz="Asia/Vladivostok"), provider(2, tz="UTC")],
        [cand(1, priority=1, hours=("09:00", "18:00")), cand(2, priority=2, hours=("09:00", "18:00"))],
    )
    p = plan(snap, at=dt.datetime(2024, 5, 15, 1, 30, tzinfo=UTC))
    assert codes(p) == ["p1"]
    assert p.skipped == ["p2: outside hours"]
    # 10:00 UTC is 20:00 in Vladivostok: the other way round
    p = plan(snap, at=dt.datetime(2024, 5, 15, 10, 0, tzinfo=UTC))
    assert codes(p) == ["p2"]
    assert p.skipped == ["p1: outside hours"]
    # the same instant given in another offset changes nothing
    at = dt.datetime(2024, 5, 15, 1, 30, tzinfo=UTC).astimezone(dt.timezone(dt.timedelta(hours=-5)))
    assert codes(plan(snap, at=at)) == ["p1"]


def test_hours_window_follows_daylight_saving_in_the_provider_timezone() -> None:
    snap = snapshot([provider(1, tz="Europe/Berlin")], [cand(1, hours=("08:00", "09:00"))])
    # 07:30 UTC is 08:30 in Berlin in winter (UTC+1) but 09:30 in summer (UTC+2)
    assert codes(plan(snap, at=dt.datetime(2024, 1, 15, 7, 30, tzinfo=UTC))) == ["p1"]
    assert codes(plan(snap, at=dt.datetime(2024, 7, 15, 7, 30, tzinfo=UTC))) == []


def test_disabled_provider_and_switched_off_candidate_are_never_chosen() -> None:
    snap = snapshot(
        [provider(1, enabled=False), provider(2), provider(3)],
        [cand(1, priority=1), cand(2, priority=2, enabled=False), cand(3, priority=3)],
    )
    for strategy in ("priority", "cheapest", "weighted"):
        p = plan(snap, strategy=strategy, rng=random.Random(1))
        assert codes(p) == ["p3"]
        assert p.skipped == ["p1: provider disabled", "p2: switched off"]


def test_nothing_eligible_gives_an_empty_plan() -> None:
    snap = snapshot([provider(1, enabled=False)], [cand(1)])
    p = plan(snap)
    assert p.options == []
    assert p.skipped == ["p1: provider disabled"]
    assert plan(snapshot([provider(1)], [])).options == []


def test_exclude_skips_already_tried_providers() -> None:
    snap = snapshot(
        [provider(1), provider(2), provider(3)], [cand(1, priority=1), cand(2, priority=2), cand(3)]
    )
    p = plan(snap, exclude={1, 3})
    assert codes(p) == ["p2"]
    assert p.skipped == ["p1: already tried", "p3: already tried"]


def test_breaker_open_provider_is_skipped_with_reason() -> None:
    cfg = {"window_seconds": 60, "min_calls": 2, "failure_rate_percent": 50, "open_seconds": 600}
    snap = snapshot(
        [provider(1, breaker=cfg), provider(2, breaker=cfg)], [cand(1, priority=1), cand(2, priority=2)]
    )
    board = BreakerBoard()
    assert codes(plan(snap, breakers=board)) == ["p1", "p2"]
    board.record(1, cfg, False)
    assert codes(plan(snap, breakers=board)) == ["p1", "p2"]  # one call is below min_calls
    board.record(1, cfg, False)
    p = plan(snap, breakers=board)
    assert codes(p) == ["p2"]
    assert p.skipped == ["p1: circuit breaker open"]
    assert "p1: circuit breaker open" in p.reason(p.options[0])
    board.reset()
    assert codes(plan(snap, breakers=board)) == ["p1", "p2"]


def test_candidate_of_unknown_provider_is_ignored() -> None:
    snap = snapshot([provider(1)], [cand(99, priority=0), cand(1)])
    p = plan(snap)
    assert codes(p) == ["p1"]
    assert p.skipped == []


# --- Plan.reason ---------------------------------------------------------------------------------------


def test_reason_names_the_choice_and_the_skipped() -> None:
    snap = snapshot(
        [provider(1), provider(2, enabled=False), provider(3), provider(4)],
        [cand(1, priority=5), cand(2, priority=1), cand(3, priority=7, enabled=False), cand(4, priority=9)],
    )
    p = plan(snap)
    text = p.reason(p.options[0])
    assert "strategy priority" in text
    assert "order: p1#5, p4#9" in text
    assert "chose p1" in text
    assert "skipped: p2: provider disabled; p3: switched off" in text
    # extra reasons from the caller (e.g. uncovered deposits) are appended, the plan is not changed
    text = p.reason(p.options[1], ["p1: deposit cannot cover 100.00"])
    assert "chose p4" in text
    assert text.endswith("skipped: p2: provider disabled; p3: switched off; p1: deposit cannot cover 100.00")
    assert p.skipped == ["p2: provider disabled", "p3: switched off"]


def test_reason_for_cheapest_lists_the_remuneration_ranking() -> None:
    snap = snapshot(
        [provider(1), provider(2)],
        [cand(1), cand(2)],
        [tariff("remuneration", provider_id=1, fixed=150), tariff("remuneration", provider_id=2, fixed=2_05)],
    )
    p = plan(snap, strategy="cheapest")
    text = p.reason(p.options[0])
    assert "remuneration ranking: p2 2.05, p1 1.50" in text
    assert "chose p2" in text
    assert "skipped" not in text


def test_reason_for_weighted_lists_the_weights() -> None:
    snap = snapshot([provider(1), provider(2)], [cand(1, weight=3), cand(2, weight=0)])
    p = plan(snap, strategy="weighted", rng=random.Random(3))
    text = p.reason(p.options[0])
    assert "strategy weighted" in text
    assert "weights: p1=3, p2=0" in text
    assert "chose p1" in text


# --- Snapshot.tariff -----------------------------------------------------------------------------------


def _fee(snap: Snapshot, *, at: dt.datetime = AT, ch: ChannelView | None = None, **kw: Any) -> int | None:
    kw.setdefault("currency", "RUB")
    kw.setdefault("service_id", SERVICE_ID)
    t = snap.tariff("fee", at=at, channel=ch if ch is not None else channel(), **kw)
    return t.id if t else None


def test_tariff_future_version_is_not_used() -> None:
    snap = snapshot(
        [],
        [],
        [
            tariff(service_id=SERVICE_ID, since=dt.datetime(2024, 1, 1, tzinfo=UTC), tid=1),
            tariff(service_id=SERVICE_ID, since=dt.datetime(2024, 6, 1, tzinfo=UTC), tid=2),
        ],
    )
    assert _fee(snap, at=dt.datetime(2024, 5, 31, 23, 59, 59, tzinfo=UTC)) == 1
    assert _fee(snap, at=dt.datetime(2024, 6, 1, tzinfo=UTC)) == 2  # effective_from is inclusive
    assert _fee(snap, at=dt.datetime(2023, 12, 31, tzinfo=UTC)) is None


def test_tariff_newer_version_replaces_older_of_the_same_scope() -> None:
    snap = snapshot(
        [],
        [],
        [
            tariff(service_id=SERVICE_ID, group=GROUP_SELF, since=dt.datetime(2023, 1, 1, tzinfo=UTC), tid=1),
            tariff(service_id=SERVICE_ID, group=GROUP_SELF, since=dt.datetime(2024, 1, 1, tzinfo=UTC), tid=2),
            tariff(service_id=SERVICE_ID, group=GROUP_SELF, since=dt.datetime(2024, 3, 1, tzinfo=UTC), tid=3),
        ],
    )
    assert _fee(snap, at=dt.datetime(2023, 6, 1, tzinfo=UTC)) == 1
    assert _fee(snap, at=dt.datetime(2024, 2, 1, tzinfo=UTC)) == 2
    assert _fee(snap, at=AT) == 3


def test_tariff_channel_beats_group_even_when_older() -> None:
    snap = snapshot(
        [],
        [],
        [
            tariff(service_id=SERVICE_ID, since=dt.datetime(2024, 4, 1, tzinfo=UTC), tid=1),
            tariff(service_id=SERVICE_ID, group=GROUP_SELF, since=dt.datetime(2024, 3, 1, tzinfo=UTC), tid=2),
            tariff(service_id=SERVICE_ID, channel_id=1, since=dt.datetime(2024, 1, 1, tzinfo=UTC), tid=3),
        ],
    )
    assert _fee(snap, ch=channel(1, GROUP_SELF)) == 3  # its own channel tariff
    assert _fee(snap, ch=channel(2, GROUP_SELF)) == 2  # same group, other channel: the group fee
    assert _fee(snap, ch=channel(3, GROUP_ONLINE)) == 1  # other group: the service-wide fee
    assert _fee(snap, ch=channel(4, None)) == 1


def test_tariff_specificity_order() -> None:
    snap = snapshot(
        [],
        [],
        [
            tariff(tid=1),  # any
            tariff(provider_id=7, tid=2),  # 1
            tariff(group=GROUP_SELF, tid=3),  # 2
            tariff(channel_id=1, tid=4),  # 4
            tariff(channel_id=1, group=GROUP_SELF, provider_id=7, tid=5),  # 7
            tariff(service_id=SERVICE_ID, tid=6),  # 8
        ],
    )
    ch = channel(1, GROUP_SELF)
    assert _fee(snap, ch=ch, provider_id=7) == 6  # service beats channel + group + provider
    assert _fee(snap, ch=ch, provider_id=7, service_id=2) == 5
    assert _fee(snap, ch=ch, provider_id=8, service_id=2) == 4
    assert _fee(snap, ch=channel(2, GROUP_SELF), provider_id=7, service_id=2) == 3
    assert _fee(snap, ch=channel(2, GROUP_ONLINE), provider_id=7, service_id=2) == 2
    assert _fee(snap, ch=channel(2, GROUP_ONLINE), provider_id=8, service_id=2) == 1
    assert {t.id: t.specificity for t in snap.tariffs["fee"]} == {1: 0, 2: 1, 3: 2, 4: 4, 5: 7, 6: 8}


def test_tariff_other_currency_and_kind_are_ignored() -> None:
    snap = snapshot(
        [],
        [],
        [
            tariff(service_id=SERVICE_ID, tid=1),
            tariff(service_id=SERVICE_ID, channel_id=1, currency="USD", tid=2),
            tariff("commission", service_id=SERVICE_ID, channel_id=1, tid=3),
        ],
    )
    assert _fee(snap) == 1
    assert _fee(snap, currency="USD") == 2
    assert _fee(snap, currency="EUR") is None
    assert snap.tariff("commission", currency="RUB", at=AT, service_id=SERVICE_ID, channel=channel()).id == 3
    assert (
        snap.tariff("remuneration", currency="RUB", at=AT, service_id=SERVICE_ID, channel=channel()) is None
    )


def test_tariff_scoped_to_channel_needs_a_channel() -> None:
    snap = snapshot([], [], [tariff(channel_id=1, tid=1), tariff(group=GROUP_SELF, tid=2), tariff(tid=3)])
    assert snap.tariff("fee", currency="RUB", at=AT, service_id=SERVICE_ID, channel=None).id == 3


@pytest.mark.parametrize("other_service", [2, None])
def test_tariff_of_another_service_is_not_used(other_service: int | None) -> None:
    snap = snapshot([], [], [tariff(service_id=1, tid=1), tariff(provider_id=5, tid=2)])
    assert _fee(snap, service_id=other_service, provider_id=5) == 2
    assert _fee(snap, service_id=other_service) is None
