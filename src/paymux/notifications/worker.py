"""The notification worker: claims due notifications and delivers them (webhook, SMS, e-mail)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator

import httpx

from paymux.notifications.delivery import Senders, deliver
from paymux.notifications.models import Notification
from paymux.notifications.settings import NotificationSettings
from paymux.runtime import Hub
from paymux.worker.jobs import PollingWorker, running

log = logging.getLogger("paymux.notifications")


class NotificationWorker(PollingWorker):
    """``run_once`` claims up to ``concurrency`` due notifications and delivers them concurrently."""

    table = Notification
    name = "notifications"
    job_noun = "notification"
    owner_prefix = "n"

    def __init__(self, hub: Hub, senders: Senders) -> None:
        self.senders = senders
        self.settings = senders.settings
        super().__init__(
            hub,
            poll_seconds=self.settings.poll_seconds,
            schedule_seconds=3600.0,
            lease_seconds=self.settings.lease_seconds,
            claim_limit=self.settings.concurrency,
            log=log,
        )

    async def schedule(self, now: dt.datetime | None = None) -> int:
        return 0  # notifications are made by notify(), due at once: nothing to schedule

    async def run_job(self, job_id: int, now: dt.datetime | None) -> str:
        return await deliver(self.hub, job_id, self.owner, self.senders, now)


@contextlib.asynccontextmanager
async def running_notification_worker(
    hub: Hub, settings: NotificationSettings | None = None
) -> AsyncIterator[NotificationWorker]:
    """Run a NotificationWorker (configured from the environment) in the background for the block."""
    settings = settings or NotificationSettings()
    async with httpx.AsyncClient(timeout=settings.timeout_seconds) as http:
        async with running(NotificationWorker(hub, Senders.from_settings(http, settings))) as worker:
            yield worker
