"""Job tables worked by background workers: claiming due jobs under a lease, and the polling loop.

A job table has the columns ``id``, ``status`` (``pending`` / ``running`` / ...), ``due_at``,
``lease_owner``, ``attempts`` and ``updated_at`` (register tasks, reconciliation fetches, balance
alerts). A claim takes due ``pending`` or ``running`` rows (a ``running`` row is due again when its
lease ran out) in one short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL): each becomes
``running`` for the owner, its ``due_at`` moves a lease ahead and ``attempts`` goes up.

Every round claims under a lease of its own (``<worker>.<round>`` in ``lease_owner``, a fencing token):
a job's every write checks it, and a job renews it in the database right before it sends anything
(a register file, an alert), so a worker that paused past its lease sends nothing once another
worker has taken the job over.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import datetime as dt
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import Table, select, update

from paymux.db.base import utcnow

if TYPE_CHECKING:
    from paymux.runtime import Hub

CLAIMABLE = ("pending", "running")
FINISHED_KEPT = 1000  # statuses of the last runs a worker keeps (for monitoring and tests)

W = TypeVar("W", bound="PollingWorker")


def job_table(table: Table | type[Any]) -> Table:
    """The Core table of a mapped job class (or the table itself)."""
    return table if isinstance(table, Table) else cast(Table, table.__table__)


async def claim_due(
    hub: Hub,
    table: Table | type[Any],
    owner: str,
    limit: int,
    lease_seconds: int,
    now: dt.datetime | None = None,
) -> list[int]:
    """Claim up to ``limit`` due jobs of ``table`` for ``owner``, oldest due first; returns their ids."""
    now = now or utcnow()
    t = job_table(table)
    async with hub.sessions() as session:
        stmt = (
            select(t.c.id)
            .where(t.c.status.in_(CLAIMABLE), t.c.due_at <= now)
            .order_by(t.c.due_at, t.c.id)
            .limit(limit)
        )
        if not hub.sqlite:
            stmt = stmt.with_for_update(skip_locked=True)
        ids = list((await session.scalars(stmt)).all())
        if not ids:
            await session.rollback()
            return []
        await session.execute(
            update(t)
            .where(t.c.id.in_(ids))
            .values(
                status="running",
                lease_owner=owner,
                due_at=now + dt.timedelta(seconds=lease_seconds),
                attempts=t.c.attempts + 1,
                updated_at=now,
            )
        )
        await session.commit()
    return ids


def retry_delay(
    base_seconds: float, max_seconds: float, attempt: int, *, jitter: bool = True
) -> dt.timedelta:
    """The wait before retry number ``attempt`` (1, 2...): base * 2^(attempt-1), capped at
    ``max_seconds``, plus up to 10 % jitter (so retries of many jobs do not arrive together)."""
    seconds = min(base_seconds * 2 ** min(max(attempt - 1, 0), 40), max_seconds)
    return dt.timedelta(seconds=seconds * (1 + random.random() / 10 if jitter else 1))


class PollingWorker(abc.ABC):
    """A worker of one job table: ``run_once`` does one round, ``run`` loops until ``stop``.

    A round schedules new jobs when it is time (every ``schedule_seconds``, or always when ``now`` is
    given), claims up to ``claim_limit`` due jobs and runs them. An idle worker sleeps ``poll_seconds``
    between rounds; a busy one goes on at once. Subclasses name the table and implement
    :meth:`schedule` and :meth:`run_job` (and may override :meth:`run_jobs`, which runs the claimed
    jobs concurrently). ``finished`` maps the ids of the last jobs run to the status each ended in.
    """

    table: Table | type[Any]
    name = "worker"  # in log lines: "<name>: worker round failed"
    job_noun = "job"  # in log lines: "<job_noun> <id>: <error>"
    owner_prefix = "w"

    def __init__(
        self,
        hub: Hub,
        *,
        poll_seconds: float,
        schedule_seconds: float,
        lease_seconds: int,
        claim_limit: int,
        log: logging.Logger,
    ) -> None:
        self.hub = hub
        self.poll_seconds = poll_seconds
        self.schedule_seconds = schedule_seconds
        self.lease_seconds = lease_seconds
        self.claim_limit = claim_limit
        self.log = log
        self.worker_id = f"{self.owner_prefix}-{secrets.token_hex(8)}"
        self.owner = self.worker_id  # the lease of the current round (see run_round)
        self._rounds = 0
        self._stop = asyncio.Event()
        self._next_schedule = 0.0
        self.finished: dict[int, str] = {}

    def stop(self) -> None:
        self._stop.set()

    @abc.abstractmethod
    async def schedule(self, now: dt.datetime | None = None) -> Any:
        """Create the jobs that are due (committed)."""

    @abc.abstractmethod
    async def run_job(self, job_id: int, now: dt.datetime | None) -> str:
        """Run one claimed job; returns the status it ends in."""

    async def run_jobs(self, ids: list[int], now: dt.datetime | None) -> dict[int, str]:
        """Run the claimed jobs concurrently; one that raises is logged and ends as ``error``."""
        results = await asyncio.gather(*(self.run_job(i, now) for i in ids), return_exceptions=True)
        out: dict[int, str] = {}
        for i, r in zip(ids, results, strict=True):
            if isinstance(r, BaseException):
                self.log.error("%s %s: %r", self.job_noun, i, r)
                out[i] = "error"
            else:
                out[i] = r
        return out

    async def run_round(self, now: dt.datetime | None = None) -> dict[int, str]:
        """One round; returns the status each job run in it ended in."""
        if now is not None or time.monotonic() >= self._next_schedule:
            self._next_schedule = time.monotonic() + self.schedule_seconds
            try:
                await self.schedule(now)
            except Exception:
                self.log.exception("%s: scheduling failed", self.name)
        self._rounds += 1
        self.owner = f"{self.worker_id}.{self._rounds}"  # this round's lease: its own fencing token
        ids = await claim_due(self.hub, self.table, self.owner, self.claim_limit, self.lease_seconds, now)
        if not ids:
            return {}
        done = await self.run_jobs(ids, now)
        self.finished.update(done)
        if len(self.finished) > FINISHED_KEPT:
            for k in list(self.finished)[: FINISHED_KEPT // 2]:
                del self.finished[k]
        return done

    async def run_once(self, now: dt.datetime | None = None) -> int:
        """One round; returns how many jobs it ran."""
        return len(await self.run_round(now))

    async def run(self) -> None:
        while not self._stop.is_set():
            done: dict[int, str] = {}
            try:
                done = await self.run_round()
            except Exception:
                self.log.exception("%s: worker round failed", self.name)
            if done:
                continue
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.poll_seconds)
            except TimeoutError:
                pass


@contextlib.asynccontextmanager
async def running(worker: W) -> AsyncIterator[W]:
    """Run ``worker`` in the background for the duration of the block; stop it and wait for it on exit.

    The task is named ``paymux-<worker name>`` (spaces as dashes), e.g. ``paymux-balance-alerts``.
    """
    task = asyncio.create_task(worker.run(), name=f"paymux-{worker.name.replace(' ', '-')}")
    try:
        yield worker
    finally:
        worker.stop()
        await task
