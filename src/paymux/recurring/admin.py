"""Admin API of recurring payments: agents' settings, customers, subscriptions and their runs, and
pausing, resuming or cancelling a subscription for a customer (with a reason, audited).

``recurring.read`` reads, ``recurring.manage`` pauses / resumes / cancels, ``recurring.configure``
changes an agent's settings (``paymux.auth.permissions``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.api.deps import HubDep, ReadSessionDep, SessionDep
from paymux.api.params import Id, Ident
from paymux.auth import permissions as P
from paymux.auth.admin_api import require_api
from paymux.auth.principal import Principal
from paymux.db.base import utcnow
from paymux.recurring import admin_service, service
from paymux.recurring.models import Subscription
from paymux.recurring.schemas import (
    AdminCustomerDetailOut,
    AdminCustomerOut,
    AdminReasonIn,
    AdminSubscriptionOut,
    AgentSettingsIn,
    AgentSettingsOut,
    RunAdminPageOut,
)

router = APIRouter(prefix="/api/v1/admin/recurring", tags=["recurring admin"])

Reader = Annotated[Principal, Depends(require_api(P.RECURRING_READ))]
Manager = Annotated[Principal, Depends(require_api(P.RECURRING_MANAGE))]
Configurer = Annotated[Principal, Depends(require_api(P.RECURRING_CONFIGURE))]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid token (problem+json)"},
    403: {"description": "the token's user lacks the permission (problem+json)"},
    404: {"description": "not found (problem+json)"},
    422: {"description": "invalid request (problem+json)"},
}
STATE: dict[int | str, dict[str, Any]] = {
    409: {"description": "not possible in the subscription's status (problem+json)"}
}
Filter = Annotated[Ident, Query(min_length=1, max_length=64)]


@router.get(
    "/agents", response_model=list[AgentSettingsOut], summary="Agents' recurring settings", responses=PROBLEMS
)
async def list_agents(_: Reader, session: ReadSessionDep) -> list[AgentSettingsOut]:
    """Every agent's recurring settings (funding secrets masked)."""
    return await admin_service.list_settings(session)


@router.get(
    "/agents/{code}",
    response_model=AgentSettingsOut,
    summary="An agent's recurring settings",
    responses=PROBLEMS,
)
async def get_agent(code: str, _: Reader, session: ReadSessionDep) -> AgentSettingsOut:
    """Funding secrets masked (``***``)."""
    agent = await admin_service.agent_by_code(session, code)
    return await admin_service.settings_out(
        session, await admin_service.get_settings(session, agent), agent.code
    )


@router.put(
    "/agents/{code}",
    response_model=AgentSettingsOut,
    summary="Configure an agent's recurring payments",
    responses={201: {"model": AgentSettingsOut, "description": "created"}, **PROBLEMS},
)
async def put_agent(
    code: str, body: AgentSettingsIn, me: Configurer, session: SessionDep, response: Response
) -> AgentSettingsOut:
    """The channel (of the agent) runs are paid under, the funding source plug-in (an entry point of
    ``paymux.funding``) and its configuration (checked by the plug-in; ``***`` keeps a stored secret),
    how long before a charge the customer is told, how late a missed run may still run. Audited."""
    agent = await admin_service.agent_by_code(session, code)
    row, created = await admin_service.put_settings(session, agent, body, me)
    await session.commit()
    response.status_code = 201 if created else 200
    return await admin_service.settings_out(session, row, agent.code)


