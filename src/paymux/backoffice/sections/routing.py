"""Routing: every service's route (candidates, strategy, criteria) with its providers' health, and the
one-click switch of a service (or all) off a provider, through a confirmation page, audited.

The confirmation page runs the switch in a transaction that is rolled back, so it shows exactly what
confirming will change. Payments queued on the switched-off provider and never sent there are moved
by the workers before their next attempt (``payments.processing``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.api.params import Id
from paymux.auth import permissions as P
from paymux.auth.principal import Principal
from paymux.backoffice.framework import (
    PROVIDERS,
    DbDep,
    MenuEntry,
    PageNotFound,
    ReadDbDep,
    Section,
    redirect,
    register,
    render,
    require,
    require_before_reading,
    section_router,
)
from paymux.backoffice.listing import Column, Filter, ListSpec, respond
from paymux.backoffice.sections.dashboard import provider_states
from paymux.backoffice.sections.ops import YES_NO, code_choices, codes_by_id, money_for, yes_no
from paymux.catalog.models import ChannelGroup, Provider, Service
from paymux.catalog.service import CatalogError, get_provider
from paymux.money import format_amount
from paymux.payments.models import FINAL_STATUSES, Payment
from paymux.routing.models import RouteCandidate, RouteSwitch
from paymux.routing.switch import (
    SwitchResult,
    describe_switch_back,
    list_switches,
    plan_switch_back,
    switch_back,
    switch_provider,
)
from paymux.runtime import Hub

router = section_router()
register(
    Section(
        "routing",
        router,
        menu=(MenuEntry("Routing", "/backoffice/routing", P.ROUTING_READ, 31, area=PROVIDERS),),
        permissions=(P.ROUTING_READ, P.ROUTING_WRITE),
    )
)

Reader = Annotated[Principal, Depends(require_before_reading(P.ROUTING_READ))]
Writer = Annotated[Principal, Depends(require(P.ROUTING_WRITE))]


def _amount(minor: int | None, currency: str) -> str:
    return "" if minor is None else format_amount(minor, currency)


def _code_filter(model: Any, column: Any) -> Any:
    return lambda q, v: q.where(column.in_(select(model.id).where(model.code == v)))


async def _spec(session: AsyncSession) -> ListSpec:
    return ListSpec(
        query=select(
            RouteCandidate,
            Service.code.label("service"),
            Service.currency.label("currency"),
            Service.strategy.label("strategy"),
            Provider.code.label("provider"),
            ChannelGroup.code.label("channel_group"),
        )
        .join(Service, Service.id == RouteCandidate.service_id)
        .join(Provider, Provider.id == RouteCandidate.provider_id)
        .outerjoin(ChannelGroup, ChannelGroup.id == RouteCandidate.channel_group_id),
        columns=[
            Column("service", "Service", Service.code, lambda r: r.service),
            Column("strategy", "Strategy", Service.strategy, lambda r: r.strategy),
            Column("priority", "Priority", RouteCandidate.priority, lambda r: r[0].priority),
            Column("provider", "Provider", Provider.code, lambda r: r.provider),
            Column("code", "Provider's code", None, lambda r: r[0].provider_service_code),
            Column("weight", "Weight", RouteCandidate.weight, lambda r: r[0].weight),
            Column("min", "Amount from", None, lambda r: _amount(r[0].min_amount, r.currency)),
            Column("max", "Amount to", None, lambda r: _amount(r[0].max_amount, r.currency)),
            Column("channel_group", "Channel group", None, lambda r: r.channel_group),
            Column(
                "hours",
                "Hours",
                None,
                lambda r: f"{r[0].hours_from}-{r[0].hours_to}" if r[0].hours_from else "",
            ),
            Column("enabled", "Enabled", RouteCandidate.enabled, lambda r: r[0].enabled),
            Column("switched_by", "Switch", None, lambda r: r[0].switched_by_id),
        ],
        search=[Service.code, Provider.code, RouteCandidate.provider_service_code],
        filters=[
            Filter(
                "service",
                "Service",
                _code_filter(Service, RouteCandidate.service_id),
                await code_choices(session, Service),
            ),
            Filter(
                "provider",
                "Provider",
                _code_filter(Provider, RouteCandidate.provider_id),
                await code_choices(session, Provider),
            ),
            Filter("enabled", "Enabled", yes_no(RouteCandidate.enabled), YES_NO),
        ],
        default_sort="service",
        default_desc=False,
        page_size=50,
        sheet="routes",
    )


@router.get("/routing")
async def routing(request: Request, session: ReadDbDep, _: Reader) -> Response:
    hub: Hub = request.app.state.hub
    spec = await _spec(session)
    page = await spec.run(session, request)
    if not page.export and not request.query_params.get("sort"):
        page.rows.sort(key=lambda r: (r.service, r[0].priority, r[0].id))
    return respond(
        request,
        page,
        "routing/index.html",
        providers=await provider_states(hub),
        switches=await list_switches(session, 20),
        codes=await codes_by_id(session),
        money=money_for(request),
    )


async def _form_choices(session: AsyncSession) -> dict[str, Any]:
    return {
        "providers": await code_choices(session, Provider),
        "services": await code_choices(session, Service),
    }


@router.get("/routing/switch")
async def switch_form(request: Request, session: DbDep, _: Writer) -> Response:
    q = request.query_params
    form = {"off": q.get("off", ""), "onto": q.get("onto", ""), "service": q.get("service", "")}
    return render(request, "routing/switch.html", form=form, error="", **await _form_choices(session))


async def _queued(session: AsyncSession, off: str, services: list[str]) -> int:
    """Unfinished payments on ``off`` for ``services`` that were never sent there (they will move)."""
    if not services:
        return 0
    provider = await get_provider(session, off)
    q = (
        select(func.count())
        .select_from(Payment)
        .join(Service, Service.id == Payment.service_id)
        .where(
            Payment.provider_id == provider.id,
            Payment.status.not_in(FINAL_STATUSES),
            Payment.in_doubt.is_(False),
            Service.code.in_(services),
        )
    )
    return int(await session.scalar(q) or 0)


@router.post("/routing/switch/confirm")
async def switch_confirm(
    request: Request,
    session: DbDep,
    me: Writer,
    off: Annotated[str, Form()] = "",
    onto: Annotated[str, Form()] = "",
    service: Annotated[str, Form()] = "",
) -> Response:
    """What the switch would do (computed in a transaction that is rolled back)."""
    form = {"off": off, "onto": onto, "service": service}
    try:
        if not off:
            raise CatalogError("Choose the provider to switch off.")
        preview = await switch_provider(session, off, onto or None, service or None, me.audit_name)
        queued = await _queued(session, off, preview.services)
    except CatalogError as e:
        await session.rollback()
        return render(
            request, "routing/switch.html", 422, form=form, error=str(e), **await _form_choices(session)
        )
    await session.rollback()
    return render(request, "routing/confirm.html", form=form, preview=preview, queued=queued)


@router.post("/routing/switch")
async def switch_do(
    request: Request,
    session: DbDep,
    me: Writer,
    off: Annotated[str, Form()] = "",
    onto: Annotated[str, Form()] = "",
    service: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    hub: Hub = request.app.state.hub
    form = {"off": off, "onto": onto, "service": service}
    if confirm != "yes":
        return render(
            request,
            "routing/switch.html",
            422,
            form=form,
            error="Confirm the switch on the confirmation page.",
            **await _form_choices(session),
        )
    try:
        result = await switch_provider(session, off, onto or None, service or None, me.audit_name)
        queued = await _queued(session, off, result.services)
    except CatalogError as e:
        await session.rollback()
        return render(
            request, "routing/switch.html", 422, form=form, error=str(e), **await _form_choices(session)
        )
    if result.changed:
        await audit.record(
            session,
            me,
            "routing.switch",
            f"provider:{off}",
            None,
            {**form, **_state(result), "queued": queued},
        )
    await session.commit()
    hub.catalog_changed()
    hub.work_due()  # queued payments are moved off the provider when next taken
    return redirect("/backoffice/routing", result.message if not result.changed else "The switch was made.")


def _state(r: SwitchResult) -> dict[str, Any]:
    return {
        "switch_id": r.switch_id,
        "candidates_changed": r.candidates_changed,
        "services": r.services,
        "changes": [c.as_dict() for c in r.changes],
    }


async def _switch(session: AsyncSession, switch_id: int) -> RouteSwitch:
    row = await session.get(RouteSwitch, switch_id)
    if row is None:
        raise PageNotFound()
    return row


@router.get("/routing/switches/{switch_id}/revert")
async def revert_confirm(request: Request, switch_id: Id, session: DbDep, _: Writer) -> Response:
    row = await _switch(session, switch_id)
    plan = await plan_switch_back(session, switch_id)
    return render(
        request,
        "routing/revert.html",
        s=row,
        changes=await describe_switch_back(session, plan),
        kept=plan.kept,
        recorded=plan.recorded,
        codes=await codes_by_id(session),
    )


@router.post("/routing/switches/{switch_id}/revert")
async def revert_do(request: Request, switch_id: Id, session: DbDep, me: Writer) -> Response:
    hub: Hub = request.app.state.hub
    await _switch(session, switch_id)
    result = await switch_back(session, switch_id, me.audit_name)
    if result.changed:
        await audit.record(session, me, "routing.switch_back", f"switch:{switch_id}", None, _state(result))
    await session.commit()
    hub.catalog_changed()
    return redirect("/backoffice/routing", "The switch was undone." if result.changed else result.message)
