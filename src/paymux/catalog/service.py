"""Catalog operations over an AsyncSession: upsert by code, look up, enable/disable, convert back.

Every upsert compares the stored row field by field and reports ``created``, ``updated`` or
``unchanged``; an unchanged row is not written (its ``updated_at`` stays). Functions flush, they
never commit: the caller (a CLI command or an HTTP request) commits or rolls back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.user_models import User
from paymux.catalog.models import Agent, Channel, ChannelGroup, Provider, Service
from paymux.catalog.schemas import (
    AgentIn,
    BreakerIn,
    CandidateIn,
    ChannelGroupIn,
    ChannelIn,
    FieldIn,
    ProviderIn,
    RouteIn,
    ServiceIn,
    SigningIn,
)
from paymux.db.base import utcnow
from paymux.masking import MaskedSecretError, keep_secrets, mask_secrets
from paymux.money import format_amount, parse_amount
from paymux.providers import base as protocols
from paymux.recurring.observe import mapping_problems
from paymux.routing.models import RouteCandidate

if TYPE_CHECKING:
    from paymux.gateways.models import InboundGateway

__all__ = [
    "CatalogError",
    "ChangeKind",
    "EnableKind",
    "agent_to_schema",
    "channel_group_to_schema",
    "channel_to_schema",
    "get_agent",
    "get_channel",
    "get_channel_group",
    "get_provider",
    "get_service",
    "list_agents",
    "list_channel_groups",
    "list_channels",
    "list_providers",
    "list_route_candidates",
    "list_services",
    "masked_channel",
    "masked_provider",
    "provider_to_schema",
    "service_to_schema",
    "set_enabled",
    "upsert_agent",
    "upsert_channel",
    "upsert_channel_group",
    "upsert_provider",
    "upsert_service",
]

ChangeKind = Literal["created", "updated", "unchanged"]
EnableKind = Literal["provider", "service", "agent", "channel", "gateway"]

_Row = TypeVar("_Row", Provider, Service, ChannelGroup, Agent, Channel)


class CatalogError(ValueError):
    """A catalog item that cannot be stored as given, or a reference to an unknown one."""


# --- look-ups ---------------------------------------------------------------------------------------------


async def _find(session: AsyncSession, model: type[_Row], code: str) -> _Row | None:
    result = await session.execute(select(model).where(model.code == code))
    return result.scalar_one_or_none()


async def _get(session: AsyncSession, model: type[_Row], code: str, label: str) -> _Row:
    row = await _find(session, model, code)
    if row is None:
        raise CatalogError(f"unknown {label} {code!r}")
    return row


async def get_provider(session: AsyncSession, code: str) -> Provider:
    return await _get(session, Provider, code, "provider")


async def get_service(session: AsyncSession, code: str) -> Service:
    return await _get(session, Service, code, "service")


async def get_channel_group(session: AsyncSession, code: str) -> ChannelGroup:
    return await _get(session, ChannelGroup, code, "channel group")


async def get_agent(session: AsyncSession, code: str) -> Agent:
    return await _get(session, Agent, code, "agent")


async def get_channel(session: AsyncSession, code: str) -> Channel:
    return await _get(session, Channel, code, "channel")


async def _optional_id(session: AsyncSession, model: type[_Row], code: str | None, label: str) -> int | None:
    return None if code is None else (await _get(session, model, code, label)).id


async def _list(session: AsyncSession, model: type[_Row]) -> list[_Row]:
    return list((await session.execute(select(model).order_by(model.code))).scalars())


async def list_providers(session: AsyncSession) -> list[Provider]:
    return await _list(session, Provider)


async def list_services(session: AsyncSession) -> list[Service]:
    return await _list(session, Service)


async def list_channel_groups(session: AsyncSession) -> list[ChannelGroup]:
    return await _list(session, ChannelGroup)


async def list_agents(session: AsyncSession) -> list[Agent]:
    return await _list(session, Agent)


async def list_channels(session: AsyncSession) -> list[Channel]:
    return await _list(session, Channel)


async def list_route_candidates(session: AsyncSession, service_id: int) -> list[RouteCandidate]:
    """A service's candidates in list order (their position is their identity)."""
    query = select(RouteCandidate).where(RouteCandidate.service_id == service_id).order_by(RouteCandidate.id)
    return list((await session.execute(query)).scalars())


# --- writing ----------------------------------------------------------------------------------------------