@router.get(
    "/customers",
    response_model=list[AdminCustomerOut],
    summary="Find customers",
    responses=PROBLEMS,
)
async def find_customers(
    _: Reader,
    session: ReadSessionDep,
    agent: Filter | None = None,
    reference: Filter | None = None,
    phone: Annotated[Ident, Query(min_length=1, max_length=16)] | None = None,
    account: Filter | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[AdminCustomerOut]:
    """By the agent's reference, phone (E.164) or an account of their templates; newest first."""
    return await admin_service.find_customers(
        session, agent=agent, reference=reference, phone=phone, account=account, limit=limit
    )


async def _subs_out(
    session: AsyncSession, hub: Any, subs: list[Subscription], customer: Any, code: str
) -> list[AdminSubscriptionOut]:
    snap = await hub.catalog.get()
    outs = await service.subscriptions_out(session, subs, customer, snap)
    return [
        AdminSubscriptionOut(
            **o.model_dump(), customer_id=customer.id, customer_reference=customer.reference, agent=code
        )
        for o in outs
    ]


@router.get(
    "/customers/{customer_id}",
    response_model=AdminCustomerDetailOut,
    summary="A customer with templates and subscriptions",
    responses=PROBLEMS,
)
async def get_customer(
    customer_id: Id, _: Reader, hub: HubDep, session: ReadSessionDep
) -> AdminCustomerDetailOut:
    customer, code = await admin_service.customer_by_id(session, customer_id)
    snap = await hub.catalog.get()
    subs = list(await admin_service.customer_subscriptions(session, customer))
    templates = await admin_service.customer_templates(session, customer)
    return AdminCustomerDetailOut(
        customer=admin_service.customer_admin_out(customer, code),
        templates=[service.template_out(t, snap) for t in templates],
        subscriptions=await _subs_out(session, hub, subs, customer, code),
    )


@router.get(
    "/subscriptions/{subscription_id}",
    response_model=AdminSubscriptionOut,
    summary="A subscription",
    responses=PROBLEMS,
)
async def get_subscription(
    subscription_id: Id, _: Reader, hub: HubDep, session: ReadSessionDep
) -> AdminSubscriptionOut:
    sub, customer, code = await admin_service.subscription_by_id(session, subscription_id)
    return (await _subs_out(session, hub, [sub], customer, code))[0]


@router.get(
    "/subscriptions/{subscription_id}/runs",
    response_model=RunAdminPageOut,
    summary="A subscription's runs with their debits and refunds",
    responses=PROBLEMS,
)
async def subscription_runs(
    subscription_id: Id,
    _: Reader,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Id | None = None,
) -> RunAdminPageOut:
    """Newest first; ``next_before_id`` pages on."""
    sub, _customer, _code = await admin_service.subscription_by_id(session, subscription_id)
    page = await service.runs_page(session, sub, limit, before_id)
    return RunAdminPageOut(
        items=[service.run_admin_out(r) for r in page.rows], next_before_id=page.next_before_id
    )


async def _act(
    action: Literal["pause", "resume", "cancel"],
    subscription_id: int,
    body: AdminReasonIn,
    me: Principal,
    hub: Any,
    session: AsyncSession,
) -> AdminSubscriptionOut:
    sub, customer, code = await admin_service.act(session, subscription_id, action, body.reason, me, utcnow())
    await session.commit()
    return (await _subs_out(session, hub, [sub], customer, code))[0]


@router.post(
    "/subscriptions/{subscription_id}/pause",
    response_model=AdminSubscriptionOut,
    summary="Pause a customer's subscription",
    responses={**STATE, **PROBLEMS},
)
async def pause_subscription(
    subscription_id: Id, body: AdminReasonIn, me: Manager, hub: HubDep, session: SessionDep
) -> AdminSubscriptionOut:
    """With a reason (audited); pausing a paused one changes nothing."""
    return await _act("pause", subscription_id, body, me, hub, session)


@router.post(
    "/subscriptions/{subscription_id}/resume",
    response_model=AdminSubscriptionOut,
    summary="Resume a customer's paused subscription",
    responses={**STATE, **PROBLEMS},
)
async def resume_subscription(
    subscription_id: Id, body: AdminReasonIn, me: Manager, hub: HubDep, session: SessionDep
) -> AdminSubscriptionOut:
    """With a reason (audited); the next look is computed from now (no charges for the pause)."""
    return await _act("resume", subscription_id, body, me, hub, session)


@router.post(
    "/subscriptions/{subscription_id}/cancel",
    response_model=AdminSubscriptionOut,
    summary="Cancel a customer's subscription",
    responses={**STATE, **PROBLEMS},
)
async def cancel_subscription(
    subscription_id: Id, body: AdminReasonIn, me: Manager, hub: HubDep, session: SessionDep
) -> AdminSubscriptionOut:
    """For good, with a reason (audited)."""
    return await _act("cancel", subscription_id, body, me, hub, session)
