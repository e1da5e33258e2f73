"""Hidden subscriptions: a one-off payment of a periodic service is reminded one period later.

The flow:

1. A channel accepts a payment naming its customer (``PaymentIn.customer``, the agent's own
   reference) for a service with ``periodic_days`` set in the catalog. Acceptance does nothing
   more (the payment path stays as fast as it was).
2. :func:`sweep` (the background worker) walks the payments that became final since its last look
   (by ``(final_at, id)``, the partial index ``ix_payments_customer_final``) and remembers each
   *succeeded* one of a periodic service, accepted by a channel of an agent, as a :class:`Reminder`
   due ``periodic_days`` after it was paid: unless the customer opted out of reminders or already
   has an active (or paused) subscription for that service and account. A newer payment supersedes
   the older pending reminder of the same service and account.
3. :func:`send_due` sends each due reminder once: ``notify(event="reminder.repeat")`` with three
   actions (``repeat``, ``subscribe``, ``opt_out``) carrying a random token (only its SHA-256 is
   kept), unless meanwhile the customer opted out or subscribed (then it ends ``expired``).
4. The customer acts through the channel (``POST /api/v1/reminders/{token}/repeat|subscribe|opt-out``,
   :mod:`paymux.recurring.reminder_endpoints`): :func:`repeat` pays the same again (through the
   hub's pipeline, under the agent's recurring channel, external id ``reminder-<id>``),
   :func:`subscribe` repeats and saves a template and a scheduled subscription, :func:`opt_out`
   stops reminders for the customer. Every action is idempotent: a second click answers the same.
5. :func:`conversion` counts, for reminders sent in a period, how many were repeated, subscribed
   and opted out, with the rates (the back office charts it).

Nothing here commits except the worker's own transactions (:func:`sweep`, :func:`send_due`); the
actions run in the caller's session (the edge commits).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.catalog.models import Channel, Service
from paymux.db.base import utcnow
from paymux.db.concurrent import inserted, locked
from paymux.errors import Problem, not_found
from paymux.money import format_amount
from paymux.notifications.service import Action, Recipient, notify
from paymux.payments.models import Payment
from paymux.payments.schemas import PaymentIn
from paymux.recurring.models import Customer, RecurringAgent, Subscription, Template
from paymux.recurring.planning import first_look
from paymux.recurring.reminder_models import Reminder, ReminderSweep
from paymux.recurring.schedule import zone

if TYPE_CHECKING:
    from paymux.runtime import Hub

log = logging.getLogger("paymux.recurring.reminders")

EVENT = "reminder.repeat"
ACTIONS = ("repeat", "subscribe", "opt_out")
LIVE_SUBSCRIPTION = ("active", "paused")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}\Z")
SWEEP_ID = 1
SWEEP_LAG_SECONDS = 5  # payments final this recently are left to the next sweep (commit order)
SWEEP_BATCH = 500
SEND_BATCH = 100

ActionName = Literal["repeat", "subscribe", "opt_out"]


# --- notifications -------------------------------------------------------------------------------


class Notifier(Protocol):
    async def __call__(
        self,
        session: AsyncSession,
        *,
        agent_id: int,
        event: str,
        recipient: Recipient | None,
        data: dict[str, Any],
        key: str,
        actions: list[Action],
    ) -> list[int]: ...


async def notify_via_notifications(
    session: AsyncSession,
    *,
    agent_id: int,
    event: str,
    recipient: Recipient | None,
    data: dict[str, Any],
    key: str,
    actions: list[Action],
) -> list[int]:
    """Record the notices with :func:`paymux.notifications.service.notify` (webhook, SMS, e-mail)."""
    return await notify(
        session, agent_id=agent_id, event=event, recipient=recipient, data=data, key=key, actions=actions
    )


# what send_due notifies through (a test may put a recorder in its place)
NOTIFIER: Notifier = notify_via_notifications


# --- tokens ----------------------------------------------------------------------------------------


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 43 characters, 256 bits


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- remembering ----------------------------------------------------------------------------------


@dataclass(slots=True)
class SweepResult:
    seen: int = 0
    created: list[int] = field(default_factory=list)


async def _customer(session: AsyncSession, agent_id: int, reference: str) -> Customer | None:
    found: Customer | None = await session.scalar(
        select(Customer).where(Customer.agent_id == agent_id, Customer.reference == reference)
    )
    return found


async def has_subscription(
    session: AsyncSession, customer_id: int, service_id: int, account: str
) -> int | None:
    """The customer's live (active or paused) subscription for this service and account, if any."""
    sub_id: int | None = await session.scalar(
        select(Subscription.id)
        .join(Template, Template.id == Subscription.template_id)
        .where(
            Subscription.customer_id == customer_id,
            Subscription.status.in_(LIVE_SUBSCRIPTION),
            Template.service_id == service_id,
            Template.account == account,
        )
        .limit(1)
    )
    return sub_id


