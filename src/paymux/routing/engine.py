"""Route planning: which providers may take a payment, in which order, and why.

Pure over a catalog snapshot and the breaker board, so it is cheap and testable on its own.
Deposit coverage of prepaid providers is checked later, inside the accepting transaction.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from paymux.catalog.snapshot import CandidateView, ChannelView, ProviderView, ServiceView, Snapshot
from paymux.money import format_amount
from paymux.routing.breaker import BreakerBoard
from paymux.tariffs.calc import compute

_RNG = random.Random()


@dataclass(slots=True)
class Option:
    candidate: CandidateView
    provider: ProviderView
    remuneration: int
    remuneration_tariff_id: int | None


@dataclass(slots=True)
class Plan:
    options: list[Option]
    strategy: str
    currency: str
    skipped: list[str] = field(default_factory=list)

    def reason(self, chosen: Option, extra: list[str] | None = None) -> str:
        """A readable account of why ``chosen`` was picked."""
        parts = [f"strategy {self.strategy}"]
        if self.strategy == "cheapest":
            ranked = ", ".join(
                f"{o.provider.code} {format_amount(o.remuneration, self.currency)}" for o in self.options
            )
            parts.append(f"remuneration ranking: {ranked}")
        elif self.strategy == "priority":
            parts.append(
                "order: " + ", ".join(f"{o.provider.code}#{o.candidate.priority}" for o in self.options)
            )
        else:
            parts.append(
                "weights: " + ", ".join(f"{o.provider.code}={o.candidate.weight}" for o in self.options)
            )
        parts.append(f"chose {chosen.provider.code}")
        skipped = self.skipped + (extra or [])
        if skipped:
            parts.append("skipped: " + "; ".join(skipped))
        return "; ".join(parts)


def _in_hours(c: CandidateView, provider: ProviderView, at: dt.datetime) -> bool:
    if c.hours_from is None or c.hours_to is None:
        return True
    local = at.astimezone(provider.tz).time().replace(tzinfo=None)
    if c.hours_from <= c.hours_to:
        return c.hours_from <= local < c.hours_to
    return local >= c.hours_from or local < c.hours_to  # window wraps midnight


def plan_route(
    snap: Snapshot,
    service: ServiceView,
    channel: ChannelView,
    amount: int,
    at: dt.datetime,
    breakers: BreakerBoard,
    *,
    exclude: frozenset[int] | set[int] = frozenset(),
    rng: random.Random | None = None,
) -> Plan:
    """Eligible providers for this payment, best first, with the reasons others were skipped."""
    skipped: list[str] = []
    options: list[Option] = []
    for c in snap.routes.get(service.id, ()):
        p = snap.providers.get(c.provider_id)
        if p is None:
            continue
        if c.provider_id in exclude:
            skipped.append(f"{p.code}: already tried")
            continue
        if not c.enabled:
            skipped.append(f"{p.code}: switched off")
            continue
        if not p.enabled:
            skipped.append(f"{p.code}: provider disabled")
            continue
        if c.min_amount is not None and amount < c.min_amount:
            continue
        if c.max_amount is not None and amount > c.max_amount:
            continue
        if c.channel_group_id is not None and c.channel_group_id != channel.group_id:
            continue
        if not _in_hours(c, p, at):
            skipped.append(f"{p.code}: outside hours")
            continue
        if not breakers.allow(p.id, p.breaker):
            skipped.append(f"{p.code}: circuit breaker open")
            continue
        rem = snap.tariff(
            "remuneration",
            currency=service.currency,
            at=at,
            service_id=service.id,
            provider_id=p.id,
            channel=channel,
        )
        options.append(Option(c, p, compute(rem.rule, amount) if rem else 0, rem.id if rem else None))
    strategy = service.strategy
    if strategy == "cheapest":
        options.sort(key=lambda o: (-o.remuneration, o.candidate.priority, o.candidate.id))
    elif strategy == "weighted":
        options = _weighted_order(options, rng or _RNG)
    else:
        options.sort(key=lambda o: (o.candidate.priority, o.candidate.id))
    return Plan(options=options, strategy=strategy, currency=service.currency, skipped=skipped)


def _weighted_order(options: list[Option], rng: random.Random) -> list[Option]:
    """A random order where each next provider is drawn with probability proportional to weight."""
    pool = [o for o in options if o.candidate.weight > 0]
    zero = [o for o in options if o.candidate.weight <= 0]
    out: list[Option] = []
    while pool:
        total = sum(o.candidate.weight for o in pool)
        pick = rng.randrange(total)
        acc = 0
        for i, o in enumerate(pool):
            acc += o.candidate.weight
            if pick < acc:
                out.append(pool.pop(i))
                break
    return out + zero
