"""The register worker: creates due tasks on schedule and runs claimed ones."""

from __future__ import annotations

import datetime as dt
import logging

from paymux.registers.models import RegisterTask
from paymux.registers.schedule import schedule_due
from paymux.registers.settings import RegisterSettings
from paymux.registers.tasks import run_task
from paymux.runtime import Hub
from paymux.worker.jobs import PollingWorker

log = logging.getLogger("paymux.registers")


class RegisterWorker(PollingWorker):
    """``run_once`` does one round (schedule if it is time, claim up to ``concurrency`` tasks, run them)."""

    table = RegisterTask
    name = "registers"
    job_noun = "register task"
    owner_prefix = "r"

    def __init__(self, hub: Hub, settings: RegisterSettings | None = None) -> None:
        self.settings = settings or RegisterSettings()
        super().__init__(
            hub,
            poll_seconds=self.settings.poll_seconds,
            schedule_seconds=self.settings.schedule_every_seconds,
            lease_seconds=self.settings.lease_seconds,
            claim_limit=self.settings.concurrency,
            log=log,
        )

    async def schedule(self, now: dt.datetime | None = None) -> int:
        async with self.hub.sessions() as session:
            created = await schedule_due(session, self.hub.sqlite, now)
            await session.commit()
        if created:
            log.info("registers: %s task(s) scheduled", created)
        return created

    async def run_job(self, job_id: int, now: dt.datetime | None) -> str:
        return await run_task(self.hub, job_id, self.owner, self.settings)