async def sweep(
    hub: Hub,
    *,
    now: dt.datetime | None = None,
    lag_seconds: int = SWEEP_LAG_SECONDS,
    batch: int = SWEEP_BATCH,
) -> SweepResult:
    """Remember the succeeded payments of periodic services that named a customer since the last
    sweep (one transaction per batch, committed). Sweeps of several workers take turns (the cursor
    row is locked)."""
    now = now or utcnow()
    until = now - dt.timedelta(seconds=lag_seconds)
    result = SweepResult()
    while True:
        async with hub.sessions() as session:
            cursor = await locked(session, ReminderSweep, SWEEP_ID)
            if cursor is None:
                if await inserted(
                    session, ReminderSweep(id=SWEEP_ID, final_at=None, payment_id=0, updated_at=now)
                ):
                    await session.commit()
                continue
            stmt = (
                select(Payment, Service.periodic_days, Channel.agent_id)
                .join(Service, Service.id == Payment.service_id)
                .join(Channel, Channel.id == Payment.channel_id)
                .where(
                    Payment.customer.is_not(None), Payment.final_at.is_not(None), Payment.final_at <= until
                )
                .order_by(Payment.final_at, Payment.id)
                .limit(batch)
            )
            if cursor.final_at is not None:
                stmt = stmt.where(
                    or_(
                        Payment.final_at > cursor.final_at,
                        and_(Payment.final_at == cursor.final_at, Payment.id > cursor.payment_id),
                    )
                )
            rows = (await session.execute(stmt)).all()
            for payment, periodic_days, agent_id in rows:
                result.seen += 1
                if payment.status != "succeeded" or not periodic_days or agent_id is None:
                    continue
                made = await _remember(session, payment, periodic_days, agent_id, now)
                if made is not None:
                    result.created.append(made)
            if rows:
                last = rows[-1][0]
                cursor.final_at, cursor.payment_id, cursor.updated_at = last.final_at, last.id, now
            await session.commit()
        if len(rows) < batch:
            return result


async def _remember(
    session: AsyncSession, payment: Payment, periodic_days: int, agent_id: int, now: dt.datetime
) -> int | None:
    reference = payment.customer
    assert reference is not None
    customer = await _customer(session, agent_id, reference)
    if customer is not None:
        if not customer.reminders:
            return None
        if await has_subscription(session, customer.id, payment.service_id, payment.account):
            return None
    exists = await session.scalar(select(Reminder.id).where(Reminder.payment_id == payment.id))
    if exists is not None:
        return None
    paid_at = payment.final_at or payment.created_at
    # a newer payment of the same service and account supersedes the reminder not sent yet
    await session.execute(
        update(Reminder)
        .where(
            Reminder.agent_id == agent_id,
            Reminder.reference == reference,
            Reminder.service_id == payment.service_id,
            Reminder.account == payment.account,
            Reminder.status == "pending",
            Reminder.paid_at <= paid_at,
        )
        .values(status="expired", status_reason="superseded by a newer payment", updated_at=now)
    )
    row = Reminder(
        agent_id=agent_id,
        reference=reference,
        customer_id=customer.id if customer is not None else None,
        service_id=payment.service_id,
        account=payment.account,
        fields=dict(payment.fields or {}),
        amount=payment.amount,
        currency=payment.currency,
        payment_id=payment.id,
        paid_at=paid_at,
        due_at=paid_at + dt.timedelta(days=periodic_days),
        status="pending",
        created_at=now,
        updated_at=now,
    )
    if not await inserted(session, row):
        return None
    return row.id


# --- sending --------------------------------------------------------------------------------------


@dataclass(slots=True)
class SendResult:
    sent: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # ended expired: opted out or subscribed meanwhile
    expired: int = 0  # sent ones whose actions ran out unused