@overload
def _minor(value: str, currency: str, *, allow_zero: bool = False) -> int: ...
@overload
def _minor(value: None, currency: str, *, allow_zero: bool = False) -> None: ...
def _minor(value: str | None, currency: str, *, allow_zero: bool = False) -> int | None:
    """Minor units of a decimal string already checked by the schema (None stays None)."""
    return None if value is None else parse_amount(value, currency, allow_zero=allow_zero)


def _assign(row: object, values: Mapping[str, Any]) -> bool:
    """Set the attributes that differ; True when any did."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


async def _upsert(
    session: AsyncSession, model: type[_Row], code: str, values: Mapping[str, Any]
) -> tuple[ChangeKind, _Row]:
    row = await _find(session, model, code)
    if row is None:
        row = model(code=code, **values)
        session.add(row)
        await session.flush()
        return "created", row
    if _assign(row, values):
        await session.flush()
        return "updated", row
    return "unchanged", row


def _check_protocol(data: ProviderIn) -> None:
    try:
        cls = protocols.protocol_class(data.protocol)
    except protocols.UnknownProtocol as exc:
        raise CatalogError(f"provider {data.code!r}: {exc}") from None
    problems = cls.validate_config(dict(data.config))
    problems += mapping_problems(dict(data.config))  # the recurring field mapping, any protocol
    if problems:
        joined = "; ".join(problems)
        raise CatalogError(f"provider {data.code!r}: config for protocol {data.protocol!r}: {joined}")


def _kept(what: str, new: Any, stored: Any, secret_keys: frozenset[str] = frozenset()) -> Any:
    """``new`` with the masks a read showed (``***``) put back to the stored secrets."""
    try:
        return keep_secrets(new, stored, secret_keys, what)
    except MaskedSecretError as exc:
        raise CatalogError(str(exc)) from None


async def upsert_provider(session: AsyncSession, data: ProviderIn) -> ChangeKind:
    """Create or update a provider; its protocol must be installed and accept its config.

    Config values given as ``***`` (as a read shows secrets) keep the stored ones.
    """
    row = await _find(session, Provider, data.code)
    stored = dict(row.config or {}) if row is not None else {}
    config = _kept("config", dict(data.config), stored, protocols.config_secret_keys(data.protocol))
    data = data.model_copy(update={"config": config})
    _check_protocol(data)
    values: dict[str, Any] = {
        "name": data.name,
        "protocol": data.protocol,
        "config": dict(data.config),
        "timezone": data.timezone,
        "settlement": data.settlement,
        "overdraft": {cur: _minor(amount, cur, allow_zero=True) for cur, amount in data.overdraft.items()},
        "breaker": data.breaker.model_dump(),
        "enabled": data.enabled,
    }
    if row is not None and _breaker_of(row) == data.breaker:
        values["breaker"] = row.breaker  # the same settings stored in an older (partial) form
    change, _ = await _upsert(session, Provider, data.code, values)
    return change


def _breaker_of(row: Provider) -> BreakerIn | None:
    try:
        return BreakerIn.model_validate(row.breaker or {})
    except ValueError:
        return None


async def upsert_channel_group(session: AsyncSession, data: ChannelGroupIn) -> ChangeKind:
    change, _ = await _upsert(session, ChannelGroup, data.code, {"name": data.name})
    return change


async def _manager_id(session: AsyncSession, username: str | None) -> int | None:
    """The id of the staff user named ``username`` (None: no manager)."""
    if username is None:
        return None
    user_id = await session.scalar(select(User.id).where(User.username == username))
    if user_id is None:
        raise CatalogError(f"manager: no user named {username!r}")
    return int(user_id)


async def _username_of(session: AsyncSession, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    name = await session.scalar(select(User.username).where(User.id == user_id))
    return None if name is None else str(name)


async def upsert_agent(session: AsyncSession, data: AgentIn) -> ChangeKind:
    values = {
        "name": data.name,
        "enabled": data.enabled,
        "manager_id": await _manager_id(session, data.manager),
    }
    change, _ = await _upsert(session, Agent, data.code, values)
    return change


async def upsert_channel(session: AsyncSession, data: ChannelIn) -> ChangeKind:
    """Create or update a channel; its group and agent must exist. ``hmac_secret: ***`` keeps the stored
    one."""
    row = await _find(session, Channel, data.code)
    stored = {"hmac_secret": row.hmac_secret if row else None}
    hmac_secret = _kept("signing", {"hmac_secret": data.signing.hmac_secret}, stored)["hmac_secret"]
    values = {
        "name": data.name,
        "kind": data.kind,
        "group_id": await _optional_id(session, ChannelGroup, data.group, "channel group"),
        "agent_id": await _optional_id(session, Agent, data.agent, "agent"),
        "enabled": data.enabled,
        "manager_id": await _manager_id(session, data.manager),
        "signing": data.signing.mode,
        "signing_required": data.signing.required,
        "hmac_secret": hmac_secret,
        "rsa_public_key": data.signing.rsa_public_key,
    }
    change, _ = await _upsert(session, Channel, data.code, values)
    return change


async def _candidate_values(
    session: AsyncSession, position: int, cand: CandidateIn, currency: str
) -> dict[str, Any]:
    hours = cand.hours_range
    return {
        "provider_id": (await get_provider(session, cand.provider)).id,
        "provider_service_code": cand.code,
        "priority": cand.priority if cand.priority is not None else position + 1,
        "weight": cand.weight,
        "min_amount": _minor(cand.min_amount, currency, allow_zero=True),
        "max_amount": _minor(cand.max_amount, currency),
        "channel_group_id": await _optional_id(session, ChannelGroup, cand.channel_group, "channel group"),
        "hours_from": hours[0] if hours else None,
        "hours_to": hours[1] if hours else None,
        "enabled": cand.enabled,
    }


# Set on a candidate by a route switch (routing.switch); the file does not override them, see below.
_SWITCH_OWNED = ("enabled", "priority")


async def _replace_candidates(
    session: AsyncSession, service_id: int, wanted: Sequence[dict[str, Any]]
) -> bool:
    """Make the service's candidates equal ``wanted``, position by position; True when anything changed.

    A candidate changed by a route switch (``switched_by_id`` set) keeps its ``enabled`` and
    ``priority`` while the file describes the same candidate otherwise, and candidates a switch added
    after the listed ones are kept: re-applying a file does not silently undo a switch (switch back does).
    When the file changes such a candidate in any other field, the file wins and the mark is cleared.
    """
    existing = await list_route_candidates(session, service_id)
    changed = False
    for row, values in zip(existing, wanted, strict=False):
        if row.switched_by_id is not None:
            if all(getattr(row, k) == v for k, v in values.items() if k not in _SWITCH_OWNED):
                continue
            row.switched_by_id = None
        if _assign(row, values):
            changed = True
    for values in wanted[len(existing) :]:
        session.add(RouteCandidate(service_id=service_id, **values))
        changed = True
    for row in existing[len(wanted) :]:
        if row.switched_by_id is not None and row.enabled:
            continue  # added by a switch
        await session.delete(row)
        changed = True
    return changed


async def upsert_service(session: AsyncSession, data: ServiceIn) -> ChangeKind:
    """Create or update a service and its route; the candidate list is replaced when it differs."""
    wanted = [
        await _candidate_values(session, i, cand, data.currency)
        for i, cand in enumerate(data.route.candidates)
    ]
    values = {
        "name": data.name,
        "category": data.category,
        "currency": data.currency,
        "account_pattern": data.account_pattern,
        "account_hint": data.account_hint,
        "min_amount": _minor(data.min_amount, data.currency, allow_zero=True),
        "max_amount": _minor(data.max_amount, data.currency),
        "fields": [f.model_dump() for f in data.fields],
        "lifetime_seconds": data.lifetime_seconds,
        "periodic_days": data.periodic_days,
        "project": data.project,
        "strategy": data.route.strategy,
        "enabled": data.enabled,
    }
    change, row = await _upsert(session, Service, data.code, values)
    if await _replace_candidates(session, row.id, wanted):
        if change == "unchanged":
            row.updated_at = utcnow()
            change = "updated"
        await session.flush()
    return change


async def set_enabled(session: AsyncSession, kind: EnableKind, code: str, enabled: bool) -> ChangeKind:
    """Enable or disable a provider, service, agent, channel or inbound gateway: ``updated`` or
    ``unchanged``."""
    row: Provider | Service | Agent | Channel | InboundGateway
    if kind == "provider":
        row = await get_provider(session, code)
    elif kind == "service":
        row = await get_service(session, code)
    elif kind == "agent":
        row = await get_agent(session, code)
    elif kind == "channel":
        row = await get_channel(session, code)
    elif kind == "gateway":
        from paymux.gateways.models import InboundGateway

        found = await session.scalar(select(InboundGateway).where(InboundGateway.code == code))
        if found is None:
            raise CatalogError(f"unknown gateway {code!r}")
        row = found
    else:
        raise CatalogError(
            f"cannot enable or disable a {kind!r} (use provider, service, agent, channel or gateway)"
        )
    if row.enabled == enabled:
        return "unchanged"
    row.enabled = enabled
    await session.flush()
    return "updated"


# --- rows back to the user-facing form --------------------------------------------------------------------


def provider_to_schema(row: Provider) -> ProviderIn:
    return ProviderIn(
        code=row.code,
        name=row.name,
        protocol=row.protocol,
        config=dict(row.config or {}),
        timezone=row.timezone,
        settlement=row.settlement,
        overdraft={cur: format_amount(minor, cur) for cur, minor in (row.overdraft or {}).items()},
        breaker=BreakerIn.model_validate(row.breaker or {}),
        enabled=row.enabled,
    )


def masked_provider(provider: ProviderIn) -> ProviderIn:
    """The provider as every read shows it: secrets in its config (and anywhere else) masked."""
    data = mask_secrets(provider.model_dump(mode="json"))
    data["config"] = mask_secrets(provider.config, protocols.config_secret_keys(provider.protocol))
    return ProviderIn.model_validate(data)


def channel_group_to_schema(row: ChannelGroup) -> ChannelGroupIn:
    return ChannelGroupIn(code=row.code, name=row.name)


async def agent_to_schema(session: AsyncSession, row: Agent) -> AgentIn:
    manager = await _username_of(session, row.manager_id)
    return AgentIn(code=row.code, name=row.name, enabled=row.enabled, manager=manager)


async def _code_of(session: AsyncSession, model: type[_Row], row_id: int | None) -> str | None:
    if row_id is None:
        return None
    row = await session.get(model, row_id)
    return None if row is None else row.code


async def channel_to_schema(session: AsyncSession, row: Channel) -> ChannelIn:
    return ChannelIn(
        code=row.code,
        name=row.name,
        kind=row.kind,
        group=await _code_of(session, ChannelGroup, row.group_id),
        agent=await _code_of(session, Agent, row.agent_id),
        enabled=row.enabled,
        manager=await _username_of(session, row.manager_id),
        signing=SigningIn(
            mode=row.signing,
            required=row.signing_required,
            hmac_secret=row.hmac_secret,
            rsa_public_key=row.rsa_public_key,
        ),
    )


def masked_channel(channel: ChannelIn) -> ChannelIn:
    """The channel as every read shows it: its HMAC secret masked."""
    return ChannelIn.model_validate(mask_secrets(channel.model_dump(mode="json")))


def _amount_or_none(minor: int | None, currency: str) -> str | None:
    return None if minor is None else format_amount(minor, currency)


async def service_to_schema(session: AsyncSession, row: Service) -> ServiceIn:
    candidates = []
    for cand in await list_route_candidates(session, row.id):
        candidates.append(
            CandidateIn(
                provider=await _code_of(session, Provider, cand.provider_id) or "",
                code=cand.provider_service_code,
                priority=cand.priority,
                weight=cand.weight,
                min_amount=_amount_or_none(cand.min_amount, row.currency),
                max_amount=_amount_or_none(cand.max_amount, row.currency),
                channel_group=await _code_of(session, ChannelGroup, cand.channel_group_id),
                hours=f"{cand.hours_from}-{cand.hours_to}" if cand.hours_from and cand.hours_to else None,
                enabled=cand.enabled,
            )
        )
    return ServiceIn(
        code=row.code,
        name=row.name,
        category=row.category,
        currency=row.currency,
        account_pattern=row.account_pattern,
        account_hint=row.account_hint,
        min_amount=_amount_or_none(row.min_amount, row.currency),
        max_amount=_amount_or_none(row.max_amount, row.currency),
        fields=[FieldIn.model_validate(f) for f in row.fields or []],
        lifetime_seconds=row.lifetime_seconds,
        periodic_days=row.periodic_days,
        project=row.project,
        enabled=row.enabled,
        route=RouteIn(strategy=row.strategy, candidates=candidates),
    )
