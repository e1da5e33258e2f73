"""The catalog file: apply a whole catalog (YAML or dict) idempotently, export it back.

``apply_catalog`` upserts in dependency order (channel groups, agents, providers, channels, services
with their routes, tariff versions, switches) and reports each item's change. It flushes and never
commits: on an error the caller rolls back, so an invalid file changes nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.schemas import CatalogFile, TariffIn, describe_validation_error
from paymux.catalog.service import (
    CatalogError,
    ChangeKind,
    agent_to_schema,
    channel_group_to_schema,
    channel_to_schema,
    list_agents,
    list_channel_groups,
    list_channels,
    list_providers,
    list_services,
    masked_channel,
    masked_provider,
    provider_to_schema,
    service_to_schema,
    upsert_agent,
    upsert_channel,
    upsert_channel_group,
    upsert_provider,
    upsert_service,
)
from paymux.gateways.service import gateway_to_schema, list_gateways, masked, upsert_gateway
from paymux.offload import release
from paymux.routing.switch import switch_provider
from paymux.tariffs.models import TariffVersion
from paymux.tariffs.service import add_version, tariff_label, version_to_schema
from paymux.yaml_text import SafeLoader, TooMuchYaml, expanded_values, release_nodes

__all__ = [
    "ApplyItem",
    "ApplyReport",
    "CatalogTooLarge",
    "apply_catalog",
    "check_size",
    "dump_yaml",
    "export_catalog",
    "load_yaml",
    "parse_catalog",
]


@dataclass(frozen=True, slots=True)
class ApplyItem:
    kind: str  # channel_group, agent, provider, channel, service, tariff, switch
    code: str  # the code; for a tariff its label, for a switch "off X onto Y service Z"
    change: ChangeKind

    def line(self) -> str:
        return f"{self.change} {self.kind} {self.code}"


@dataclass(slots=True)
class ApplyReport:
    items: list[ApplyItem] = field(default_factory=list)

    def add(self, kind: str, code: str, change: ChangeKind) -> None:
        self.items.append(ApplyItem(kind, code, change))

    def counts(self) -> dict[str, int]:
        """``{"created": n, "updated": n, "unchanged": n}``."""
        found = Counter(item.change for item in self.items)
        return {change: found.get(change, 0) for change in ("created", "updated", "unchanged")}

    @property
    def changes(self) -> list[ApplyItem]:
        """The created and updated items (what ``paymux catalog apply`` prints one line each for)."""
        return [item for item in self.items if item.change != "unchanged"]

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def lines(self) -> list[str]:
        """One line per created or updated item, e.g. ``created service mts-topup``."""
        return [item.line() for item in self.changes]

    def summary(self) -> str:
        counts = self.counts()
        return ", ".join(f"{n} {change}" for change, n in counts.items())


_LIST_OF = {
    "channel_group": "channel_groups",
    "agent": "agents",
    "provider": "providers",
    "channel": "channels",
    "service": "services",
    "tariff": "tariffs",
    "switch": "switches",
    "gateway": "gateways",
}


def parse_catalog(data: CatalogFile | dict[str, Any] | None) -> CatalogFile:
    """Validate a catalog given as a dict; CatalogError lists every problem with its path."""
    if isinstance(data, CatalogFile):
        return data
    if data is None:
        return CatalogFile()
    if not isinstance(data, dict):
        raise CatalogError(
            "a catalog must be a mapping with the keys providers, channel_groups, agents, channels, "
            "services, tariffs, switches, gateways"
        )
    try:
        return CatalogFile.model_validate(data)
    except ValidationError as exc:
        raise CatalogError("invalid catalog:\n" + describe_validation_error(exc, data)) from None


async def apply_catalog(session: AsyncSession, data: CatalogFile | dict[str, Any], actor: str) -> ApplyReport:
    """Upsert everything in ``data``; raises CatalogError naming the item on the first problem."""
    catalog = parse_catalog(data)
    report = ApplyReport()

    async def step(kind: str, index: int, code: str, coro: Awaitable[ChangeKind]) -> None:
        try:
            change = await coro
        except ValueError as exc:  # CatalogError, TariffError, MoneyError
            raise CatalogError(f"{_LIST_OF[kind]}[{index}] ({code}): {exc}") from None
        report.add(kind, code, change)

    for i, group in enumerate(catalog.channel_groups):
        await step("channel_group", i, group.code, upsert_channel_group(session, group))
    for i, agent in enumerate(catalog.agents):
        await step("agent", i, agent.code, upsert_agent(session, agent))
    for i, provider in enumerate(catalog.providers):
        await step("provider", i, provider.code, upsert_provider(session, provider))
    for i, channel in enumerate(catalog.channels):
        await step("channel", i, channel.code, upsert_channel(session, channel))
    for i, service in enumerate(catalog.services):
        await step("service", i, service.code, upsert_service(session, service))
    for i, tariff in enumerate(catalog.tariffs):
        await step("tariff", i, tariff_label(tariff), _add_tariff(session, tariff, actor))
    for i, sw in enumerate(catalog.switches):
        label = f"off {sw.off}" + (f" onto {sw.onto}" if sw.onto else "") + f" service {sw.service or '*'}"
        await step("switch", i, label, _switch(session, sw.off, sw.onto, sw.service, actor))
    for i, gateway in enumerate(catalog.gateways):
        await step("gateway", i, gateway.code, upsert_gateway(session, gateway))
    return report


async def _add_tariff(session: AsyncSession, tariff: TariffIn, actor: str) -> ChangeKind:
    change, _ = await add_version(session, tariff, actor)
    return change


async def _switch(
    session: AsyncSession, off: str, onto: str | None, service: str | None, actor: str
) -> ChangeKind:
    result = await switch_provider(session, off, onto, service, actor)
    return "updated" if result.changed else "unchanged"


async def export_catalog(session: AsyncSession, *, with_secrets: bool = False) -> CatalogFile:
    """The whole catalog as a file: every tariff version (history) included, switches not (their effect
    is in the candidates' ``enabled``). Applying the export changes nothing.

    Secrets (provider config secrets, channel HMAC secrets, gateway password hashes) are written as
    ``***``, which applying the file keeps as stored; ``with_secrets`` writes them out (the caller
    checks that whoever asks may have them).
    """
    tariffs = (await session.execute(select(TariffVersion).order_by(TariffVersion.id))).scalars()
    providers = [provider_to_schema(p) for p in await list_providers(session)]
    channels = [await channel_to_schema(session, c) for c in await list_channels(session)]
    gateways = [await gateway_to_schema(session, g) for g in await list_gateways(session)]
    if not with_secrets:
        providers = [masked_provider(p) for p in providers]
        channels = [masked_channel(c) for c in channels]
        gateways = [masked(g) for g in gateways]
    return CatalogFile(
        providers=providers,
        channel_groups=[channel_group_to_schema(g) for g in await list_channel_groups(session)],
        agents=[await agent_to_schema(session, a) for a in await list_agents(session)],
        channels=channels,
        services=[await service_to_schema(session, s) for s in await list_services(session)],
        tariffs=[await version_to_schema(session, t) for t in tariffs],
        gateways=gateways,
    )


# --- YAML ------------------------------------------------------------------------------------------------


class _Loader(SafeLoader):
    """YAML 1.2-style booleans (only true/false, so a key ``off:`` stays a string) and no duplicate keys.

    Built on libyaml's parser where PyYAML has it (about five times faster than the pure-Python one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


class _Dumper(yaml.SafeDumper):
    """Indented block lists, and multi-line strings (PEM keys) as literal blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


class CatalogTooLarge(CatalogError):
    """A catalog document with more items than one document may hold (``PAYMUX_CATALOG_MAX_ITEMS``)."""


def load_yaml(text: str, max_items: int | None = None) -> CatalogFile:
    """Parse and validate a catalog file; CatalogError says where (line, or path of the bad field).

    Before anything is validated, a list (``services``, ``providers``...) longer than ``max_items``
    raises CatalogTooLarge, as does a document whose aliases expand it to more values than it has
    characters (a "billion laughs"). This takes CPU in proportion to the text: on the event loop,
    run it in a thread (``asyncio.to_thread``).
    """
    loader = _Loader(text)  # safe: _Loader is a SafeLoader subclass
    node = None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise CatalogError(f"catalog file is not valid YAML: {exc}") from None
    finally:
        loader.dispose()
        release_nodes(node)
    try:
        check_size(data, max_items, max_values=len(text) + 1000)
        return parse_catalog(data)
    finally:
        if isinstance(data, dict):
            release(data)


def check_size(data: object, max_items: int | None, max_values: int) -> None:
    """Raise CatalogTooLarge for a list of the catalog longer than ``max_items``, or for a document of
    more than ``max_values`` values once its aliases are expanded (each shared value counted each time
    it is used, as validation would visit it)."""
    if not isinstance(data, dict):
        return
    if max_items is not None:
        for name in _LIST_OF.values():
            items = data.get(name)
            if isinstance(items, list) and len(items) > max_items:
                raise CatalogTooLarge(
                    f"{name}: {len(items)} items; a catalog document holds at most {max_items} per list"
                )
    try:
        expanded_values(data, max_values)
    except TooMuchYaml as exc:
        raise CatalogTooLarge(str(exc)) from None


def dump_yaml(catalog: CatalogFile) -> str:
    """The catalog as YAML, leaving out values equal to their defaults."""
    data = catalog.model_dump(mode="json", exclude_defaults=True)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)
