"""The reconciliation worker: creates due fetches on schedule and runs claimed ones, one at a time."""

from __future__ import annotations

import datetime as dt
import logging

from paymux.reconciliation.models import ReconciliationFetch
from paymux.reconciliation.settings import ReconciliationSettings
from paymux.reconciliation.tasks import run_fetch, schedule_fetches
from paymux.runtime import Hub
from paymux.worker.jobs import PollingWorker

log = logging.getLogger("paymux.reconciliation")


class ReconciliationWorker(PollingWorker):
    """``run_once``: one round (schedule if it is time, claim one fetch, run it)."""

    table = ReconciliationFetch
    name = "reconciliation"
    job_noun = "reconciliation fetch"
    owner_prefix = "rc"

    def __init__(self, hub: Hub, settings: ReconciliationSettings | None = None) -> None:
        self.settings = settings or ReconciliationSettings()
        super().__init__(
            hub,
            poll_seconds=self.settings.poll_seconds,
            schedule_seconds=self.settings.schedule_every_seconds,
            lease_seconds=self.settings.lease_seconds,
            claim_limit=1,
            log=log,
        )

    async def schedule(self, now: dt.datetime | None = None) -> int:
        async with self.hub.sessions() as session:
            created = await schedule_fetches(session, self.hub.sqlite, now)
            await session.commit()
        if created:
            log.info("reconciliation: %s fetch(es) scheduled", created)
        return created

    async def run_job(self, job_id: int, now: dt.datetime | None) -> str:
        return await run_fetch(self.hub, job_id, self.owner, self.settings)

    async def run_jobs(self, ids: list[int], now: dt.datetime | None) -> dict[int, str]:
        """One after the other; an error is not caught here (the round fails and is logged)."""
        return {i: await self.run_job(i, now) for i in ids}
