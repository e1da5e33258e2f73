"""The operator's side of recurring payments: an agent's settings (its channel and funding source),
finding customers, and pausing or cancelling their subscriptions with a reason (audited).

Services never commit: the route does. Every read of a funding configuration masks its secrets
(the plug-in's ``secret_keys`` and names that look secret); writing the mask back keeps the stored
secret (``paymux.masking.keep_secrets``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux import audit
from paymux.api.params import CONTROL
from paymux.auth.principal import Principal
from paymux.catalog.models import Agent, Channel
from paymux.errors import Problem, invalid, not_found
from paymux.funding.base import FundingSource, UnknownFundingSource, source_class, source_names
from paymux.masking import MaskedSecretError, keep_secrets, mask_secrets
from paymux.recurring import service
from paymux.recurring.models import Customer, RecurringAgent, Subscription, Template
from paymux.recurring.schemas import AdminCustomerOut, AgentSettingsIn, AgentSettingsOut

MAX_CONFIG_DEPTH = 8


async def agent_by_code(session: AsyncSession, code: str) -> Agent:
    agent = await session.scalar(select(Agent).where(Agent.code == code))
    if agent is None:
        raise not_found(f"agent {code!r}")
    return agent


def _funding_class(name: str) -> type[FundingSource] | None:
    try:
        return source_class(name)
    except UnknownFundingSource:
        return None


def masked_config(protocol: str, config: dict[str, Any]) -> dict[str, Any]:
    cls = _funding_class(protocol)
    if cls is not None:
        return cls.masked_config(config)
    masked: dict[str, Any] = mask_secrets(config)
    return masked


def _config_problems(value: Any, path: str = "funding_config", depth: int = 0) -> list[str]:
    """Text the database could not store or nobody should (control characters), too deep nesting."""
    if depth > MAX_CONFIG_DEPTH:
        return [f"{path}: nested too deep"]
    if isinstance(value, str):
        return [f"{path}: control characters are not allowed"] if CONTROL.search(value) else []
    if isinstance(value, dict):
        bad_keys = [
            f"{path}: control characters are not allowed in names" for k in value if CONTROL.search(str(k))
        ]
        return bad_keys[:1] + [
            p for k, v in value.items() for p in _config_problems(v, f"{path}.{k!r}", depth + 1)
        ]
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{path}: numbers must be finite"]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _config_problems(v, f"{path}[{i}]", depth + 1)]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63 - 1:
        return [f"{path}: number out of range"]
    return []


async def get_settings(session: AsyncSession, agent: Agent) -> RecurringAgent:
    row = await session.get(RecurringAgent, agent.id)
    if row is None:
        raise not_found(f"recurring settings of agent {agent.code!r}")
    return row


async def put_settings(
    session: AsyncSession, agent: Agent, body: AgentSettingsIn, actor: Principal
) -> tuple[RecurringAgent, bool]:
    """Create or replace the agent's settings (validated, audited); (row, created)."""
    channel = await session.scalar(select(Channel).where(Channel.code == body.channel))
    if channel is None or channel.agent_id != agent.id:
        raise invalid("invalid-channel", f"agent {agent.code} has no channel {body.channel!r}")
    cls = _funding_class(body.funding_protocol)
    if cls is None:
        known = ", ".join(source_names()) or "none installed"
        raise invalid(
            "unknown-funding-source", f"no funding source plug-in {body.funding_protocol!r} (known: {known})"
        )
    problems = _config_problems(body.funding_config)
    if problems:
        raise invalid("invalid-funding-config", "; ".join(problems))
    row = await session.get(RecurringAgent, agent.id)
    stored = row.funding_config if row is not None and row.funding_protocol == body.funding_protocol else {}
    try:
        config = keep_secrets(body.funding_config, stored, cls.secret_keys, "funding_config")
    except MaskedSecretError as e:
        raise invalid("masked-secret", str(e)) from None
    try:
        problems = cls.validate_config(config)
    except Exception as e:  # a plug-in's check that trips over a value of an unexpected type
        problems = [f"the configuration cannot be read ({type(e).__name__})"]
    if problems:
        raise invalid("invalid-funding-config", "; ".join(problems))
    before = None
    if row is not None:
        old_channel = await session.get(Channel, row.channel_id)
        before = settings_view(row, agent.code, old_channel.code if old_channel is not None else None)
    created = row is None
    if row is None:
        row = RecurringAgent(agent_id=agent.id)
        session.add(row)
    row.channel_id = channel.id
    row.funding_protocol = body.funding_protocol
    row.funding_config = config
    row.upcoming_lead_hours = body.upcoming_lead_hours
    row.catch_up_hours = body.catch_up_hours
    row.enabled = body.enabled
    row.updated_at = dt.datetime.now(dt.UTC)
    await session.flush()
    after = settings_view(row, agent.code, channel.code)
    await audit.record(session, actor, "recurring.agent.configure", f"agent:{agent.code}", before, after)
    return row, created


