"""An immutable in-memory view of the catalog, routes and tariffs for the payment hot path.

Loaded in a few queries, cached for ``PAYMUX_CATALOG_CACHE_SECONDS`` (read again in the background
ahead of that, while the old snapshot is served) and replaced at once when this process changes the
catalog (``CatalogCache.invalidate``). Other processes see a change within the cache time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from paymux.catalog.fields import catalog_pattern
from paymux.catalog.models import Agent, Channel, ChannelGroup, Provider, Service
from paymux.refresh_ahead import RefreshAhead
from paymux.routing.models import RouteCandidate
from paymux.tariffs.calc import TariffRule, rule_from_json
from paymux.tariffs.models import TariffVersion


@dataclass(frozen=True, slots=True)
class ServiceView:
    id: int
    code: str
    name: str
    currency: str
    pattern: re.Pattern[str]
    min_amount: int | None
    max_amount: int | None
    fields: tuple[dict[str, Any], ...]
    lifetime_seconds: int | None
    strategy: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class ProviderView:
    id: int
    code: str
    name: str
    protocol: str
    config: dict[str, Any]
    tz: ZoneInfo
    settlement: str
    overdraft: dict[str, int]
    breaker: dict[str, Any]
    enabled: bool


@dataclass(frozen=True, slots=True)
class ChannelView:
    id: int
    code: str
    name: str
    kind: str
    group_id: int | None
    agent_id: int | None
    enabled: bool
    signing: str
    signing_required: bool
    hmac_secret: str | None
    rsa_public_key: str | None


@dataclass(frozen=True, slots=True)
class CandidateView:
    id: int
    provider_id: int
    provider_service_code: str
    priority: int
    weight: int
    min_amount: int | None
    max_amount: int | None
    channel_group_id: int | None
    hours_from: dt.time | None
    hours_to: dt.time | None
    enabled: bool


@dataclass(frozen=True, slots=True)
class TariffView:
    id: int
    kind: str
    service_id: int | None
    provider_id: int | None
    channel_group_id: int | None
    channel_id: int | None
    currency: str
    rule: TariffRule
    effective_from: dt.datetime

    @property
    def specificity(self) -> int:
        """Service beats channel beats channel group; any of them beats "any"."""
        return (
            (8 if self.service_id is not None else 0)
            + (4 if self.channel_id is not None else 0)
            + (2 if self.channel_group_id is not None else 0)
            + (1 if self.provider_id is not None else 0)
        )


def _hhmm(value: str | None) -> dt.time | None:
    return dt.time.fromisoformat(value) if value else None


@dataclass(slots=True)
class Snapshot:
    services: dict[str, ServiceView] = field(default_factory=dict)
    services_by_id: dict[int, ServiceView] = field(default_factory=dict)
    providers: dict[int, ProviderView] = field(default_factory=dict)
    providers_by_code: dict[str, ProviderView] = field(default_factory=dict)
    channels: dict[int, ChannelView] = field(default_factory=dict)
    channels_by_code: dict[str, ChannelView] = field(default_factory=dict)
    groups: dict[int, str] = field(default_factory=dict)
    agents: dict[int, str] = field(default_factory=dict)
    routes: dict[int, tuple[CandidateView, ...]] = field(default_factory=dict)
    # kind -> versions sorted by effective_from descending
    tariffs: dict[str, list[TariffView]] = field(default_factory=dict)

    def tariff(
        self,
        kind: str,
        *,
        currency: str,
        at: dt.datetime,
        service_id: int | None,
        provider_id: int | None = None,
        channel: ChannelView | None = None,
    ) -> TariffView | None:
        """The version in force at ``at`` of the most specific tariff matching the scope."""
        best: TariffView | None = None
        for t in self.tariffs.get(kind, ()):
            if t.effective_from > at or t.currency != currency:
                continue
            if t.service_id is not None and t.service_id != service_id:
                continue
            if t.provider_id is not None and t.provider_id != provider_id:
                continue
            if t.channel_id is not None and (channel is None or t.channel_id != channel.id):
                continue
            if t.channel_group_id is not None and (channel is None or t.channel_group_id != channel.group_id):
                continue
            # versions are newest first: the first seen of a given specificity is the one in force
            if best is None or t.specificity > best.specificity:
                best = t
        return best


async def load_snapshot(session: AsyncSession) -> Snapshot:
    snap = Snapshot()
    for s in (await session.scalars(select(Service))).all():
        sv = ServiceView(
            id=s.id,
            code=s.code,
            name=s.name,
            currency=s.currency,
            pattern=catalog_pattern(s.account_pattern),
            min_amount=s.min_amount,
            max_amount=s.max_amount,
            fields=tuple(s.fields or ()),
            lifetime_seconds=s.lifetime_seconds,
            strategy=s.strategy,
            enabled=s.enabled,
        )
        snap.services[s.code] = sv
        snap.services_by_id[s.id] = sv
    for p in (await session.scalars(select(Provider))).all():
        pv = ProviderView(
            id=p.id,
            code=p.code,
            name=p.name,
            protocol=p.protocol,
            config=dict(p.config or {}),
            tz=ZoneInfo(p.timezone),
            settlement=p.settlement,
            overdraft=dict(p.overdraft or {}),
            breaker=dict(p.breaker or {}),
            enabled=p.enabled,
        )
        snap.providers[p.id] = pv
        snap.providers_by_code[p.code] = pv
    for c in (await session.scalars(select(Channel))).all():
        cv = ChannelView(
            id=c.id,
            code=c.code,
            name=c.name,
            kind=c.kind,
            group_id=c.group_id,
            agent_id=c.agent_id,
            enabled=c.enabled,
            signing=c.signing,
            signing_required=c.signing_required,
            hmac_secret=c.hmac_secret,
            rsa_public_key=c.rsa_public_key,
        )
        snap.channels[c.id] = cv
        snap.channels_by_code[c.code] = cv
    snap.groups = {g.id: g.code for g in (await session.scalars(select(ChannelGroup))).all()}
    snap.agents = {a.id: a.code for a in (await session.scalars(select(Agent))).all()}
    routes: dict[int, list[CandidateView]] = defaultdict(list)
    for r in (await session.scalars(select(RouteCandidate).order_by(RouteCandidate.id))).all():
        routes[r.service_id].append(
            CandidateView(
                id=r.id,
                provider_id=r.provider_id,
                provider_service_code=r.provider_service_code,
                priority=r.priority,
                weight=r.weight,
                min_amount=r.min_amount,
                max_amount=r.max_amount,
                channel_group_id=r.channel_group_id,
                hours_from=_hhmm(r.hours_from),
                hours_to=_hhmm(r.hours_to),
                enabled=r.enabled,
            )
        )
    snap.routes = {k: tuple(v) for k, v in routes.items()}
    tariffs: dict[str, list[TariffView]] = defaultdict(list)
    stmt = select(TariffVersion).order_by(TariffVersion.effective_from.desc(), TariffVersion.id.desc())
    for t in (await session.scalars(stmt)).all():
        tariffs[t.kind].append(
            TariffView(
                id=t.id,
                kind=t.kind,
                service_id=t.service_id,
                provider_id=t.provider_id,
                channel_group_id=t.channel_group_id,
                channel_id=t.channel_id,
                currency=t.currency,
                rule=rule_from_json(t.rule),
                effective_from=t.effective_from,
            )
        )
    snap.tariffs = dict(tariffs)
    return snap


class CatalogCache:
    """Holds the current snapshot; reads it again ahead of ``ttl_seconds`` (in the background, while
    the old one is served) or at once when invalidated (see :mod:`paymux.refresh_ahead`)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl_seconds: int) -> None:
        self._sessions = sessions
        self._cache: RefreshAhead[None, Snapshot] = RefreshAhead("catalog", ttl_seconds)

    def invalidate(self) -> None:
        self._cache.clear()

    async def close(self) -> None:
        await self._cache.close()

    async def get(self) -> Snapshot:
        snap = await self._cache.get(None, self._load)
        assert snap is not None
        return snap

    async def _load(self) -> Snapshot:
        async with self._sessions() as session:
            fresh = await load_snapshot(session)
            await session.rollback()
        return fresh
