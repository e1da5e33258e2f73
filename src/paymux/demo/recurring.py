"""The demo's recurring payments: the bank's core system (the bank emulator) as the funding source of
the agent ``bank``, and its customers with subscriptions of every kind:

- Ana: a phone topped up monthly on day 31 (the month's last day), a phone topped up when its balance
  at the provider falls below 50.00 (the emulators report 12.50), a TV subscription weekly;
- Boris: electricity paid when the provider reports a debt (1,843.27, under his limit of 5,000.00);
- Chen: water every 14 days from an account with little money (the bank refuses: insufficient funds);
- Dara: electricity debt above her limit (she is asked to confirm).

Seeding is idempotent (customers by reference, templates and subscriptions by key).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.models import Agent, Channel, Service
from paymux.db.base import utcnow
from paymux.funding.emulator import BankAccount, BankConfig
from paymux.recurring.models import Customer, RecurringAgent, Subscription, Template
from paymux.recurring.planning import first_look

AGENT = "bank"
CHANNEL = "ibank"  # the channel under which the runs' payments are accepted
BANK_PORT = 8107
BANK_TOKEN = "demo-bank-token-change-me"

# the customers' accounts at the bank (decimal strings in RUB)
BANK_ACCOUNTS = {
    "40817810000000000001": "150000.00",
    "40817810000000000002": "80000.00",
    "40817810000000000003": "40.00",  # too little for anything
    "40817810000000000004": "250000.00",
}


def bank_config() -> BankConfig:
    """The emulated bank: the demo customers' accounts, a bearer token, no faults."""
    return BankConfig(
        accounts={k: BankAccount(currency="RUB", balance=v) for k, v in BANK_ACCOUNTS.items()},
        token=BANK_TOKEN,
        reference_prefix="CORE-",
    )


@dataclass(frozen=True)
class DemoCustomer:
    reference: str
    name: str
    phone: str
    email: str
    language: str
    timezone: str
    funding_account: str
    month_limit: int | None  # minor units


CUSTOMERS = (
    DemoCustomer(
        "C-1001",
        "Ana Rusu",
        "+37369100001",
        "ana@example.org",
        "ro",
        "Europe/Chisinau",
        "40817810000000000001",
        3_000_000,
    ),
    DemoCustomer(
        "C-1002",
        "Boris Petrov",
        "+79160000102",
        "boris@example.org",
        "ru",
        "Europe/Moscow",
        "40817810000000000002",
        2_000_000,
    ),
    DemoCustomer(
        "C-1003",
        "Chen Li",
        "+79160000103",
        "chen@example.org",
        "en",
        "Asia/Yekaterinburg",
        "40817810000000000003",
        None,
    ),
    DemoCustomer(
        "C-1004",
        "Dara Ionescu",
        "+37369100004",
        "dara@example.org",
        "ro",
        "Europe/Chisinau",
        "40817810000000000004",
        None,
    ),
)

# (customer, key, template name, service, account, amount in minor units or None, subscription)
SUBSCRIPTIONS: tuple[tuple[str, str, str, str, str, int | None, dict[str, Any]], ...] = (
    (
        "C-1001",
        "phone-monthly",
        "My phone",
        "mts-topup",
        "9160000002",
        50_000,
        {"kind": "scheduled", "period": "monthly", "day_of_month": 31, "time_of_day": "10:00"},
    ),
    (
        "C-1001",
        "phone-low",
        "My phone when low",
        "mts-topup",
        "9160000001",
        30_000,
        {"kind": "threshold", "threshold": 5_000, "poll_seconds": 3600, "quiet_seconds": 86_400},
    ),
    (
        "C-1001",
        "tv-weekly",
        "TV",
        "tricolor-tv",
        "7001234567",
        29_900,
        {"kind": "scheduled", "period": "weekly", "weekday": 4, "time_of_day": "18:30"},
    ),
    (
        "C-1002",
        "power-debt",
        "Electricity",
        "mosenergo",
        "5000000001",
        None,
        {"kind": "debt", "period": "monthly", "day_of_month": 5, "debt_limit": 500_000},
    ),
    (
        "C-1003",
        "water-14",
        "Water",
        "mosvodokanal",
        "6000000003",
        120_000,
        {"kind": "scheduled", "period": "days", "every_days": 14},
    ),
    (
        "C-1004",
        "power-debt",
        "Electricity",
        "mosenergo",
        "5000000001",
        None,
        {"kind": "debt", "period": "monthly", "day_of_month": 5, "debt_limit": 100_000},
    ),
)


async def seed_recurring(session: AsyncSession, bank_url: str | None, now: dt.datetime | None = None) -> int:
    """The agent's recurring settings (when the bank runs at ``bank_url``) and the demo customers'
    subscriptions; returns how many subscriptions were added. Does not commit."""
    now = now or utcnow()
    agent = await session.scalar(select(Agent).where(Agent.code == AGENT))
    channel = await session.scalar(select(Channel).where(Channel.code == CHANNEL))
    if agent is None or channel is None:
        return 0
    settings = await session.get(RecurringAgent, agent.id)
    if bank_url is not None:
        config = {"url": bank_url, "token": BANK_TOKEN}
        if settings is None:
            settings = RecurringAgent(agent_id=agent.id, channel_id=channel.id, funding_protocol="jsonhttp")
            session.add(settings)
        settings.channel_id, settings.funding_config = channel.id, config
    customers: dict[str, Customer] = {}
    for c in CUSTOMERS:
        row = await session.scalar(
            select(Customer).where(Customer.agent_id == agent.id, Customer.reference == c.reference)
        )
        if row is None:
            row = Customer(
                agent_id=agent.id,
                reference=c.reference,
                name=c.name,
                phone=c.phone,
                email=c.email,
                language=c.language,
                timezone=c.timezone,
                funding_account=c.funding_account,
                currency="RUB",
                month_limit=c.month_limit,
            )
            session.add(row)
            await session.flush()
        customers[c.reference] = row
    added = 0
    for ref, key, name, service_code, account, amount, spec in SUBSCRIPTIONS:
        customer = customers[ref]
        if await session.scalar(
            select(Subscription.id).where(Subscription.customer_id == customer.id, Subscription.key == key)
        ):
            continue
        service = await session.scalar(select(Service).where(Service.code == service_code))
        if service is None:
            continue
        template = Template(
            customer_id=customer.id,
            key=key,
            name=name,
            service_id=service.id,
            account=account,
            amount=amount,
            currency=service.currency,
        )
        session.add(template)
        await session.flush()
        sub = Subscription(
            customer_id=customer.id,
            template_id=template.id,
            key=key,
            currency=service.currency,
            amount=amount,
            start_date=now.date(),
            runs_paid=0,
            **{"time_of_day": "09:00", **spec},
        )
        sub.next_due_at = first_look(sub, customer, now)
        session.add(sub)
        added += 1
    await session.flush()
    return added