def _recipient(customer: Customer | None, reference: str) -> Recipient:
    if customer is None:
        return Recipient(reference=reference)
    return Recipient(
        name=customer.name,
        phone=customer.phone,
        email=customer.email,
        language=customer.language,
        timezone=customer.timezone,
        reference=customer.reference,
    )


async def send_due(hub: Hub, *, now: dt.datetime | None = None, batch: int = SEND_BATCH) -> SendResult:
    """Send the reminders that are due (each in a transaction of its own, committed) and expire the
    sent ones whose actions ran out."""
    now = now or utcnow()
    result = SendResult()
    async with hub.sessions() as session:
        ids = list(
            (
                await session.scalars(
                    select(Reminder.id)
                    .where(Reminder.status == "pending", Reminder.due_at <= now)
                    .order_by(Reminder.due_at, Reminder.id)
                    .limit(batch)
                )
            ).all()
        )
        expired = await session.execute(
            update(Reminder)
            .where(Reminder.status == "sent", Reminder.expires_at <= now)
            .values(status="expired", status_reason="no action in time", updated_at=now)
        )
        result.expired = int(getattr(expired, "rowcount", 0) or 0)
        await session.commit()
    for rid in ids:
        try:
            outcome = await _send_one(hub, rid, now)
        except Exception:  # one reminder must not stop the others; it is tried again next round
            log.exception("reminder %s: sending failed", rid)
            continue
        if outcome == "sent":
            result.sent.append(rid)
        elif outcome == "skipped":
            result.skipped.append(rid)
    return result


async def _send_one(hub: Hub, rid: int, now: dt.datetime) -> str:
    async with hub.sessions() as session:
        r = await locked(session, Reminder, rid)
        if r is None or r.status != "pending":
            return "gone"  # another worker took it
        customer = await _customer(session, r.agent_id, r.reference)
        reason = None
        if customer is not None and not customer.reminders:
            reason = "the customer opted out of reminders"
        elif customer is not None and await has_subscription(session, customer.id, r.service_id, r.account):
            reason = "the customer subscribed meanwhile"
        if reason is not None:
            r.status, r.status_reason, r.updated_at = "expired", reason, now
            await session.commit()
            return "skipped"
        service = await session.get(Service, r.service_id)
        assert service is not None
        token = new_token()
        period = dt.timedelta(days=service.periodic_days or 30)
        r.status, r.token_hash, r.sent_at, r.expires_at, r.updated_at = (
            "sent",
            token_hash(token),
            now,
            now + period,
            now,
        )
        if customer is not None:
            r.customer_id = customer.id
        data = {
            "reminder_id": r.id,
            "service": service.name,
            "service_code": service.code,
            "account": r.account,
            "amount": r.amount,
            "currency": r.currency,
            "amount_text": format_amount(r.amount, r.currency),
            "paid_at": r.paid_at,
            "payment_id": r.payment_id,
            "expires_at": r.expires_at,
        }
        actions = [
            Action(name=name, url=f"/api/v1/reminders/{token}/{name.replace('_', '-')}", token=token)
            for name in ACTIONS
        ]
        notices = await NOTIFIER(
            session,
            agent_id=r.agent_id,
            event=EVENT,
            recipient=_recipient(customer, r.reference),
            data=data,
            key=f"reminder:{r.id}",
            actions=actions,
        )
        if not notices:  # no webhook for the agent, no phone or e-mail for the customer
            r.status, r.status_reason, r.token_hash, r.expires_at = (
                "expired",
                "no notification channel reaches the customer",
                None,
                None,
            )
            r.sent_at = None
            await session.commit()
            return "skipped"
        await session.commit()
        return "sent"


# --- the customer's actions -----------------------------------------------------------------------


@dataclass(slots=True)
class ActionResult:
    reminder_id: int
    action: str
    status: str
    payment_id: int | None = None
    subscription_id: int | None = None
    reminders: bool = True  # whether the customer still gets reminders


def _gone(detail: str) -> Problem:
    return Problem(410, "reminder-expired", "The reminder has expired", detail)


