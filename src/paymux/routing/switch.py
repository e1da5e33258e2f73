"""One-click switch of a service (or every service) off a provider, and switching back.

Switching off provider ``off`` disables its enabled route candidates and marks them
(``switched_by_id``) with the :class:`RouteSwitch` row that did it. With ``onto``, each affected service
gets ``onto`` as an enabled candidate with the switched-off candidate's priority (lower is tried
first): an existing candidate of ``onto`` is enabled and moved up to that priority, otherwise one is
added with the switched-off candidate's provider service code, priority, weight, amount range and
channel group. Those ``onto`` candidates are marked with the switch too, so that re-applying the
catalog file keeps the switch in effect (see ``paymux.catalog.service.upsert_service``).

Repeating a switch changes nothing (and records nothing). :func:`switch_back` re-enables exactly the
candidates a switch disabled and drops its marks; what it did for ``onto`` stays until the route is
edited or the catalog file is applied again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.models import Provider, Service
from paymux.catalog.service import CatalogError, get_provider, get_service
from paymux.routing.models import RouteCandidate, RouteSwitch

__all__ = ["SwitchResult", "list_switches", "switch_back", "switch_provider"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SwitchResult:
    """What a switch (or a switch back) did; ``switch_id`` is None when nothing changed."""

    switch_id: int | None
    candidates_changed: int
    services: list[str] = field(default_factory=list)  # codes of the services whose routes changed
    message: str = ""

    @property
    def changed(self) -> bool:
        return self.candidates_changed > 0


async def _service_codes(session: AsyncSession, service_ids: set[int]) -> list[str]:
    if not service_ids:
        return []
    query = select(Service.code).where(Service.id.in_(service_ids)).order_by(Service.code)
    return list((await session.execute(query)).scalars())


async def switch_provider(
    session: AsyncSession, off: str, onto: str | None, service: str | None, actor: str
) -> SwitchResult:
    """Switch ``service`` (every service when None) off provider ``off``, optionally onto ``onto``."""
    off_provider = await get_provider(session, off)
    onto_provider: Provider | None = None
    if onto is not None:
        onto_provider = await get_provider(session, onto)
        if onto_provider.id == off_provider.id:
            raise CatalogError(f"cannot switch provider {off!r} onto itself")
        if not onto_provider.enabled:
            raise CatalogError(f"provider {onto!r} is disabled; enable it before switching onto it")
    svc = None if service is None else await get_service(session, service)
    scope = f"service {service!r}" if service is not None else "every service"

    query = select(RouteCandidate).where(RouteCandidate.provider_id == off_provider.id)
    if svc is not None:
        query = query.where(RouteCandidate.service_id == svc.id)
    query = query.order_by(RouteCandidate.service_id, RouteCandidate.id)
    rows = list((await session.execute(query)).scalars())
    if svc is not None and not rows:
        raise CatalogError(f"provider {off!r} is not a route candidate of service {service!r}")
    to_disable = [r for r in rows if r.enabled]
    if not to_disable:
        return SwitchResult(
            None, 0, [], f"nothing to change: {scope} is already switched off provider {off!r}"
        )

    switch = RouteSwitch(
        off_provider_id=off_provider.id,
        onto_provider_id=None if onto_provider is None else onto_provider.id,
        service_id=None if svc is None else svc.id,
        candidates_changed=0,
        actor=actor,
    )
    session.add(switch)
    await session.flush()

    by_service: dict[int, list[RouteCandidate]] = defaultdict(list)
    for row in to_disable:
        by_service[row.service_id].append(row)
    changed = 0
    for service_id, off_rows in by_service.items():
        for row in off_rows:
            row.enabled = False
            row.switched_by_id = switch.id
            changed += 1
        if onto_provider is not None:
            changed += await _promote(session, switch.id, service_id, onto_provider.id, off_rows)
    switch.candidates_changed = changed
    await session.flush()

    services = await _service_codes(session, set(by_service))
    target = f" onto {onto!r}" if onto is not None else ""
    message = (
        f"switched {len(services)} service(s) off {off!r}{target}: {changed} route candidate(s) changed "
        f"(switch #{switch.id}; undo with switch back)"
    )
    log.info("route switch #%s by %s: %s", switch.id, actor, message)
    return SwitchResult(switch.id, changed, services, message)


async def _promote(
    session: AsyncSession, switch_id: int, service_id: int, onto_id: int, off_rows: list[RouteCandidate]
) -> int:
    """Make ``onto`` an enabled candidate with the switched-off priority; the number of rows changed."""
    target = min(r.priority for r in off_rows)
    query = select(RouteCandidate).where(
        RouteCandidate.service_id == service_id, RouteCandidate.provider_id == onto_id
    )
    onto_rows = list((await session.execute(query.order_by(RouteCandidate.id))).scalars())
    changed = 0
    for row in onto_rows:
        touched = False
        if not row.enabled:
            row.enabled = True
            touched = True
        if row.priority > target:
            row.priority = target
            touched = True
        if touched:
            row.switched_by_id = switch_id
            changed += 1
    if onto_rows:
        return changed
    for off_row in off_rows:
        session.add(
            RouteCandidate(
                service_id=service_id,
                provider_id=onto_id,
                provider_service_code=off_row.provider_service_code,
                priority=off_row.priority,
                weight=off_row.weight,
                min_amount=off_row.min_amount,
                max_amount=off_row.max_amount,
                channel_group_id=off_row.channel_group_id,
                enabled=True,
                switched_by_id=switch_id,
            )
        )
    return len(off_rows)


async def switch_back(session: AsyncSession, switch_id: int, actor: str) -> SwitchResult:
    """Re-enable the candidates that switch ``switch_id`` disabled (and that are still disabled by it)."""
    switch = await session.get(RouteSwitch, switch_id)
    if switch is None:
        raise CatalogError(f"unknown route switch #{switch_id}")
    query = select(RouteCandidate).where(RouteCandidate.switched_by_id == switch_id)
    marked = list((await session.execute(query.order_by(RouteCandidate.id))).scalars())
    rows = [r for r in marked if not r.enabled]
    for row in marked:
        row.switched_by_id = None  # onto's candidates stay as they are, now without the switch's mark
    for row in rows:
        row.enabled = True
    if not rows:
        await session.flush()
        return SwitchResult(switch_id, 0, [], f"nothing to change: switch #{switch_id} has nothing to undo")
    await session.flush()
    services = await _service_codes(session, {r.service_id for r in rows})
    message = (
        f"switched back #{switch_id}: re-enabled {len(rows)} route candidate(s) of {len(services)} service(s)"
    )
    log.info("route switch #%s undone by %s: %s", switch_id, actor, message)
    return SwitchResult(switch_id, len(rows), services, message)


async def list_switches(session: AsyncSession, limit: int = 100) -> list[RouteSwitch]:
    """The most recent switches first."""
    query = select(RouteSwitch).order_by(RouteSwitch.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())
