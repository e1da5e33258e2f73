"""Delivering a claimed notification: to the agent's webhook, by SMS, by e-mail; recording each attempt.

A notification is claimed like every job (:func:`paymux.worker.jobs.claim_due`) under the lease of
the worker's round (``lease_owner``, a fencing token). Right before it sends, the worker renews the
lease in the database (a worker that paused past its lease sends nothing another worker took over);
every write after the send checks the lease again. Each attempt is written to the delivery log
(``notification_attempts``): time, status code, error, duration.

Outcomes: a 2xx answer (an SMS gateway's acceptance, an SMTP server's) is ``delivered``. A failure is
retried after ``retry_base_seconds * 2^(attempt-1)`` (at most ``retry_max_seconds``, plus up to 10%
jitter) until ``expires_at`` (``retry_window_seconds`` after the notification was made, a day by
default); a failure after that, or one that cannot succeed later (an SMS gateway refusing the number),
is ``failed``. An administrator may redeliver any notification that is not being sent.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from paymux.auth.senders import SendError, SmtpSender
from paymux.backoffice.settings import BackofficeSettings
from paymux.db.base import utcnow
from paymux.masking import mask_url
from paymux.notifications.email_html import email_html
from paymux.notifications.models import DeliveryAttempt, Notification, WebhookEndpoint
from paymux.notifications.settings import NotificationSettings, SmsSettings, SmtpSettings
from paymux.notifications.sms import SmsError, SmsGateway, SmsMessage, UnknownSmsGateway, gateway_class
from paymux.notifications.webhooks import SecretKeyProblem, message_id, signed_headers, unseal
from paymux.runtime import Hub
from paymux.worker.jobs import retry_delay

log = logging.getLogger("paymux.notifications")

USER_AGENT = "paymux-notifications"


class LeaseLost(RuntimeError):
    pass


@dataclass
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    permanent: bool = False
    target: str | None = None


@dataclass
class Senders:
    """How each channel is sent: the HTTP client (webhooks, SMS gateway), the SMS gateway, the SMTP
    sender (None: that channel is not configured, and its notifications fail until it is)."""

    http: httpx.AsyncClient
    settings: NotificationSettings = field(default_factory=NotificationSettings)
    sms: SmsGateway | None = None
    email: SmtpSender | None = None
    sms_sender: str = "paymux"
    sms_problem: str | None = None  # why no gateway could be made from the settings

    @classmethod
    def from_settings(
        cls,
        http: httpx.AsyncClient,
        settings: NotificationSettings | None = None,
        sms: SmsSettings | None = None,
        smtp: SmtpSettings | None = None,
    ) -> Senders:
        settings = settings or NotificationSettings()
        sms = sms or SmsSettings()
        smtp = smtp or SmtpSettings()
        gateway, problem = None, None
        if sms.url:
            config = {
                "url": sms.url,
                "token": sms.token.get_secret_value(),
                "sender": sms.sender,
                "timeout_seconds": sms.timeout_seconds,
            }
            try:
                kind = gateway_class(sms.gateway)
                problems = kind.validate_config(config)
            except UnknownSmsGateway as e:
                problems = [str(e)]
            if problems:
                # the hub still runs; SMS notices fail their attempts with this until it is fixed
                problem = f"the SMS gateway is misconfigured (PAYMUX_SMS_*): {'; '.join(problems)}"
                log.error("%s", problem)
            else:
                gateway = kind(config, http)
        return cls(http, settings, gateway, smtp_sender(smtp), sms.sender, problem)


def smtp_sender(smtp: SmtpSettings) -> SmtpSender | None:
    """The SMTP sender of ``PAYMUX_SMTP_*``; without a host, the back office's (second factors)."""
    if smtp.host:
        return SmtpSender(
            smtp.host,
            smtp.port,
            smtp.sender or "paymux@localhost",
            username=smtp.username,
            password=smtp.password.get_secret_value(),
            starttls=smtp.starttls,
            timeout=smtp.timeout_seconds,
        )
    bo = BackofficeSettings()
    if not bo.smtp_host:
        return None
    return SmtpSender(
        bo.smtp_host,
        bo.smtp_port,
        smtp.sender or bo.smtp_from,
        username=bo.smtp_username,
        password=bo.smtp_password,
        starttls=bo.smtp_starttls,
        timeout=smtp.timeout_seconds,
    )


def backoff(settings: NotificationSettings, attempt: int) -> dt.timedelta:
    return retry_delay(settings.retry_base_seconds, settings.retry_max_seconds, attempt)


async def _set(session: AsyncSession, nid: int, owner: str, **values: Any) -> None:
    """Update the notification if ``owner`` still holds it, else raise LeaseLost."""
    t = cast(Table, Notification.__table__)
    row = (
        await session.execute(
            update(t)
            .where(t.c.id == nid, t.c.lease_owner == owner, t.c.status == "running")
            .values(**values)
            .returning(t.c.id)
        )
    ).first()
    if row is None:
        raise LeaseLost(f"notification {nid}: lease lost")


@dataclass
class _Target:
    url: str
    secret: str


async def _webhook_target(hub: Hub, n: Notification) -> _Target | str:
    """Where the notification's webhook goes: the agent's endpoint or the biller's webhook (or why not)."""
    async with hub.read_sessions() as session:
        if n.biller_id is not None:
            from paymux.invoices.models import Biller

            biller = await session.get(Biller, n.biller_id)
            if (
                biller is None
                or not biller.webhook_enabled
                or not biller.webhook_url
                or not biller.webhook_secret
            ):
                return "the biller has no enabled webhook"
            return _Target(biller.webhook_url, biller.webhook_secret)
        endpoint = await session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.agent_id == n.agent_id))
    if endpoint is None or not endpoint.enabled:
        return "the agent has no enabled webhook endpoint"
    return _Target(endpoint.url, endpoint.secret)