async def by_token(
    session: AsyncSession, token: str, *, agent_id: int | None = None, lock: bool = True
) -> Reminder:
    """The sent reminder of ``token`` (locked for the transaction unless ``lock`` is False); 404 when
    there is none (or it is another agent's)."""
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        raise not_found("reminder")
    rid = await session.scalar(select(Reminder.id).where(Reminder.token_hash == token_hash(token)))
    r: Reminder | None = None
    if rid is not None:
        r = await locked(session, Reminder, rid) if lock else await session.get(Reminder, rid)
    if r is None or (agent_id is not None and r.agent_id != agent_id):
        raise not_found("reminder")
    return r


def _live(r: Reminder, now: dt.datetime, done: bool) -> None:
    """An action not done yet needs the reminder's actions still valid."""
    if done:
        return
    if r.status == "expired" or (r.expires_at is not None and r.expires_at <= now):
        raise _gone(f"reminder {r.id}'s actions expired")


async def _ensure_customer(session: AsyncSession, r: Reminder, now: dt.datetime) -> Customer:
    customer = await _customer(session, r.agent_id, r.reference)
    if customer is None:
        customer = Customer(
            agent_id=r.agent_id,
            reference=r.reference,
            currency=r.currency,
            language="en",
            timezone="UTC",
            reminders=True,
            created_at=now,
            updated_at=now,
        )
        if not await inserted(session, customer):
            customer = await _customer(session, r.agent_id, r.reference)
            assert customer is not None
    r.customer_id = customer.id
    return customer


async def _result(session: AsyncSession, r: Reminder, action: str) -> ActionResult:
    customer = await _customer(session, r.agent_id, r.reference)
    return ActionResult(
        reminder_id=r.id,
        action=action,
        status=r.status,
        payment_id=r.repeat_payment_id,
        subscription_id=r.subscription_id,
        reminders=customer.reminders if customer is not None else True,
    )


async def repeat_payment(
    hub: Hub, token: str, *, agent_id: int | None = None, now: dt.datetime | None = None
) -> int:
    """The reminder's repeat payment, accepted now if it is not yet (through the hub's pipeline, under
    the agent's recurring channel, external id ``reminder-<id>``: at most one, however often asked).

    Acceptance commits in a transaction of its own, so this runs *before* the caller opens the
    session of :func:`repeat` or :func:`subscribe` (which record it): never inside one (on SQLite the
    writer's turn would wait for itself)."""
    from paymux.payments.service import accept  # the payment pipeline (imports the runtime)

    now = now or utcnow()
    async with hub.read_sessions() as session:
        r = await by_token(session, token, agent_id=agent_id, lock=False)
        if r.repeat_payment_id is not None:
            return r.repeat_payment_id
        _live(r, now, False)
        channel_id = await session.scalar(
            select(RecurringAgent.channel_id).where(
                RecurringAgent.agent_id == r.agent_id, RecurringAgent.enabled.is_(True)
            )
        )
        if channel_id is None:  # no recurring settings: the channel of the payment reminded
            channel_id = await session.scalar(select(Payment.channel_id).where(Payment.id == r.payment_id))
        rid, service_id, account, amount, currency = r.id, r.service_id, r.account, r.amount, r.currency
        fields, reference = dict(r.fields or {}), r.reference
    snap = await hub.catalog.get()
    channel = snap.channels.get(channel_id) if channel_id is not None else None
    service = snap.services_by_id.get(service_id)
    if channel is None or not channel.enabled or service is None:
        raise Problem(
            409, "cannot-repeat", "The payment cannot be repeated", "the channel or the service is gone"
        )
    body = PaymentIn(
        external_id=f"reminder-{rid}",
        service=service.code,
        account=account,
        amount=format_amount(amount, currency),
        currency=currency,
        fields={str(k): str(v) for k, v in fields.items()},
        customer=reference,
    )
    payment, _created = await accept(hub, channel, body)
    return payment.id


def _record_repeat(r: Reminder, payment_id: int, now: dt.datetime) -> None:
    if r.repeat_payment_id is None:
        r.repeat_payment_id = payment_id
        r.repeated_at = now
        r.updated_at = now


