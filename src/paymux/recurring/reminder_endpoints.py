"""Channel API: the customer's actions on a hidden-subscription reminder.

The token is the one the reminder's notice carried (``actions[].token``); the channel calling must
belong to the agent whose customer was reminded. Every action is idempotent: a second call answers
the same (the same repeat payment, the same subscription).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from paymux.api.deps import ChannelDep, HubDep
from paymux.catalog.snapshot import ChannelView
from paymux.errors import not_found
from paymux.recurring import reminders
from paymux.runtime import Hub

router = APIRouter(prefix="/api/v1/reminders", tags=["channel"])

Token = Annotated[
    str, Path(min_length=1, max_length=200, description="the token the reminder's notice carried")
]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid key or signature (problem+json)"},
    403: {"description": "channel disabled (problem+json)"},
    404: {"description": "no reminder with this token for the channel's agent (problem+json)"},
    410: {"description": "the reminder's actions expired unused (problem+json)"},
}


class ReminderActionOut(BaseModel):
    reminder_id: int
    action: str = Field(description="repeat, subscribe or opt_out")
    status: str = Field(description="the reminder's status: repeated, subscribed, opted_out...")
    payment_id: int | None = Field(None, description="the repeat payment (repeat and subscribe)")
    subscription_id: int | None = Field(None, description="the scheduled subscription (subscribe)")
    reminders: bool = Field(description="whether the customer still gets reminders")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "reminder_id": 17,
                    "action": "subscribe",
                    "status": "subscribed",
                    "payment_id": 90210,
                    "subscription_id": 44,
                    "reminders": True,
                }
            ]
        }
    }


async def _act(action: reminders.ActionName, token: str, channel: ChannelView, hub: Hub) -> ReminderActionOut:
    if channel.agent_id is None:
        raise not_found("reminder")
    # the repeat payment is accepted in a transaction of its own before the reminder's is opened
    result = await reminders.perform(hub, action, token, agent_id=channel.agent_id)
    return ReminderActionOut(
        reminder_id=result.reminder_id,
        action=result.action,
        status=result.status,
        payment_id=result.payment_id,
        subscription_id=result.subscription_id,
        reminders=result.reminders,
    )


@router.post(
    "/{token}/repeat",
    response_model=ReminderActionOut,
    responses={**PROBLEMS, 503: {"description": "no provider can take the payment now"}},
)
async def repeat(token: Token, channel: ChannelDep, hub: HubDep) -> ReminderActionOut:
    """Pay the reminded payment again now (once: a second call answers the same payment)."""
    return await _act("repeat", token, channel, hub)


@router.post(
    "/{token}/subscribe",
    response_model=ReminderActionOut,
    responses={**PROBLEMS, 503: {"description": "no provider can take the payment now"}},
)
async def subscribe(token: Token, channel: ChannelDep, hub: HubDep) -> ReminderActionOut:
    """Pay again now and subscribe: a template and a scheduled subscription every period."""
    return await _act("subscribe", token, channel, hub)


@router.post("/{token}/opt-out", response_model=ReminderActionOut, responses=PROBLEMS)
async def opt_out(token: Token, channel: ChannelDep, hub: HubDep) -> ReminderActionOut:
    """Stop these reminders for the customer."""
    return await _act("opt_out", token, channel, hub)
