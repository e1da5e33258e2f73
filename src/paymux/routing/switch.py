"""One-click switch of a service (or every service) off a provider, and switching back.

Switching off provider ``off`` disables its enabled route candidates and marks them
(``switched_by_id``) with the :class:`RouteSwitch` row that did it. With ``onto``, each affected service
gets ``onto`` as an enabled candidate with the switched-off candidate's priority (lower is tried
first): an existing candidate of ``onto`` is enabled and moved up to that priority, otherwise one is
added with the switched-off candidate's provider service code, priority, weight, amount range and
channel group. Those ``onto`` candidates are marked with the switch too, so that re-applying the
catalog file keeps the switch in effect (see ``paymux.catalog.service.upsert_service``).

Each change is recorded (:class:`RouteSwitchChange`: the candidate as it was), and :func:`switch_back`
undoes exactly those: it re-enables what the switch disabled, disables again the ``onto`` candidates
it enabled, puts their priorities back and removes the candidates it added, so the route is as it was
before the switch. A candidate changed since (its mark gone: edited, or the catalog file changed it)
is left as it is; :func:`plan_switch_back` lists both, for the confirmation page. Switches made before
changes were recorded only get their disabled candidates re-enabled.

Repeating a switch changes nothing (and records nothing).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.models import Provider, Service
from paymux.catalog.service import CatalogError, get_provider, get_service
from paymux.db.concurrent import locked
from paymux.routing.models import RouteCandidate, RouteSwitch, RouteSwitchChange

__all__ = [
    "CandidateChange",
    "SwitchBackPlan",
    "SwitchResult",
    "list_switches",
    "plan_switch_back",
    "switch_back",
    "switch_provider",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CandidateChange:
    """What a switch (or switch back) does to one route candidate. ``actions``: "disable", "enable",
    "priority" (from ``priority_from`` to ``priority_to``), "add", "remove"."""

    service: str
    provider: str
    code: str  # the provider's service code
    actions: tuple[str, ...]
    priority_from: int | None = None
    priority_to: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "service": self.service,
            "provider": self.provider,
            "provider_service_code": self.code,
            "actions": list(self.actions),
            "priority_from": self.priority_from,
            "priority_to": self.priority_to,
        }


@dataclass(slots=True)
class SwitchResult:
    """What a switch (or a switch back) did; ``switch_id`` is None when nothing changed."""

    switch_id: int | None
    candidates_changed: int
    services: list[str] = field(default_factory=list)  # codes of the services whose routes changed
    message: str = ""
    changes: list[CandidateChange] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.candidates_changed > 0


async def _describe(
    session: AsyncSession, items: list[tuple[RouteCandidate, tuple[str, ...], int | None, int | None]]
) -> list[CandidateChange]:
    """(candidate, actions, priority from, priority to) as changes named by codes."""
    services: dict[int, str] = {
        i: c for i, c in (await session.execute(select(Service.id, Service.code))).all()
    }
    providers: dict[int, str] = {
        i: c for i, c in (await session.execute(select(Provider.id, Provider.code))).all()
    }
    out = [
        CandidateChange(
            services.get(c.service_id, str(c.service_id)),
            providers.get(c.provider_id, str(c.provider_id)),
            c.provider_service_code,
            actions,
            before,
            after,
        )
        for c, actions, before, after in items
    ]
    return sorted(out, key=lambda c: (c.service, c.provider, c.code))


def _record(session: AsyncSession, switch_id: int, row: RouteCandidate, *, added: bool = False) -> None:
    session.add(
        RouteSwitchChange(
            switch_id=switch_id,
            candidate_id=row.id,
            added=added,
            was_enabled=False if added else row.enabled,
            was_priority=row.priority,
            was_switched_by_id=None if added else row.switched_by_id,
        )
    )


async def _service_codes(session: AsyncSession, service_ids: set[int]) -> list[str]:
    if not service_ids:
        return []
    query = select(Service.code).where(Service.id.in_(service_ids)).order_by(Service.code)
    return list((await session.execute(query)).scalars())


async def switch_provider(
    session: AsyncSession, off: str, onto: str | None, service: str | None, actor: str
) -> SwitchResult:
    """Switch ``service`` (every service when None) off provider ``off``, optionally onto ``onto``.

    Switches off one provider run one after the other (its row is locked first), each reading the
    candidates as the one before left them: the same switch twice at once changes them once."""
    off_provider = await get_provider(session, off)
    await locked(session, Provider, off_provider.id, key_share=True)
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
    rows = list((await session.execute(query.execution_options(populate_existing=True))).scalars())
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
    done: list[tuple[RouteCandidate, tuple[str, ...], int | None, int | None]] = []
    for service_id, off_rows in by_service.items():
        for row in off_rows:
            _record(session, switch.id, row)
            row.enabled = False
            row.switched_by_id = switch.id
            changed += 1
            done.append((row, ("disable",), None, None))
        if onto_provider is not None:
            changed += await _promote(session, switch.id, service_id, onto_provider.id, off_rows, done)
    switch.candidates_changed = changed
    await session.flush()

    services = await _service_codes(session, set(by_service))
    target = f" onto {onto!r}" if onto is not None else ""
    message = (
        f"switched {len(services)} service(s) off {off!r}{target}: {changed} route candidate(s) changed "
        f"(switch #{switch.id}; undo with switch back)"
    )
    log.info("route switch #%s by %s: %s", switch.id, actor, message)
    return SwitchResult(switch.id, changed, services, message, await _describe(session, done))


async def _promote(
    session: AsyncSession,
    switch_id: int,
    service_id: int,
    onto_id: int,
    off_rows: list[RouteCandidate],
    done: list[tuple[RouteCandidate, tuple[str, ...], int | None, int | None]],
) -> int:
    """Make ``onto`` an enabled candidate with the switched-off priority (each change recorded and
    added to ``done``); the number of rows changed."""
    target = min(r.priority for r in off_rows)
    query = select(RouteCandidate).where(
        RouteCandidate.service_id == service_id, RouteCandidate.provider_id == onto_id
    )
    onto_rows = list((await session.execute(query.order_by(RouteCandidate.id))).scalars())
    changed = 0
    for row in onto_rows:
        actions: list[str] = []
        if not row.enabled:
            actions.append("enable")
        if row.priority > target:
            actions.append("priority")
        if actions:
            before = row.priority
            _record(session, switch_id, row)
            row.enabled = True
            row.priority = min(row.priority, target)
            row.switched_by_id = switch_id
            changed += 1
            moved = "priority" in actions
            done.append((row, tuple(actions), before if moved else None, target if moved else None))
    if onto_rows:
        return changed
    for off_row in off_rows:
        added = RouteCandidate(
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
        session.add(added)
        await session.flush()
        _record(session, switch_id, added, added=True)
        done.append((added, ("add",), None, added.priority))
    return len(off_rows)


@dataclass(slots=True)
class SwitchBackPlan:
    """What switching back ``switch_id`` will do: ``undo`` the switch's changes still in place, and
    leave the candidates changed since (``kept``: as they are now)."""

    switch_id: int
    undo: list[tuple[RouteCandidate, RouteSwitchChange | None]]
    kept: list[RouteCandidate]
    recorded: bool  # False: a switch made before changes were recorded (only re-enables)

    @property
    def changed(self) -> bool:
        return bool(self.undo)


async def plan_switch_back(session: AsyncSession, switch_id: int) -> SwitchBackPlan:
    """What :func:`switch_back` will do, without changing anything."""
    changes = list(
        (
            await session.execute(
                select(RouteSwitchChange)
                .where(RouteSwitchChange.switch_id == switch_id)
                .order_by(RouteSwitchChange.id)
            )
        ).scalars()
    )
    if not changes:  # a switch recorded before its changes were: its marked, disabled candidates
        query = select(RouteCandidate).where(RouteCandidate.switched_by_id == switch_id)
        query = query.order_by(RouteCandidate.id).execution_options(populate_existing=True)
        marked = list((await session.execute(query)).scalars())
        return SwitchBackPlan(
            switch_id, [(r, None) for r in marked if not r.enabled], [r for r in marked if r.enabled], False
        )
    ids = [c.candidate_id for c in changes]
    query = select(RouteCandidate).where(RouteCandidate.id.in_(ids)).execution_options(populate_existing=True)
    rows = {r.id: r for r in (await session.execute(query)).scalars()}
    undo: list[tuple[RouteCandidate, RouteSwitchChange | None]] = []
    kept: list[RouteCandidate] = []
    for change in changes:
        row = rows.get(change.candidate_id)
        if row is None:
            continue  # removed since (the catalog file): nothing to restore
        if row.switched_by_id == switch_id:
            undo.append((row, change))
        else:
            kept.append(row)  # changed since the switch: left as it is now
    return SwitchBackPlan(switch_id, undo, kept, True)


def _undo_actions(row: RouteCandidate, change: RouteSwitchChange | None) -> tuple[str, ...]:
    if change is None:
        return ("enable",)
    if change.added:
        return ("remove",)
    actions = []
    if row.enabled != change.was_enabled:
        actions.append("enable" if change.was_enabled else "disable")
    if row.priority != change.was_priority:
        actions.append("priority")
    return tuple(actions)


async def describe_switch_back(session: AsyncSession, plan: SwitchBackPlan) -> list[CandidateChange]:
    """The changes switching back will make, named by codes."""
    return await _describe(
        session,
        [
            (
                row,
                _undo_actions(row, change),
                row.priority if change is not None and row.priority != change.was_priority else None,
                change.was_priority if change is not None and row.priority != change.was_priority else None,
            )
            for row, change in plan.undo
        ],
    )


async def switch_back(session: AsyncSession, switch_id: int, actor: str) -> SwitchResult:
    """Undo what switch ``switch_id`` changed and is still in place (see :func:`plan_switch_back`).

    The switch is locked first: two switch-backs at once run one after the other, and the second
    finds nothing left to undo (it does not report the first one's changes as its own)."""
    switch = await locked(session, RouteSwitch, switch_id, key_share=True)
    if switch is None:
        raise CatalogError(f"unknown route switch #{switch_id}")
    plan = await plan_switch_back(session, switch_id)
    changes = await describe_switch_back(session, plan)
    for row, change in plan.undo:
        if change is None:
            row.enabled = True
            row.switched_by_id = None
        elif change.added:
            await session.delete(row)
        else:
            row.enabled = change.was_enabled
            row.priority = change.was_priority
            row.switched_by_id = change.was_switched_by_id
    if not plan.recorded:  # the old way: the switch's marks go, onto's candidates stay as they are
        for row in plan.kept:
            row.switched_by_id = None
    await session.execute(delete(RouteSwitchChange).where(RouteSwitchChange.switch_id == switch_id))
    await session.flush()
    if not plan.undo:
        return SwitchResult(switch_id, 0, [], f"nothing to change: switch #{switch_id} has nothing to undo")
    services = sorted({c.service for c in changes})
    message = (
        f"switched back #{switch_id}: restored {len(plan.undo)} route candidate(s) of "
        f"{len(services)} service(s)"
    )
    if plan.kept:
        message += f"; {len(plan.kept)} changed since the switch left as they are"
    log.info("route switch #%s undone by %s: %s", switch_id, actor, message)
    return SwitchResult(switch_id, len(plan.undo), services, message, changes)


async def list_switches(session: AsyncSession, limit: int = 100) -> list[RouteSwitch]:
    """The most recent switches first."""
    query = select(RouteSwitch).order_by(RouteSwitch.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())