async def _send_webhook(hub: Hub, n: Notification, senders: Senders) -> Outcome:
    endpoint = await _webhook_target(hub, n)
    if isinstance(endpoint, str):
        return Outcome(False, error=endpoint)
    try:
        secret = unseal(endpoint.secret, senders.settings)
    except SecretKeyProblem as e:
        return Outcome(False, error=str(e), target=endpoint.url)
    body = n.body.encode()
    # signed at the attempt's real time: receivers refuse timestamps far from their clock
    headers = {**signed_headers(secret, message_id(n.id), body), "user-agent": USER_AGENT}
    try:
        r = await senders.http.post(
            endpoint.url,
            content=body,
            headers=headers,
            timeout=senders.settings.timeout_seconds,
            follow_redirects=False,
        )
    except httpx.HTTPError as e:
        return Outcome(
            False, error=f"{type(e).__name__}: {e}"[:2000] or type(e).__name__, target=endpoint.url
        )
    if 200 <= r.status_code < 300:
        return Outcome(True, r.status_code, target=endpoint.url)
    return Outcome(False, r.status_code, f"answered {r.status_code}: {r.text[:200]}", target=endpoint.url)


async def _send_sms(n: Notification, senders: Senders) -> Outcome:
    if senders.sms is None:
        error = senders.sms_problem or "no SMS gateway is configured (PAYMUX_SMS_URL)"
        return Outcome(False, error=error, target=n.address)
    try:
        await senders.sms.send(SmsMessage(n.address or "", n.body, senders.sms_sender, message_id(n.id)))
    except SmsError as e:
        return Outcome(False, e.status_code, str(e)[:2000], permanent=e.permanent, target=n.address)
    return Outcome(True, target=n.address)


async def _send_email(n: Notification, senders: Senders) -> Outcome:
    if senders.email is None:
        return Outcome(False, error="no SMTP server is configured (PAYMUX_SMTP_HOST)", target=n.address)
    try:
        html = email_html(n.subject or "", n.body, n.language or "en")
        await senders.email.send(n.address or "", n.subject or "", n.body, html)
    except SendError as e:
        return Outcome(False, error=str(e)[:2000], target=n.address)
    return Outcome(True, target=n.address)


async def send(hub: Hub, n: Notification, senders: Senders) -> Outcome:
    if n.channel == "webhook":
        return await _send_webhook(hub, n, senders)
    if n.channel == "sms":
        return await _send_sms(n, senders)
    if n.channel == "email":
        return await _send_email(n, senders)
    return Outcome(False, error=f"unknown channel {n.channel!r}", permanent=True)


async def deliver(hub: Hub, nid: int, owner: str, senders: Senders, now: dt.datetime | None = None) -> str:
    """Send one claimed notification and record the attempt. Returns the status it ends in (``lost``
    when another worker holds it now). ``now`` is the worker's clock (tests move it)."""
    settings = senders.settings
    clock = now or utcnow()
    async with hub.read_sessions() as session:
        n = await session.get(Notification, nid)
    if n is None or n.status != "running" or n.lease_owner != owner:
        return "lost"
    try:
        async with hub.sessions() as session:  # still ours? renew the lease right before sending
            await _set(
                session,
                nid,
                owner,
                due_at=clock + dt.timedelta(seconds=settings.lease_seconds),
                updated_at=clock,
            )
            await session.commit()
    except LeaseLost:
        return "lost"
    started = time.monotonic()
    try:
        outcome = await send(hub, n, senders)
    except Exception as e:  # a plug-in's bug must not leave the notification running
        log.exception("notification %s: sending failed", nid)
        outcome = Outcome(False, error=f"{type(e).__name__}: {e}"[:2000])
    duration = int((time.monotonic() - started) * 1000)
    if outcome.ok:
        values: dict[str, Any] = {
            "status": "delivered",
            "delivered_at": clock,
            "last_error": None,
            "lease_owner": None,
        }
        status = "delivered"
    else:
        attempts = n.attempts
        retry_at = clock + backoff(settings, attempts)
        give_up = outcome.permanent or retry_at > n.expires_at
        status = "failed" if give_up else "pending"
        values = {"status": status, "last_error": outcome.error, "lease_owner": None, "due_at": retry_at}
    async with hub.sessions() as session:
        await session.execute(
            insert(DeliveryAttempt).values(
                notification_id=nid,
                at=clock,
                ok=outcome.ok,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=min(duration, 2**31 - 1),
                target=mask_url(outcome.target or "")[:500] or None,
            )
        )
        try:
            await _set(session, nid, owner, updated_at=clock, **values)
        except LeaseLost:
            await session.commit()  # the attempt happened: it stays in the log
            log.warning("notification %s: lease lost while sending; the new owner carries on", nid)
            return "lost"
        await session.commit()
    if outcome.ok:
        log.info("notification %s (%s %s) delivered", nid, n.channel, n.event)
    else:
        log.warning(
            "notification %s (%s) attempt %s failed%s: %s",
            nid,
            n.channel,
            n.attempts,
            " (giving up)" if status == "failed" else "",
            outcome.error,
        )
    return status
