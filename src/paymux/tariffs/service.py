"""Tariff versions: added, never overwritten, listed as history.

A version is identified by its scope (kind, service, provider, channel group, channel; a missing
one means "any") and ``effective_from``. Adding the same version again is a no-op; adding a different
rule at the same scope and instant is refused: a change is a new version with a later ``effective_from``.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.models import Channel, ChannelGroup, Provider, Service
from paymux.catalog.schemas import TariffIn
from paymux.catalog.service import get_channel, get_channel_group, get_provider, get_service
from paymux.db.concurrent import inserted
from paymux.tariffs.calc import TariffError, parse_rule, rule_from_json, rule_to_dict, rule_to_json
from paymux.tariffs.models import TariffVersion, scope_key

__all__ = ["add_version", "history", "tariff_label", "version_to_schema"]

AddResult = Literal["created", "unchanged"]


def tariff_label(data: TariffIn) -> str:
    """A short human label: ``fee service=mts channel_group=retail from 2025-01-01T00:00:00+00:00``."""
    parts: list[str] = [data.kind]
    for name in ("service", "provider", "channel_group", "channel"):
        value = getattr(data, name)
        if value is not None:
            parts.append(f"{name}={value}")
    parts.append(f"from {data.effective_from.isoformat()}")
    return " ".join(parts)


async def add_version(
    session: AsyncSession, data: TariffIn, created_by: str
) -> tuple[AddResult, TariffVersion]:
    """Store a tariff version, or find the identical one already stored.

    Raises TariffError when a different rule already exists for the same scope and ``effective_from``,
    and CatalogError when the scope names an unknown service, provider, channel group or channel.
    """
    service = None if data.service is None else await get_service(session, data.service)
    provider_id = None if data.provider is None else (await get_provider(session, data.provider)).id
    group = None if data.channel_group is None else await get_channel_group(session, data.channel_group)
    group_id = None if group is None else group.id
    channel_id = None if data.channel is None else (await get_channel(session, data.channel)).id
    if service is not None and service.currency != data.currency:
        raise TariffError(
            f"{tariff_label(data)}: currency {data.currency} differs from the currency {service.currency} "
            f"of service {service.code!r}"
        )
    service_id = None if service is None else service.id
    key = scope_key(data.kind, service_id, provider_id, group_id, channel_id, data.currency)
    stored_rule = rule_to_json(parse_rule(data.rule, data.currency))

    query = select(TariffVersion).where(
        TariffVersion.scope_key == key, TariffVersion.effective_from == data.effective_from
    )

    async def same_version() -> tuple[AddResult, TariffVersion] | None:
        existing = (await session.execute(query)).scalar_one_or_none()
        if existing is None:
            return None
        if existing.currency == data.currency and existing.rule == stored_rule:
            return "unchanged", existing
        raise TariffError(
            f"tariff versions are immutable: {tariff_label(data)} already exists (version #{existing.id}) "
            "with a different rule; add a version with a later effective_from instead"
        )

    found = await same_version()
    if found is not None:
        return found
    row = TariffVersion(
        kind=data.kind,
        service_id=service_id,
        provider_id=provider_id,
        channel_group_id=group_id,
        channel_id=channel_id,
        scope_key=key,
        currency=data.currency,
        rule=stored_rule,
        effective_from=data.effective_from,
        created_by=created_by,
        note=data.note,
    )
    if await inserted(session, row):
        return "created", row
    found = await same_version()  # added at this moment by another request (paymux.db.concurrent)
    if found is None:
        raise TariffError(f"{tariff_label(data)} could not be stored")
    return found


async def history(
    session: AsyncSession, kind: str | None = None, service: str | None = None, provider: str | None = None
) -> list[TariffVersion]:
    """Tariff versions, newest ``effective_from`` first, optionally only of one kind/service/provider."""
    query = select(TariffVersion)
    if kind is not None:
        query = query.where(TariffVersion.kind == kind)
    if service is not None:
        query = query.where(TariffVersion.service_id == (await get_service(session, service)).id)
    if provider is not None:
        query = query.where(TariffVersion.provider_id == (await get_provider(session, provider)).id)
    query = query.order_by(TariffVersion.effective_from.desc(), TariffVersion.id.desc())
    return list((await session.execute(query)).scalars())


async def version_to_schema(session: AsyncSession, row: TariffVersion) -> TariffIn:
    """The user-facing form of a stored version (codes instead of ids, amounts as decimal strings)."""
    return TariffIn(
        kind=row.kind,
        service=await _code_of(session, Service, row.service_id),
        provider=await _code_of(session, Provider, row.provider_id),
        channel_group=await _code_of(session, ChannelGroup, row.channel_group_id),
        channel=await _code_of(session, Channel, row.channel_id),
        currency=row.currency,
        effective_from=row.effective_from,
        rule=rule_to_dict(rule_from_json(row.rule), row.currency),
        note=row.note,
    )


_Row = TypeVar("_Row", Service, Provider, ChannelGroup, Channel)


async def _code_of(session: AsyncSession, model: type[_Row], row_id: int | None) -> str | None:
    if row_id is None:
        return None
    found = await session.get(model, row_id)
    return None if found is None else found.code