async def repeat(
    session: AsyncSession,
    token: str,
    *,
    payment_id: int,
    agent_id: int | None = None,
    now: dt.datetime | None = None,
) -> ActionResult:
    """Record the repeat payment (:func:`repeat_payment`). Idempotent: a second call answers the same
    payment (the first one recorded)."""
    now = now or utcnow()
    r = await by_token(session, token, agent_id=agent_id)
    _live(r, now, r.repeat_payment_id is not None)
    if r.repeat_payment_id is None:
        _record_repeat(r, payment_id, now)
        if r.status == "sent":
            r.status = "repeated"
    await session.flush()
    return await _result(session, r, "repeat")


async def subscribe(
    session: AsyncSession,
    token: str,
    *,
    payment_id: int,
    agent_id: int | None = None,
    now: dt.datetime | None = None,
) -> ActionResult:
    """Record the repeat payment (:func:`repeat_payment`) and save a template and a scheduled
    subscription every period from now on. Idempotent: a second call answers the same payment and
    subscription."""
    now = now or utcnow()
    r = await by_token(session, token, agent_id=agent_id)
    _live(r, now, r.subscription_id is not None)
    if r.subscription_id is None:
        _record_repeat(r, payment_id, now)
        customer = await _ensure_customer(session, r, now)
        r.subscription_id = await _subscription(session, r, customer, now)
        r.subscribed_at = now
        r.status = "subscribed"
        r.updated_at = now
    await session.flush()
    return await _result(session, r, "subscribe")


async def _subscription(session: AsyncSession, r: Reminder, customer: Customer, now: dt.datetime) -> int:
    existing = await has_subscription(session, customer.id, r.service_id, r.account)
    if existing is not None:  # subscribed meanwhile in a channel: that one it is
        return existing
    key = f"reminder-{r.id}"
    service = await session.get(Service, r.service_id)
    assert service is not None
    template = await session.scalar(
        select(Template).where(Template.customer_id == customer.id, Template.key == key)
    )
    if template is None:
        template = Template(
            customer_id=customer.id,
            key=key,
            name=service.name[:100],
            service_id=r.service_id,
            account=r.account,
            fields=dict(r.fields or {}),
            amount=r.amount,
            currency=r.currency,
            created_at=now,
            updated_at=now,
        )
        session.add(template)
        await session.flush()
    local_today = now.astimezone(zone(customer.timezone)).date()
    days = service.periodic_days or 30
    sub = Subscription(
        customer_id=customer.id,
        template_id=template.id,
        key=key,
        kind="scheduled",
        status="active",
        currency=r.currency,
        amount=r.amount,
        time_of_day="09:00",
        runs_paid=0,
        created_at=now,
        updated_at=now,
    )
    if 28 <= days <= 31:  # monthly on today's day (paid today: the first charge is next month)
        sub.period, sub.day_of_month = "monthly", local_today.day
        sub.start_date = local_today + dt.timedelta(days=1)
    else:  # every period from one period after today
        sub.period, sub.every_days = "days", days
        sub.start_date = local_today + dt.timedelta(days=days)
    sub.next_due_at = first_look(sub, customer, now)
    session.add(sub)
    await session.flush()
    return sub.id


async def opt_out(
    session: AsyncSession,
    token: str,
    *,
    agent_id: int | None = None,
    now: dt.datetime | None = None,
) -> ActionResult:
    """Stop these reminders for the customer (every service). Idempotent."""
    now = now or utcnow()
    r = await by_token(session, token, agent_id=agent_id)
    _live(r, now, r.opted_out_at is not None)
    customer = await _ensure_customer(session, r, now)
    if customer.reminders:
        customer.reminders = False
        customer.updated_at = now
    if r.opted_out_at is None:
        r.opted_out_at = now
        if r.status == "sent":
            r.status = "opted_out"
        r.updated_at = now
        # the customer's other reminders not sent yet will not be
        await session.execute(
            update(Reminder)
            .where(
                Reminder.agent_id == r.agent_id,
                Reminder.reference == r.reference,
                Reminder.status == "pending",
            )
            .values(status="expired", status_reason="the customer opted out of reminders", updated_at=now)
        )
    await session.flush()
    return await _result(session, r, "opt_out")