def settings_view(row: RecurringAgent, agent_code: str, channel_code: str | None) -> dict[str, Any]:
    return {
        "agent": agent_code,
        "channel": channel_code if channel_code is not None else str(row.channel_id),
        "funding_protocol": row.funding_protocol,
        "funding_config": masked_config(row.funding_protocol, row.funding_config or {}),
        "upcoming_lead_hours": row.upcoming_lead_hours,
        "catch_up_hours": row.catch_up_hours,
        "enabled": row.enabled,
    }


async def settings_out(session: AsyncSession, row: RecurringAgent, agent_code: str) -> AgentSettingsOut:
    channel = await session.get(Channel, row.channel_id)
    view = settings_view(row, agent_code, channel.code if channel is not None else str(row.channel_id))
    return AgentSettingsOut(**view, updated_at=row.updated_at)


async def list_settings(session: AsyncSession) -> list[AgentSettingsOut]:
    rows = (
        await session.execute(
            select(RecurringAgent, Agent.code)
            .join(Agent, Agent.id == RecurringAgent.agent_id)
            .order_by(Agent.code)
        )
    ).all()
    return [await settings_out(session, row, code) for row, code in rows]


# --- customers and their subscriptions --------------------------------------------------------------------


async def find_customers(
    session: AsyncSession,
    *,
    agent: str | None = None,
    reference: str | None = None,
    phone: str | None = None,
    account: str | None = None,
    limit: int = 50,
) -> list[AdminCustomerOut]:
    """Customers by the agent's reference, phone (exact) or an account of their templates."""
    q = select(Customer, Agent.code).join(Agent, Agent.id == Customer.agent_id)
    if agent is not None:
        q = q.where(Agent.code == agent)
    if reference is not None:
        q = q.where(Customer.reference == reference)
    if phone is not None:
        # "+" in a query string reads as a space when it was not percent-encoded
        q = q.where(or_(Customer.phone == phone, Customer.phone == "+" + phone.strip().lstrip("+")))
    if account is not None:
        q = q.where(Customer.id.in_(select(Template.customer_id).where(Template.account == account)))
    rows = (await session.execute(q.order_by(Customer.id.desc()).limit(limit))).all()
    return [customer_admin_out(c, code) for c, code in rows]


def customer_admin_out(c: Customer, agent_code: str) -> AdminCustomerOut:
    return AdminCustomerOut(**service.customer_out(c).model_dump(), id=c.id, agent=agent_code)


async def customer_by_id(session: AsyncSession, customer_id: int) -> tuple[Customer, str]:
    row = (
        await session.execute(
            select(Customer, Agent.code)
            .join(Agent, Agent.id == Customer.agent_id)
            .where(Customer.id == customer_id)
        )
    ).first()
    if row is None:
        raise not_found(f"customer {customer_id}")
    return row[0], row[1]


async def subscription_by_id(
    session: AsyncSession, subscription_id: int
) -> tuple[Subscription, Customer, str]:
    sub = await session.get(Subscription, subscription_id)
    if sub is None:
        raise not_found(f"subscription {subscription_id}")
    customer, code = await customer_by_id(session, sub.customer_id)
    return sub, customer, code


def _state(sub: Subscription) -> dict[str, Any]:
    return {"status": sub.status, "status_reason": sub.status_reason, "next_due_at": sub.next_due_at}


async def act(
    session: AsyncSession,
    subscription_id: int,
    action: str,
    reason: str,
    actor: Principal,
    now: dt.datetime,
) -> tuple[Subscription, Customer, str]:
    """Pause, resume or cancel a customer's subscription for them, with a reason; audited when it
    changed anything (the same action again changes nothing and records nothing)."""
    sub, customer, code = await subscription_by_id(session, subscription_id)
    before = _state(sub)
    if action == "pause":
        changed = await service.pause(session, sub, reason)
    elif action == "resume":
        changed = await service.resume(session, customer, sub, now)
    elif action == "cancel":
        changed = await service.cancel(session, sub, reason)
    else:  # pragma: no cover - the routes name the action
        raise Problem(404, "not-found", "Not found", f"no action {action}")
    if changed:
        await audit.record(
            session,
            actor,
            f"recurring.subscription.{action}",
            f"subscription:{sub.id} customer:{code}/{customer.reference}",
            before,
            {**_state(sub), "reason": reason},
        )
    return sub, customer, code


async def customer_subscriptions(session: AsyncSession, customer: Customer) -> Sequence[Subscription]:
    return await service.list_subscriptions(session, customer)


async def customer_templates(session: AsyncSession, customer: Customer) -> Sequence[Template]:
    return (
        await session.scalars(
            select(Template).where(Template.customer_id == customer.id).order_by(Template.id)
        )
    ).all()
