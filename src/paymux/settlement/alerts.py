"""Low-balance alerts of prepaid providers: once per crossing, delivered by e-mail and signed webhook.

* :func:`check_rules` compares each enabled rule's deposit balance with its threshold. A rule is
  *armed* while the balance is at or above the threshold; the first check that sees it below disarms
  the rule and queues one :class:`BalanceAlert` (a compare-and-set on ``armed``, so two workers
  checking at once queue one alert); a check that sees the balance back at or above re-arms it.
* Alerts are claimed from their table with a lease by :class:`AlertWorker`, a
  :class:`~paymux.worker.jobs.PollingWorker` like the register worker. Each channel (e-mail, webhook)
  is recorded as delivered as soon as it is, so a retry only repeats the failed one. Failures are retried with
  growing intervals (base * 2^(attempt-1), capped) up to ``max_attempts``, then the alert is failed.
* Webhooks: ``POST`` JSON, ``X-Paymux-Signature`` = hex HMAC-SHA256 of ``timestamp + "." + body``
  with the rule's secret, ``X-Paymux-Timestamp`` (Unix seconds), ``X-Paymux-Delivery`` (the alert id:
  a receiver may see one alert more than once if it answered after our timeout).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import httpx
from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.signing import hmac_sign
from paymux.catalog.models import Provider
from paymux.db.base import utcnow
from paymux.db.concurrent import locked
from paymux.ledger.models import Account
from paymux.money import format_amount
from paymux.runtime import Hub
from paymux.settlement.balances import DEPOSIT
from paymux.settlement.models import BalanceAlert, BalanceAlertRule
from paymux.settlement.settings import SettlementSettings
from paymux.worker.jobs import PollingWorker, retry_delay

log = logging.getLogger("paymux.settlement")

EVENT = "balance.low"


class AlertDeliveryError(RuntimeError):
    pass


async def check_rules(
    session: AsyncSession, now: dt.datetime | None = None, max_attempts: int = 10
) -> list[int]:
    """Queue an alert for every armed rule whose balance is below its threshold; re-arm recovered ones.

    Returns the ids of the alerts queued. The caller commits.
    """
    now = now or utcnow()
    rows = (
        await session.execute(
            select(
                BalanceAlertRule.id,
                BalanceAlertRule.armed,
                BalanceAlertRule.threshold,
                BalanceAlertRule.provider_id,
                BalanceAlertRule.currency,
                Account.balance,
            )
            .outerjoin(
                Account,
                and_(
                    Account.kind == DEPOSIT,
                    Account.owner_id == BalanceAlertRule.provider_id,
                    Account.currency == BalanceAlertRule.currency,
                ),
            )
            .where(BalanceAlertRule.enabled.is_(True))
        )
    ).all()
    queued: list[int] = []
    for rule_id, armed, threshold, provider_id, currency, balance in rows:
        balance = int(balance or 0)
        if armed and balance < threshold:
            won = (
                await session.execute(
                    update(BalanceAlertRule)
                    .where(BalanceAlertRule.id == rule_id, BalanceAlertRule.armed.is_(True))
                    .values(armed=False)
                    .returning(BalanceAlertRule.id)
                )
            ).first()
            if won is None:
                continue  # another worker saw the same crossing first
            alert = BalanceAlert(
                rule_id=rule_id,
                provider_id=provider_id,
                currency=currency,
                balance=balance,
                threshold=threshold,
                status="pending",
                due_at=now,
                attempts=0,
                max_attempts=max_attempts,
                delivered={},
                created_at=now,
                updated_at=now,
            )
            session.add(alert)
            await session.flush()
            queued.append(alert.id)
        elif not armed and balance >= threshold:
            await session.execute(
                update(BalanceAlertRule)
                .where(BalanceAlertRule.id == rule_id, BalanceAlertRule.armed.is_(False))
                .values(armed=True)
            )
    return queued


async def below_threshold(session: AsyncSession) -> list[tuple[str, str]]:
    """(provider code, currency) of every enabled rule whose deposit balance is below its threshold now
    (the comparison ``check_rules`` makes), whether or not its alert went out."""
    rows = (
        await session.execute(
            select(Provider.code, BalanceAlertRule.currency, BalanceAlertRule.threshold, Account.balance)
            .join(Provider, Provider.id == BalanceAlertRule.provider_id)
            .outerjoin(
                Account,
                and_(
                    Account.kind == DEPOSIT,
                    Account.owner_id == BalanceAlertRule.provider_id,
                    Account.currency == BalanceAlertRule.currency,
                ),
            )
            .where(BalanceAlertRule.enabled.is_(True))
        )
    ).all()
    return [(code, currency) for code, currency, threshold, balance in rows if int(balance or 0) < threshold]


def backoff(settings: SettlementSettings, attempt: int) -> dt.timedelta:
    return retry_delay(settings.retry_base_seconds, settings.retry_max_seconds, attempt)


@dataclass(slots=True)
class _Loaded:
    alert: BalanceAlert
    rule: BalanceAlertRule
    provider: Provider


def payload(alert: BalanceAlert, provider: Provider) -> dict[str, Any]:
    return {
        "event": EVENT,
        "alert_id": alert.id,
        "provider": provider.code,
        "provider_name": provider.name,
        "currency": alert.currency,
        "balance": format_amount(alert.balance, alert.currency),
        "threshold": format_amount(alert.threshold, alert.currency),
        "balance_minor": alert.balance,
        "threshold_minor": alert.threshold,
        "crossed_at": alert.created_at.astimezone(dt.UTC).isoformat(),
    }


def _email(settings: SettlementSettings, to: list[str], data: dict[str, Any]) -> None:
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = ", ".join(to)
    msg["Subject"] = (
        f"Low balance: {data['provider']} {data['balance']} {data['currency']}"
        f" (threshold {data['threshold']})"
    )
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="paymux.local")
    msg.set_content(
        f"The deposit of provider {data['provider_name']} ({data['provider']}) fell below its threshold.\n\n"
        f"Balance:   {data['balance']} {data['currency']}\n"
        f"Threshold: {data['threshold']} {data['currency']}\n"
        f"Crossed at {data['crossed_at']} (UTC).\n"
    )
    if not settings.smtp_host:
        raise AlertDeliveryError("e-mail: PAYMUX_SETTLEMENT_SMTP_HOST is not set")
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
            smtp.ehlo()
            if settings.smtp_starttls:
                smtp.starttls()
                smtp.ehlo()
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password)
            refused = smtp.send_message(msg, to_addrs=to)
    except (smtplib.SMTPException, OSError) as e:
        raise AlertDeliveryError(f"e-mail: {type(e).__name__}: {e}") from None
    if refused:
        raise AlertDeliveryError(f"e-mail: recipients refused: {', '.join(sorted(refused))}")


async def _webhook(settings: SettlementSettings, url: str, secret: str | None, data: dict[str, Any]) -> None:
    body = json.dumps(data, separators=(",", ":")).encode()
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Paymux-Event": EVENT,
        "X-Paymux-Delivery": str(data["alert_id"]),
        "X-Paymux-Timestamp": ts,
    }
    if secret:
        headers["X-Paymux-Signature"] = hmac_sign(secret, ts, body)
    try:
        async with httpx.AsyncClient(timeout=settings.webhook_timeout_seconds) as http:
            r = await http.post(url, content=body, headers=headers)
    except httpx.HTTPError as e:
        raise AlertDeliveryError(f"webhook: {type(e).__name__}: {e}") from None
    if not 200 <= r.status_code < 300:
        raise AlertDeliveryError(f"webhook: HTTP {r.status_code}")


async def deliver(
    hub: Hub, alert_id: int, owner: str, settings: SettlementSettings, now: dt.datetime | None = None
) -> str:
    """Send one claimed alert on each channel not yet delivered. Returns the status it ends in."""
    async with hub.read_sessions() as session:
        alert = await session.get(BalanceAlert, alert_id)
        assert alert is not None, alert_id
        rule = await session.get(BalanceAlertRule, alert.rule_id)
        provider = await session.get(Provider, alert.provider_id)
        assert rule is not None and provider is not None
    data = payload(alert, provider)
    delivered = dict(alert.delivered or {})
    errors: list[str] = []
    channels: list[str] = []
    if rule.emails:
        channels.append("email")
    if rule.webhook_url:
        channels.append("webhook")
    for channel in channels:
        if channel in delivered:
            continue
        # still ours? (a worker that paused past its lease must not send what another sent)
        if not await _set(
            hub, alert_id, owner, due_at=utcnow() + dt.timedelta(seconds=settings.lease_seconds)
        ):
            return "lost"
        try:
            if channel == "email":
                await asyncio.to_thread(_email, settings, list(rule.emails), data)
            else:
                assert rule.webhook_url is not None
                await _webhook(settings, rule.webhook_url, rule.webhook_secret, data)
        except AlertDeliveryError as e:
            errors.append(str(e))
            continue
        delivered[channel] = utcnow().isoformat()
        if not await _set(hub, alert_id, owner, delivered=delivered):
            return "lost"
    now = now or utcnow()
    if not errors:
        ok = await _set(hub, alert_id, owner, status="done", lease_owner=None, last_error=None)
        return "done" if ok else "lost"
    message = "; ".join(errors)[:2000]
    log.warning("balance alert %s: %s", alert_id, message)
    give_up = alert.attempts >= alert.max_attempts
    ok = await _set(
        hub,
        alert_id,
        owner,
        status="failed" if give_up else "pending",
        lease_owner=None,
        last_error=message,
        due_at=now if give_up else now + backoff(settings, alert.attempts),
    )
    if not ok:
        return "lost"
    return "failed" if give_up else "pending"


async def _set(hub: Hub, alert_id: int, owner: str, **values: Any) -> bool:
    """Update the alert if ``owner`` still holds it."""
    async with hub.sessions() as session:
        row = (
            await session.execute(
                update(BalanceAlert)
                .where(
                    BalanceAlert.id == alert_id,
                    BalanceAlert.lease_owner == owner,
                    BalanceAlert.status == "running",
                )
                .values(updated_at=utcnow(), **values)
                .returning(BalanceAlert.id)
            )
        ).first()
        await session.commit()
    return row is not None


async def retry_now(session: AsyncSession, alert_id: int) -> BalanceAlert | None:
    """Put a failed or waiting alert back in the queue, due now (keeps what was delivered).

    Read locked: an alert a worker claims at the same moment is either seen running or retried
    before the worker can claim it."""
    alert = await locked(session, BalanceAlert, alert_id)
    if alert is None or alert.status in ("done", "running"):
        return alert
    alert.status = "pending"
    alert.due_at = utcnow()
    alert.max_attempts = max(alert.max_attempts, alert.attempts + 1)
    alert.updated_at = utcnow()
    return alert


class AlertWorker(PollingWorker):
    """``run_once`` checks thresholds (when due) and delivers claimed alerts; ``run`` loops until ``stop``."""

    table = BalanceAlert
    name = "balance alerts"
    job_noun = "balance alert"
    owner_prefix = "a"

    def __init__(self, hub: Hub, settings: SettlementSettings | None = None) -> None:
        self.settings = settings or SettlementSettings()
        super().__init__(
            hub,
            poll_seconds=self.settings.poll_seconds,
            schedule_seconds=self.settings.check_seconds,
            lease_seconds=self.settings.lease_seconds,
            claim_limit=10,
            log=log,
        )

    async def check(self, now: dt.datetime | None = None) -> list[int]:
        async with self.hub.sessions() as session:
            queued = await check_rules(session, now, self.settings.max_attempts)
            await session.commit()
        if queued:
            log.info("balance alerts queued: %s", queued)
        return queued

    async def schedule(self, now: dt.datetime | None = None) -> list[int]:
        return await self.check(now)

    async def run_job(self, job_id: int, now: dt.datetime | None) -> str:
        return await deliver(self.hub, job_id, self.owner, self.settings, now)

    async def run_once(self, now: dt.datetime | None = None) -> dict[int, str]:  # type: ignore[override]
        """One round: check thresholds if it is time (always when ``now`` is given), deliver due alerts.

        Returns the status each alert delivered in it ended in (not a count, unlike other workers).
        """
        return await self.run_round(now)
