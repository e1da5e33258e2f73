"""The before/after states the admin API records in the audit log (catalog objects as their schemas)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from paymux.audit.service import record
from paymux.catalog import service as catalog


async def catalog_state(session: AsyncSession, kind: str, code: str) -> dict[str, Any] | None:
    """The catalog object ``kind``/``code`` as the admin API shows it (secrets masked), or None when it
    does not exist."""
    try:
        if kind == "provider":
            provider = catalog.provider_to_schema(await catalog.get_provider(session, code))
            return catalog.masked_provider(provider).model_dump(mode="json")
        if kind == "service":
            row = await catalog.get_service(session, code)
            return (await catalog.service_to_schema(session, row)).model_dump(mode="json")
        if kind == "channel":
            ch = await catalog.channel_to_schema(session, await catalog.get_channel(session, code))
            return catalog.masked_channel(ch).model_dump(mode="json")
        if kind == "agent":
            agent = await catalog.agent_to_schema(session, await catalog.get_agent(session, code))
            return agent.model_dump(mode="json")
        if kind == "gateway":
            from paymux.gateways import service as gateways

            gw = await gateways.get_gateway(session, code)
            return gateways.masked(await gateways.gateway_to_schema(session, gw)).model_dump(mode="json")
        if kind == "channel_group":
            group = await catalog.get_channel_group(session, code)
            return catalog.channel_group_to_schema(group).model_dump(mode="json")
    except catalog.CatalogError:
        return None
    raise ValueError(f"unknown catalog kind {kind!r}")


@dataclass
class AuditAs:
    """How the admin API's ``_change`` records a change: who, what, the state before, how to get after."""

    actor: Any
    action: str
    target: str
    before: Any = None
    after: Callable[[Any], Awaitable[Any]] | None = None  # from the change's result

    async def write(self, session: AsyncSession, result: Any) -> None:
        if result == "unchanged" or getattr(result, "changed", True) is False:
            return
        after = await self.after(result) if self.after is not None else _plain_result(result)
        await record(session, self.actor, self.action, self.target, self.before, after)


def _plain_result(result: Any) -> Any:
    if isinstance(result, str | int | dict | list) or result is None:
        return {"result": result}
    return {"result": str(result)}


async def catalog_change(actor: Any, session: AsyncSession, kind: str, code: str, action: str) -> AuditAs:
    """An ``AuditAs`` for a change of one catalog object: its state before now, after from the database."""

    async def after(_: Any) -> Any:
        await session.flush()
        return await catalog_state(session, kind, code)

    return AuditAs(actor, action, f"{kind}:{code}", await catalog_state(session, kind, code), after)