async def perform(
    hub: Hub, action: ActionName, token: str, *, agent_id: int | None = None, now: dt.datetime | None = None
) -> ActionResult:
    """One action end to end, committed (what the channel API does): the repeat payment first (its
    own transaction), then the reminder's changes in one transaction."""
    now = now or utcnow()
    payment_id = None
    if action in ("repeat", "subscribe"):
        payment_id = await repeat_payment(hub, token, agent_id=agent_id, now=now)
    async with hub.sessions() as session:
        if action == "repeat":
            assert payment_id is not None
            result = await repeat(session, token, payment_id=payment_id, agent_id=agent_id, now=now)
        elif action == "subscribe":
            assert payment_id is not None
            result = await subscribe(session, token, payment_id=payment_id, agent_id=agent_id, now=now)
        else:
            result = await opt_out(session, token, agent_id=agent_id, now=now)
        await session.commit()
    return result


# --- conversion -----------------------------------------------------------------------------------


def _rate(part: int, whole: int) -> Decimal:
    if whole == 0:
        return Decimal("0.0000")
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Conversion:
    """Of the reminders sent in a period: how many were repeated (only), subscribed (which repeats
    too), opted out; ``converted`` = repeated + subscribed. Rates are fractions of ``sent``."""

    sent: int
    repeated: int
    subscribed: int
    opted_out: int

    @property
    def converted(self) -> int:
        return self.repeated + self.subscribed

    @property
    def repeat_rate(self) -> Decimal:
        return _rate(self.repeated, self.sent)

    @property
    def subscribe_rate(self) -> Decimal:
        return _rate(self.subscribed, self.sent)

    @property
    def opt_out_rate(self) -> Decimal:
        return _rate(self.opted_out, self.sent)

    @property
    def conversion_rate(self) -> Decimal:
        return _rate(self.converted, self.sent)

    def as_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "repeated": self.repeated,
            "subscribed": self.subscribed,
            "opted_out": self.opted_out,
            "converted": self.converted,
            "repeat_rate": str(self.repeat_rate),
            "subscribe_rate": str(self.subscribe_rate),
            "opt_out_rate": str(self.opt_out_rate),
            "conversion_rate": str(self.conversion_rate),
        }


async def conversion(
    session: AsyncSession, *, since: dt.datetime, until: dt.datetime, agent_id: int | None = None
) -> Conversion:
    """The conversion of the reminders sent in ``[since, until)`` (of one agent, or all)."""
    subscribed = Reminder.subscribed_at.is_not(None)
    stmt = select(
        func.count(),
        func.count().filter(Reminder.repeated_at.is_not(None), ~subscribed),
        func.count().filter(subscribed),
        func.count().filter(Reminder.opted_out_at.is_not(None)),
    ).where(Reminder.sent_at >= since, Reminder.sent_at < until)
    if agent_id is not None:
        stmt = stmt.where(Reminder.agent_id == agent_id)
    sent, repeated, subs, opted = (await session.execute(stmt)).one()
    return Conversion(int(sent), int(repeated), int(subs), int(opted))


async def conversion_by_day(
    session: AsyncSession, *, since: dt.date, until: dt.date, agent_id: int | None = None
) -> list[tuple[dt.date, Conversion]]:
    """:func:`conversion` for each UTC day in ``[since, until)`` (for a chart)."""
    out: list[tuple[dt.date, Conversion]] = []
    day = since
    while day < until:
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        out.append(
            (
                day,
                await conversion(session, since=start, until=start + dt.timedelta(days=1), agent_id=agent_id),
            )
        )
        day += dt.timedelta(days=1)
    return out


# --- the background worker ------------------------------------------------------------------------


class ReminderWorker:
    """Sweeps newly succeeded payments into reminders and sends the due ones, every ``poll_seconds``."""

    name = "reminders"

    def __init__(self, hub: Hub, *, poll_seconds: float = 5.0) -> None:
        self.hub = hub
        self.poll_seconds = poll_seconds
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run_once(self, now: dt.datetime | None = None) -> tuple[SweepResult, SendResult]:
        swept = await sweep(self.hub, now=now)
        sent = await send_due(self.hub, now=now)
        return swept, sent

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("reminders: worker round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.poll_seconds)


@contextlib.asynccontextmanager
async def running_reminder_worker(hub: Hub, poll_seconds: float = 5.0) -> AsyncIterator[ReminderWorker]:
    """Run a :class:`ReminderWorker` in the background for the duration of the block."""
    worker = ReminderWorker(hub, poll_seconds=poll_seconds)
    task = asyncio.create_task(worker.run(), name="paymux-reminders")
    try:
        yield worker
    finally:
        worker.stop()
        await task
